//! The plan of a run: which objects run (all, or the ancestors of some targets), the levels it
//! goes through, the critical path and what sharing parents saves; as text, JSON or DOT.

use crate::graph::Graph;
use crate::objects::ObjectDef;
pub use crate::selection::{Selection, SelectionError};
use orchestrator_protocol::{ObjectId, Zone};
use serde::Serialize;
use std::fmt::Write as _;

/// Objects per zone, in zone order (raw, standardized, application).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ZoneCounts {
    #[serde(rename = "1-Raw")]
    pub raw: usize,
    #[serde(rename = "2-Standardized")]
    pub standardized: usize,
    #[serde(rename = "3-Application")]
    pub application: usize,
}

impl ZoneCounts {
    pub fn add(&mut self, z: Zone) {
        *self.get_mut(z) += 1;
    }
    pub fn get(&self, z: Zone) -> usize {
        match z {
            Zone::Raw => self.raw,
            Zone::Standardized => self.standardized,
            Zone::Application => self.application,
        }
    }
    fn get_mut(&mut self, z: Zone) -> &mut usize {
        match z {
            Zone::Raw => &mut self.raw,
            Zone::Standardized => &mut self.standardized,
            Zone::Application => &mut self.application,
        }
    }
    pub fn total(&self) -> usize {
        self.raw + self.standardized + self.application
    }
}

/// Upper bound on the walk that counts ancestors per terminal; past it the saving is a lower bound.
const ANCESTOR_WALK_BUDGET: usize = 200_000_000;

/// What a run of a selection will do.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub objects: usize,
    pub edges: usize,
    pub per_zone: ZoneCounts,
    /// Level k holds the objects whose longest chain of parents has k objects.
    pub levels: Vec<ZoneCounts>,
    pub roots: usize,
    pub terminals: usize,
    /// Objects with two or more children in the run.
    pub shared_parents: usize,
    pub depth: usize,
    pub widest_level: usize,
    pub widest_level_size: usize,
    /// The longest chain of objects, parents first.
    pub critical_path: Vec<ObjectId>,
    /// Executions saved by running each shared parent once: the sum over terminals of the
    /// objects each needs (itself and its ancestors), minus the distinct objects that run.
    pub dedup_saved_executions: u64,
    /// False when the count was cut short on a huge graph: the saving is then at least that.
    pub dedup_exact: bool,
    /// Objects not run because `EtatObjet` is not `actif`.
    pub disabled: Vec<ObjectId>,
    /// Parents outside the file, taken as loaded.
    pub external_parents: usize,
    /// Indices of the objects that run, parents first.
    #[serde(skip)]
    members: Vec<u32>,
    #[serde(skip)]
    included: Vec<bool>,
}

impl Plan {
    pub fn new(graph: &Graph, selection: &Selection) -> Plan {
        let n = graph.len();
        let inside = |i: u32| selection.contains(i);
        let mut level_of = vec![0u32; n];
        let mut from = vec![u32::MAX; n];
        let mut members = Vec::new();
        let mut per_zone = ZoneCounts::default();
        let mut edges = 0;
        let mut roots = 0;
        for &v in &graph.topo_order {
            if !inside(v) {
                continue;
            }
            members.push(v);
            per_zone.add(graph.objects[v as usize].zone);
            let mut has_parent = false;
            for &p in graph.parents(v) {
                if inside(p) {
                    has_parent = true;
                    edges += 1;
                    let candidate = level_of[p as usize] + 1;
                    if candidate > level_of[v as usize] {
                        level_of[v as usize] = candidate;
                        from[v as usize] = p;
                    }
                }
            }
            if !has_parent {
                roots += 1;
            }
        }
        let mut levels: Vec<ZoneCounts> = Vec::new();
        let mut deepest: Option<u32> = None;
        let mut terminals = Vec::new();
        let mut shared_parents = 0;
        for &v in &members {
            let l = level_of[v as usize] as usize;
            if levels.len() <= l {
                levels.resize(l + 1, ZoneCounts::default());
            }
            levels[l].add(graph.objects[v as usize].zone);
            if deepest.is_none_or(|d| level_of[d as usize] < level_of[v as usize]) {
                deepest = Some(v);
            }
            let kids = graph.children(v).iter().filter(|&&c| inside(c)).count();
            if kids == 0 {
                terminals.push(v);
            }
            if kids >= 2 {
                shared_parents += 1;
            }
        }
        let mut critical_path = Vec::new();
        let mut cur = deepest;
        while let Some(v) = cur {
            critical_path.push(graph.objects[v as usize].id);
            cur = (from[v as usize] != u32::MAX).then_some(from[v as usize]);
        }
        critical_path.reverse();
        let (widest_level, widest_level_size) = levels
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.total()))
            .max_by_key(|&(i, c)| (c, std::cmp::Reverse(i)))
            .unwrap_or((0, 0));
        let (needed, exact) = needed_per_terminal(graph, &terminals, &inside);
        Plan {
            objects: members.len(),
            edges,
            per_zone,
            depth: levels.len(),
            levels,
            roots,
            terminals: terminals.len(),
            shared_parents,
            widest_level,
            widest_level_size,
            critical_path,
            dedup_saved_executions: needed.saturating_sub(members.len() as u64),
            dedup_exact: exact,
            disabled: graph
                .objects
                .iter()
                .filter(|o| !o.enabled)
                .map(|o| o.id)
                .collect(),
            external_parents: graph.external_parents.len(),
            members,
            included: selection.included.clone(),
        }
    }

    /// A terminal-friendly rendering.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "objects to run: {} ({} edges)", self.objects, self.edges);
        let _ = writeln!(
            s,
            "  per zone: 1-Raw {}, 2-Standardized {}, 3-Application {}",
            self.per_zone.raw, self.per_zone.standardized, self.per_zone.application
        );
        let _ = writeln!(
            s,
            "roots: {}   terminals: {}   shared parents: {}",
            self.roots, self.terminals, self.shared_parents
        );
        let _ = writeln!(
            s,
            "depth: {} levels   widest level: {} ({} objects)",
            self.depth, self.widest_level, self.widest_level_size
        );
        let _ = writeln!(s, "levels:");
        let _ = writeln!(
            s,
            "  {:>5}  {:>8}  {:>8}  {:>8}  {:>8}",
            "level", "1-Raw", "2-Std", "3-App", "total"
        );
        const SHOWN: usize = 50;
        for (i, l) in self.levels.iter().enumerate().take(SHOWN) {
            let _ = writeln!(
                s,
                "  {:>5}  {:>8}  {:>8}  {:>8}  {:>8}",
                i,
                l.raw,
                l.standardized,
                l.application,
                l.total()
            );
        }
        if self.levels.len() > SHOWN {
            let _ = writeln!(s, "  ... {} more levels", self.levels.len() - SHOWN);
        }
        let path: Vec<String> = self.critical_path.iter().map(|i| i.to_string()).collect();
        if path.len() > 20 {
            let _ = writeln!(
                s,
                "critical path ({} objects): {} -> ... -> {}",
                path.len(),
                path[..5].join(" -> "),
                path[path.len() - 5..].join(" -> ")
            );
        } else {
            let _ = writeln!(
                s,
                "critical path ({} objects): {}",
                path.len(),
                path.join(" -> ")
            );
        }
        let _ = writeln!(
            s,
            "shared parents run once: saves {}{} executions",
            if self.dedup_exact { "" } else { "at least " },
            self.dedup_saved_executions
        );
        if !self.disabled.is_empty() {
            let ids: Vec<String> = self
                .disabled
                .iter()
                .take(20)
                .map(|i| i.to_string())
                .collect();
            let more = if self.disabled.len() > 20 {
                format!(" and {} more", self.disabled.len() - 20)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "disabled (not run, treated as loaded): {}{more}",
                ids.join(", ")
            );
        }
        if self.external_parents > 0 {
            let _ = writeln!(
                s,
                "external parents (treated as loaded): {}",
                self.external_parents
            );
        }
        s
    }

    /// Graphviz DOT of the objects that run, one cluster per zone.
    pub fn to_dot(&self, graph: &Graph) -> String {
        let mut s =
            String::from("digraph objects {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
        for z in Zone::ALL {
            let _ = writeln!(
                s,
                "  subgraph \"cluster_{}\" {{\n    label=\"{}\";",
                z.short(),
                z.as_str()
            );
            for &v in &self.members {
                let o: &ObjectDef = &graph.objects[v as usize];
                if o.zone == z {
                    let _ = writeln!(
                        s,
                        "    \"{}\" [label=\"{}\\n{}\"];",
                        o.id,
                        o.id,
                        escape_dot(&o.name)
                    );
                }
            }
            s.push_str("  }\n");
        }
        for &v in &self.members {
            for &p in graph.parents(v) {
                if self.included.get(p as usize).copied().unwrap_or(false) {
                    let _ = writeln!(
                        s,
                        "  \"{}\" -> \"{}\";",
                        graph.objects[p as usize].id, graph.objects[v as usize].id
                    );
                }
            }
        }
        s.push_str("}\n");
        s
    }
}

/// A text inside a DOT string, its quotes and backslashes escaped.
pub fn escape_dot(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Sum over terminals of the objects each needs (itself and its in-run ancestors), split over
/// the machine's cores for large graphs. `false` when the walk hit its budget.
fn needed_per_terminal(
    graph: &Graph,
    terminals: &[u32],
    inside: &(dyn Fn(u32) -> bool + Sync),
) -> (u64, bool) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || terminals.len() < 10_000 {
        return walk_ancestors(graph, terminals, inside, ANCESTOR_WALK_BUDGET);
    }
    let chunk = terminals.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = terminals
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    walk_ancestors(graph, part, inside, ANCESTOR_WALK_BUDGET / threads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .fold((0, true), |(total, exact), (t, e)| (total + t, exact && e))
    })
}

fn walk_ancestors(
    graph: &Graph,
    terminals: &[u32],
    inside: &dyn Fn(u32) -> bool,
    mut budget: usize,
) -> (u64, bool) {
    let mut stamp = vec![u32::MAX; graph.len()];
    let mut total = 0u64;
    let mut stack = Vec::new();
    for (k, &t) in terminals.iter().enumerate() {
        stack.clear();
        stack.push(t);
        stamp[t as usize] = k as u32;
        while let Some(v) = stack.pop() {
            total += 1;
            if budget == 0 {
                return (total, false);
            }
            budget -= 1;
            for &p in graph.parents(v) {
                if inside(p) && stamp[p as usize] != k as u32 {
                    stamp[p as usize] = k as u32;
                    stack.push(p);
                }
            }
        }
    }
    (total, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LoadOptions, load_graph};

    fn sample() -> Graph {
        let l = load_graph(
            r#"[{"IdObjet":1001,"Zone":"1-Raw"},{"IdObjet":1002,"Zone":"1-Raw"},{"IdObjet":1005,"Zone":"1-Raw"},
                {"IdObjet":2001,"IdObjet_Parent":"1001","Zone":"2-Standardized"},
                {"IdObjet":2002,"IdObjet_Parent":"1002","Zone":"2-Standardized"},
                {"IdObjet":2005,"IdObjet_Parent":"1005","Zone":"2-Standardized"},
                {"IdObjet":3000,"IdObjet_Parent":"2001,2002,2005","Zone":"3-Application"},
                {"IdObjet":3005,"IdObjet_Parent":"2002","Zone":"3-Application"},
                {"IdObjet":3006,"IdObjet_Parent":"2002,2005","Zone":"3-Application"},
                {"IdObjet":3007,"IdObjet_Parent":"2002","Zone":"3-Application","EtatObjet":"inactif"}]"#,
            LoadOptions::default(),
        );
        l.graph
            .unwrap_or_else(|| panic!("{}", l.report.render(None)))
    }

    #[test]
    fn plan_of_the_seed_shape() {
        let g = sample();
        let p = Plan::new(&g, &Selection::all(&g));
        assert_eq!(p.objects, 9);
        assert_eq!(
            p.per_zone,
            ZoneCounts {
                raw: 3,
                standardized: 3,
                application: 3
            }
        );
        assert_eq!(p.depth, 3);
        assert_eq!(p.roots, 3);
        assert_eq!(p.terminals, 3);
        assert_eq!(p.shared_parents, 2); // 2002 (3 children) and 2005 (2)
        // 3000 needs 7, 3005 needs 3, 3006 needs 5: 15 executions without sharing, 9 with.
        assert_eq!(p.dedup_saved_executions, 6);
        assert_eq!(p.critical_path.len(), 3);
        assert_eq!(p.disabled, vec![ObjectId(3007)]);
        assert!(p.to_dot(&g).contains("\"2002\" -> \"3005\";"));
    }

    #[test]
    fn targets_keep_only_their_ancestors() {
        let g = sample();
        let s =
            Selection::for_targets(&g, &[ObjectId(3005)], None).unwrap_or_else(|e| panic!("{e}"));
        let p = Plan::new(&g, &s);
        assert_eq!(p.objects, 3);
        assert_eq!(
            p.critical_path,
            vec![ObjectId(1002), ObjectId(2002), ObjectId(3005)]
        );
        let s = Selection::for_targets(&g, &[], Some(Zone::Standardized))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.count(), 6);
        assert_eq!(
            Selection::for_targets(&g, &[ObjectId(42)], None).err(),
            Some(SelectionError::UnknownTarget(ObjectId(42)))
        );
        assert!(Selection::for_targets(&g, &[ObjectId(3007)], None).is_err());
    }
}
