//! Builds and checks the graph of a whole object file: duplicate ids, self-parents, missing
//! parents, layer inversions and cycles, all reported together; then orders it topologically.

use crate::cycles::report_cycles;
use crate::diagnostics::{Problem, Report};
use crate::graph_build::{children_of, drop_duplicates, resolve_parents, topological_order};
use crate::objects::{ObjectDef, read_object};
use orchestrator_protocol::ObjectId;
use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::sync::Arc;

/// What to do with a parent that is not in the file.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingParents {
    /// An error (the default).
    #[default]
    Error,
    /// Treated as already loaded outside this file.
    External,
}

/// Default for `--max-object-bytes` (`MAX_OBJECT_BYTES`): 1 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub missing_parents: MissingParents,
    /// Warnings count as errors.
    pub strict: bool,
    /// An object whose JSON is larger is an error: every event about it carries it whole, and
    /// must fit in one broker message.
    pub max_object_bytes: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            missing_parents: MissingParents::default(),
            strict: false,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

/// A valid object graph, in file order, with parent and child lists by index.
#[derive(Debug)]
pub struct Graph {
    pub objects: Vec<ObjectDef>,
    pub index: FxHashMap<ObjectId, u32>,
    parent_offsets: Vec<u32>,
    parent_list: Vec<u32>,
    child_offsets: Vec<u32>,
    child_list: Vec<u32>,
    /// Parents named but not in the file, taken as loaded outside it (`--missing-parents=external`).
    pub external_parents: Vec<ObjectId>,
    /// Every object, parents before children.
    pub topo_order: Vec<u32>,
}

impl Graph {
    pub fn len(&self) -> usize {
        self.objects.len()
    }
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
    /// In-file parents of object `i`.
    pub fn parents(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.parent_list[self.parent_offsets[i] as usize..self.parent_offsets[i + 1] as usize]
    }
    /// Children of object `i`.
    pub fn children(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.child_list[self.child_offsets[i] as usize..self.child_offsets[i + 1] as usize]
    }
    pub fn edge_count(&self) -> usize {
        self.parent_list.len()
    }
}

/// The outcome of loading a file: the graph when it can run, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub graph: Option<Graph>,
    pub report: Report,
}

/// Parses, reads and validates a whole object file. The text is kept, shared: each object's
/// JSON is a slice of it.
pub fn load_graph(text: impl Into<String>, options: LoadOptions) -> Loaded {
    let mut text: String = text.into();
    // A byte order mark, as some editors write one: not part of the JSON.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let text: Arc<String> = Arc::new(text);
    let mut report = Report::default();
    let elements: Vec<&RawValue> = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let message = if e.is_data() {
                format!(
                    "expected a JSON array of objects (line {}, column {})",
                    e.line(),
                    e.column()
                )
            } else {
                let text = e.to_string();
                let reason = text.split(" at line ").next().unwrap_or(&text);
                format!(
                    "malformed JSON at line {}, column {}: {reason}",
                    e.line(),
                    e.column()
                )
            };
            report.push(Problem::error(None, None, None, message));
            return Loaded {
                graph: None,
                report,
            };
        }
    };
    let objects = read_all(&text, &elements, &mut report);
    report_oversized(&elements, &objects, options.max_object_bytes, &mut report);
    drop(elements);
    let graph = build(objects, options, &mut report);
    if options.strict {
        report.make_strict();
    }
    let graph = if report.fails(options.strict) {
        None
    } else {
        graph
    };
    Loaded { graph, report }
}

/// Every object larger than `limit` is an error, named by its id when it could be read.
fn report_oversized(
    elements: &[&RawValue],
    objects: &[ObjectDef],
    limit: usize,
    report: &mut Report,
) {
    let mut by_index = objects.iter().map(|o| (o.index, o.id)).peekable();
    for (index, raw) in elements.iter().enumerate() {
        let size = raw.get().len();
        while by_index.next_if(|(i, _)| *i < index).is_some() {}
        if size <= limit {
            continue;
        }
        let id = by_index.next_if(|(i, _)| *i == index).map(|(_, id)| id);
        report.push(Problem::error(
            Some(index),
            id,
            None,
            format!(
                "the object is {size} bytes, more than the limit of {limit} (--max-object-bytes, MAX_OBJECT_BYTES)"
            ),
        ));
    }
}

/// Below this many objects, reading is not worth a second thread.
const PARALLEL_READ_MIN: usize = 50_000;

/// Reads every element, in chunks on the machine's cores for large files; the objects and the
/// problems come out in file order whatever the number of threads.
fn read_all(text: &Arc<String>, elements: &[&RawValue], report: &mut Report) -> Vec<ObjectDef> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || elements.len() < PARALLEL_READ_MIN {
        let mut objects = Vec::with_capacity(elements.len());
        for (i, raw) in elements.iter().enumerate() {
            objects.extend(read_object(i, text, raw, report));
        }
        return objects;
    }
    let chunk = elements.len().div_ceil(threads);
    let parts: Vec<(Vec<ObjectDef>, Report)> = std::thread::scope(|scope| {
        let handles: Vec<_> = elements
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    let mut report = Report::default();
                    let mut objects = Vec::with_capacity(part.len());
                    for (j, raw) in part.iter().enumerate() {
                        objects.extend(read_object(k * chunk + j, text, raw, &mut report));
                    }
                    (objects, report)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut objects = Vec::with_capacity(elements.len());
    for (part, part_report) in parts {
        objects.extend(part);
        report.problems.extend(part_report.problems);
    }
    objects
}

fn build(objects: Vec<ObjectDef>, options: LoadOptions, report: &mut Report) -> Option<Graph> {
    let (objects, index) = drop_duplicates(objects, report);
    let parents = resolve_parents(&objects, &index, options, report);
    let (child_offsets, child_list) = children_of(objects.len(), &parents.offsets, &parents.list);
    let mut graph = Graph {
        objects,
        index,
        parent_offsets: parents.offsets,
        parent_list: parents.list,
        child_offsets,
        child_list,
        external_parents: parents.external,
        topo_order: Vec::new(),
    };
    match topological_order(&graph) {
        Some(order) => {
            graph.topo_order = order;
            Some(graph)
        }
        None => {
            // Only a graph with a cycle goes to petgraph, whose strongly connected components
            // name each cycle.
            let n = graph.len();
            let mut pg: DiGraph<(), ()> = DiGraph::with_capacity(n, graph.parent_list.len());
            for _ in 0..n {
                pg.add_node(());
            }
            for c in 0..n as u32 {
                for &p in graph.parents(c) {
                    pg.add_edge(NodeIndex::new(p as usize), NodeIndex::new(c as usize), ());
                }
            }
            report_cycles(&graph, &pg, report);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str, options: LoadOptions) -> Loaded {
        load_graph(json.to_string(), options)
    }

    #[test]
    fn a_valid_file_orders_parents_first() {
        let l = load(
            r#"[{"IdObjet":3000,"IdObjet_Parent":"2001;2002","Zone":"3-Application"},
                {"IdObjet":2001,"IdObjet_Parent":1001,"Zone":"2-Standardized"},
                {"IdObjet":2002,"IdObjet_Parent":[1001],"Zone":"2-Standardized"},
                {"IdObjet":1001,"IdObjet_Parent":null,"Zone":"1-Raw"}]"#,
            LoadOptions::default(),
        );
        let g = l
            .graph
            .unwrap_or_else(|| panic!("{}", l.report.render(None)));
        let pos: std::collections::HashMap<u32, usize> = g
            .topo_order
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, i))
            .collect();
        for c in 0..g.len() as u32 {
            for &p in g.parents(c) {
                assert!(pos[&p] < pos[&c]);
            }
        }
        assert_eq!(g.children(3).len(), 2);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let l = load(
            r#"[{"IdObjet":1001,"Zone":"1-Raw"},
                {"IdObjet":1001,"Zone":"1-Raw"},
                {"IdObjet":2001,"IdObjet_Parent":"2001","Zone":"2-Standardized"},
                {"IdObjet":2002,"IdObjet_Parent":"9999","Zone":"2-Standardized"},
                {"IdObjet":3001,"IdObjet_Parent":"2003","Zone":"3-Application"},
                {"IdObjet":2003,"IdObjet_Parent":"3001","Zone":"2-Standardized"},
                {"IdObjet":"abc","Zone":"1-Raw"}]"#,
            LoadOptions::default(),
        );
        assert!(l.graph.is_none());
        let text = l.report.render(None);
        assert!(
            text.contains("object 1001 (index 1), IdObjet: duplicate id: also at index 0"),
            "{text}"
        );
        assert!(
            text.contains("object 2001 (index 2), IdObjet_Parent: names itself as a parent"),
            "{text}"
        );
        assert!(text.contains("parent 9999 does not exist"), "{text}");
        assert!(text.contains("cycle: 3001 -> 2003 -> 3001"), "{text}");
        assert!(
            text.contains("object at index 6, IdObjet: \"abc\" is not a numeric id"),
            "{text}"
        );
        assert!(text.contains("layer inversion"), "{text}");
    }

    #[test]
    fn malformed_json_gives_line_and_column() {
        let l = load("[\n{\"IdObjet\": 1001,,}\n]", LoadOptions::default());
        let text = l.report.render(None);
        assert!(
            text.contains("malformed JSON at line 2, column 18: key must be a string\n"),
            "{text}"
        );
        let l = load("{\"IdObjet\": 1}", LoadOptions::default());
        assert!(l.report.render(None).contains("expected a JSON array"));
    }

    #[test]
    fn external_parents_are_accepted_on_request() {
        let json =
            r#"[{"IdObjet":3000,"IdObjet_Parent":"2012,2008, 2008","Zone":"3-Application"}]"#;
        assert!(load(json, LoadOptions::default()).graph.is_none());
        let l = load(
            json,
            LoadOptions {
                missing_parents: MissingParents::External,
                ..LoadOptions::default()
            },
        );
        let g = l
            .graph
            .unwrap_or_else(|| panic!("{}", l.report.render(None)));
        assert_eq!(g.external_parents, vec![ObjectId(2012), ObjectId(2008)]);
        assert_eq!(l.report.warning_count(), 1);
        let strict = load(
            json,
            LoadOptions {
                missing_parents: MissingParents::External,
                strict: true,
                ..LoadOptions::default()
            },
        );
        assert!(strict.graph.is_none());
    }

    #[test]
    fn a_deep_chain_does_not_blow_the_stack() {
        let n = 200_000;
        let mut s = String::from("[");
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            let parent = if i == 0 {
                "null".to_string()
            } else {
                (1_000_000 + i - 1).to_string()
            };
            s.push_str(&format!(
                "{{\"IdObjet\":{},\"IdObjet_Parent\":{parent},\"Zone\":\"1-Raw\"}}",
                1_000_000 + i
            ));
        }
        s.push(']');
        let l = load(&s, LoadOptions::default());
        assert_eq!(l.graph.map(|g| g.len()), Some(n));
        // And the same chain closed into a cycle.
        let closed = s.replacen(
            "\"IdObjet_Parent\":null",
            &format!("\"IdObjet_Parent\":{}", 1_000_000 + n - 1),
            1,
        );
        let l = load(&closed, LoadOptions::default());
        assert!(l.graph.is_none());
        assert!(l.report.render(None).contains("cycle: 1000000 -> "));
    }
}
