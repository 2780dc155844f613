//! The compact graph one run schedules: only the objects that run, re-indexed from 0, with
//! parent counts, child lists, each object's priority rank and the graph's version hash.

use crate::graph::Graph;
use crate::objects::Criticality;
use crate::plan::Selection;
use orchestrator_protocol::{ObjectId, RawJson, Zone};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

/// One object as the scheduler and the dispatcher need it (the input of
/// [`RunGraph::from_parents`]).
#[derive(Clone, Debug)]
pub struct RunNode {
    pub id: ObjectId,
    pub zone: Zone,
    pub criticality: Criticality,
    pub name: String,
    pub raw: RawJson,
}

/// One object of a built graph, borrowed from its columns.
#[derive(Clone, Copy, Debug)]
pub struct NodeRef<'a> {
    pub id: ObjectId,
    pub zone: Zone,
    pub criticality: Criticality,
    /// The name events carry (cut to [`MAX_EVENT_NAME_BYTES`]).
    pub name: &'a str,
    pub raw: &'a RawJson,
}

/// The objects of a run, column by column: no allocation per object, so that a graph of a
/// million objects is a few large blocks that memory gets back whole.
#[derive(Debug, Default)]
struct Columns {
    ids: Vec<ObjectId>,
    zones: Vec<Zone>,
    criticality: Vec<Criticality>,
    /// Each object's JSON: slices of one shared text when the graph came from one.
    raws: Vec<RawJson>,
    /// Every name, end to end; `name_ends[i]` is where object `i`'s ends.
    names: String,
    name_ends: Vec<u32>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Columns {
            ids: Vec::with_capacity(n),
            zones: Vec::with_capacity(n),
            criticality: Vec::with_capacity(n),
            raws: Vec::with_capacity(n),
            names: String::new(),
            name_ends: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        id: ObjectId,
        zone: Zone,
        criticality: Criticality,
        name: &str,
        raw: RawJson,
    ) {
        self.ids.push(id);
        self.zones.push(zone);
        self.criticality.push(criticality);
        self.raws.push(raw);
        push_event_name(name, &mut self.names);
        self.name_ends.push(self.names.len() as u32);
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The run's graph: objects by index, parents and children by index.
#[derive(Debug)]
pub struct RunGraph {
    columns: Columns,
    index: FxHashMap<ObjectId, u32>,
    parent_offsets: Vec<u32>,
    parent_list: Vec<u32>,
    child_offsets: Vec<u32>,
    child_list: Vec<u32>,
    /// Longest path (in objects) from each node to a terminal: the dispatch priority.
    rank: Vec<u32>,
    version: String,
    /// The indices in id order, made when first asked for (a page of objects by id).
    by_id: std::sync::OnceLock<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunGraphError {
    #[error("parent index {parent} of node {child} is out of range")]
    BadIndex { child: usize, parent: u32 },
    #[error("the graph has a cycle")]
    Cycle,
    #[error("object {0} appears twice")]
    Duplicate(ObjectId),
}

impl RunGraph {
    /// The objects of `selection`; parents outside it (disabled, external) count as loaded.
    pub fn new(graph: &Graph, selection: &Selection) -> RunGraph {
        let (columns, parent_offsets, parent_list, _) = Self::cut(graph, selection);
        // The source graph is validated: indices are in range and acyclic.
        Self::from_columns(columns, parent_offsets, parent_list, None)
            .unwrap_or_else(|_| RunGraph::empty())
    }

    /// As [`RunGraph::new`], letting the graph go as soon as it is read: with every object
    /// selected its index by id is the run's, and is kept rather than built again (35 MB at
    /// 1,000,000 objects, at the moment a submission holds the most).
    pub fn from_graph(mut graph: Graph, selection: &Selection) -> RunGraph {
        let (columns, parent_offsets, parent_list, every) = Self::cut(&graph, selection);
        let index = every.then(|| std::mem::take(&mut graph.index));
        drop(graph);
        Self::from_columns(columns, parent_offsets, parent_list, index)
            .unwrap_or_else(|_| RunGraph::empty())
    }

    /// The selected objects' columns and parents (offsets and list: no vector per object), and
    /// whether every object is selected (then each keeps its index).
    fn cut(graph: &Graph, selection: &Selection) -> (Columns, Vec<u32>, Vec<u32>, bool) {
        let mut new_index = vec![u32::MAX; graph.len()];
        let mut columns = Columns::with_capacity(graph.len());
        for (i, o) in graph.objects.iter().enumerate() {
            if selection.contains(i as u32) {
                new_index[i] = columns.len() as u32;
                columns.push(o.id, o.zone, o.criticality, &o.name, o.raw.clone());
            }
        }
        let mut parent_offsets = Vec::with_capacity(columns.len() + 1);
        let mut parent_list = Vec::with_capacity(graph.edge_count());
        parent_offsets.push(0);
        for (i, &ni) in new_index.iter().enumerate() {
            if ni == u32::MAX {
                continue;
            }
            for &p in graph.parents(i as u32) {
                let np = new_index[p as usize];
                if np != u32::MAX {
                    parent_list.push(np);
                }
            }
            parent_offsets.push(parent_list.len() as u32);
        }
        let every = columns.len() == graph.len();
        (columns, parent_offsets, parent_list, every)
    }

    fn empty() -> RunGraph {
        RunGraph {
            columns: Columns::default(),
            index: FxHashMap::default(),
            parent_offsets: vec![0],
            parent_list: Vec::new(),
            child_offsets: vec![0],
            child_list: Vec::new(),
            rank: Vec::new(),
            version: version_of(&[], &[], &[], &[]),
            by_id: std::sync::OnceLock::new(),
        }
    }

    /// Builds from nodes and each node's parent indices (for tests and generated graphs).
    pub fn from_parents(
        nodes: Vec<RunNode>,
        parents: Vec<Vec<u32>>,
    ) -> Result<RunGraph, RunGraphError> {
        let mut columns = Columns::with_capacity(nodes.len());
        for n in nodes {
            columns.push(n.id, n.zone, n.criticality, &n.name, n.raw);
        }
        let n = columns.len();
        let mut parent_offsets = Vec::with_capacity(n + 1);
        let mut parent_list = Vec::new();
        parent_offsets.push(0);
        for ps in parents.iter().take(n) {
            parent_list.extend_from_slice(ps);
            parent_offsets.push(parent_list.len() as u32);
        }
        while parent_offsets.len() < n + 1 {
            parent_offsets.push(parent_list.len() as u32);
        }
        Self::from_columns(columns, parent_offsets, parent_list, None)
    }

    /// `parent_offsets` has one entry per node and one more; node `c`'s parents are
    /// `parent_list[parent_offsets[c]..parent_offsets[c + 1]]`.
    /// `index`, when given, maps each id to its node (one per node).
    fn from_columns(
        columns: Columns,
        parent_offsets: Vec<u32>,
        parent_list: Vec<u32>,
        index: Option<FxHashMap<ObjectId, u32>>,
    ) -> Result<RunGraph, RunGraphError> {
        let n = columns.len();
        let index = match index {
            Some(index) if index.len() == n => index,
            _ => index_of_ids(&columns.ids)?,
        };
        let mut child_offsets = vec![0u32; n + 1];
        for c in 0..n {
            for &p in &parent_list[parent_offsets[c] as usize..parent_offsets[c + 1] as usize] {
                if p as usize >= n {
                    return Err(RunGraphError::BadIndex {
                        child: c,
                        parent: p,
                    });
                }
                child_offsets[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            child_offsets[i + 1] += child_offsets[i];
        }
        let mut fill = child_offsets.clone();
        let mut child_list = vec![0u32; parent_list.len()];
        for c in 0..n {
            for &p in &parent_list[parent_offsets[c] as usize..parent_offsets[c + 1] as usize] {
                child_list[fill[p as usize] as usize] = c as u32;
                fill[p as usize] += 1;
            }
        }
        // Kahn's order, then ranks from the terminals back.
        let mut pending: Vec<u32> = (0..n)
            .map(|i| parent_offsets[i + 1] - parent_offsets[i])
            .collect();
        let mut order: Vec<u32> = (0..n as u32)
            .filter(|&i| pending[i as usize] == 0)
            .collect();
        let mut head = 0;
        while head < order.len() {
            let v = order[head] as usize;
            head += 1;
            for &c in &child_list[child_offsets[v] as usize..child_offsets[v + 1] as usize] {
                pending[c as usize] -= 1;
                if pending[c as usize] == 0 {
                    order.push(c);
                }
            }
        }
        if order.len() != n {
            return Err(RunGraphError::Cycle);
        }
        let mut rank = vec![1u32; n];
        for &v in order.iter().rev() {
            let v = v as usize;
            for &c in &child_list[child_offsets[v] as usize..child_offsets[v + 1] as usize] {
                rank[v] = rank[v].max(rank[c as usize] + 1);
            }
        }
        let version = version_of(&columns.ids, &columns.zones, &parent_offsets, &parent_list);
        Ok(RunGraph {
            columns,
            index,
            parent_offsets,
            parent_list,
            child_offsets,
            child_list,
            rank,
            version,
            by_id: std::sync::OnceLock::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.columns.ids.is_empty()
    }
    pub fn index_of(&self, id: ObjectId) -> Option<u32> {
        self.index.get(&id).copied()
    }
    pub fn node(&self, i: u32) -> NodeRef<'_> {
        NodeRef {
            id: self.id(i),
            zone: self.zone(i),
            criticality: self.criticality(i),
            name: self.name(i),
            raw: &self.columns.raws[i as usize],
        }
    }
    /// Every object, by index.
    pub fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> {
        (0..self.len() as u32).map(|i| self.node(i))
    }
    pub fn name(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 {
            0
        } else {
            self.columns.name_ends[i - 1] as usize
        };
        let end = self.columns.name_ends[i] as usize;
        self.columns.names.get(start..end).unwrap_or_default()
    }
    pub fn parents(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.parent_list[self.parent_offsets[i] as usize..self.parent_offsets[i + 1] as usize]
    }
    pub fn children(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.child_list[self.child_offsets[i] as usize..self.child_offsets[i + 1] as usize]
    }
    pub fn id(&self, i: u32) -> ObjectId {
        self.columns.ids[i as usize]
    }
    pub fn criticality(&self, i: u32) -> Criticality {
        self.columns.criticality[i as usize]
    }
    pub fn zone(&self, i: u32) -> Zone {
        self.columns.zones[i as usize]
    }
    /// Every index, in id order (sorted once, on the first call).
    pub fn by_id(&self) -> &[u32] {
        self.by_id.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.len() as u32).collect();
            order.sort_unstable_by_key(|&i| self.id(i));
            order
        })
    }
    pub fn rank(&self, i: u32) -> u32 {
        self.rank[i as usize]
    }
    /// A hash of the objects, zones and edges: a resumed run must have the same.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Each id's node; an id twice is an error.
fn index_of_ids(ids: &[ObjectId]) -> Result<FxHashMap<ObjectId, u32>, RunGraphError> {
    let mut index = FxHashMap::with_capacity_and_hasher(ids.len(), Default::default());
    for (i, &id) in ids.iter().enumerate() {
        if index.insert(id, i as u32).is_some() {
            return Err(RunGraphError::Duplicate(id));
        }
    }
    Ok(index)
}

/// Longest name an event carries (`name` of Ready and failed events, logs); the object's
/// JSON, which the event also carries, keeps the whole `NomObjet`.
pub const MAX_EVENT_NAME_BYTES: usize = 1024;

/// Appends `name` cut to [`MAX_EVENT_NAME_BYTES`] on a character boundary, marked with `…` when
/// cut.
fn push_event_name(name: &str, out: &mut String) {
    if name.len() <= MAX_EVENT_NAME_BYTES {
        out.push_str(name);
    } else {
        out.push_str(&name[..name.floor_char_boundary(MAX_EVENT_NAME_BYTES)]);
        out.push('…');
    }
}

fn version_of(
    ids: &[ObjectId],
    zones: &[Zone],
    parent_offsets: &[u32],
    parent_list: &[u32],
) -> String {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    let mut h = Sha256::new();
    let mut ps: Vec<u64> = Vec::new();
    for i in order {
        h.update(ids[i].0.to_le_bytes());
        h.update([zones[i].index() as u8]);
        ps.clear();
        ps.extend(
            parent_list[parent_offsets[i] as usize..parent_offsets[i + 1] as usize]
                .iter()
                .map(|&p| ids[p as usize].0),
        );
        ps.sort_unstable();
        h.update((ps.len() as u64).to_le_bytes());
        for &p in &ps {
            h.update(p.to_le_bytes());
        }
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LoadOptions, load_graph};

    fn ids_of(g: &RunGraph, list: &[u32]) -> Vec<u64> {
        list.iter().map(|&i| g.id(i).0).collect()
    }

    #[test]
    fn a_selection_keeps_its_objects_and_the_edges_between_them() {
        // 1001 -> 2001 -> 3001, 1002 -> 2001, 1003 disabled -> 2002; target 3001.
        let text = r#"[
            {"IdObjet": 1001, "Zone": "1-Raw", "IdObjet_Parent": null},
            {"IdObjet": 1002, "Zone": "1-Raw", "IdObjet_Parent": null},
            {"IdObjet": 1003, "Zone": "1-Raw", "IdObjet_Parent": null, "EtatObjet": "inactif"},
            {"IdObjet": 2001, "Zone": "2-Standardized", "IdObjet_Parent": "1001;1002"},
            {"IdObjet": 2002, "Zone": "2-Standardized", "IdObjet_Parent": 1003},
            {"IdObjet": 3001, "Zone": "3-Application", "IdObjet_Parent": [2001]}
        ]"#;
        let loaded = load_graph(text.to_string(), LoadOptions::default());
        let graph = loaded
            .graph
            .unwrap_or_else(|| panic!("{:?}", loaded.report));
        let all = RunGraph::new(&graph, &Selection::all(&graph));
        let ids: Vec<u64> = (0..all.len() as u32).map(|i| all.id(i).0).collect();
        assert_eq!(
            ids,
            [1001, 1002, 2001, 2002, 3001],
            "the disabled object is left out"
        );
        let at = |g: &RunGraph, id: u64| g.index_of(ObjectId(id)).unwrap_or(u32::MAX);
        assert_eq!(ids_of(&all, all.parents(at(&all, 2001))), [1001, 1002]);
        assert!(
            all.parents(at(&all, 2002)).is_empty(),
            "its parent counts as loaded"
        );
        assert_eq!(ids_of(&all, all.children(at(&all, 2001))), [3001]);
        assert_eq!(all.rank(at(&all, 1001)), 3);

        let targets = Selection::for_targets(&graph, &[ObjectId(3001)], None)
            .unwrap_or_else(|e| panic!("{e}"));
        let some = RunGraph::new(&graph, &targets);
        let ids: Vec<u64> = (0..some.len() as u32).map(|i| some.id(i).0).collect();
        assert_eq!(ids, [1001, 1002, 2001, 3001]);
        assert_eq!(ids_of(&some, some.parents(at(&some, 3001))), [2001]);
        assert_eq!(ids_of(&some, some.children(at(&some, 1002))), [2001]);
        assert!(some.children(at(&some, 3001)).is_empty());
        assert_ne!(some.version(), all.version());

        // Taking the graph gives the same run graph, with or without every object selected.
        for (selection, made) in [(Selection::all(&graph), &all), (targets, &some)] {
            let again = load_graph(text.to_string(), LoadOptions::default())
                .graph
                .unwrap_or_else(|| panic!("it loaded once"));
            let taken = RunGraph::from_graph(again, &selection);
            assert_eq!(taken.version(), made.version());
            for i in 0..made.len() as u32 {
                let id = made.id(i);
                assert_eq!(taken.index_of(id), Some(i));
                assert_eq!(taken.parents(i), made.parents(i));
                assert_eq!(taken.children(i), made.children(i));
                assert_eq!(taken.rank(i), made.rank(i));
            }
        }
    }

    #[test]
    fn every_object_selected_keeps_the_graphs_index() {
        let text = r#"[{"IdObjet": 1001}, {"IdObjet": 2001, "IdObjet_Parent": 1001}]"#;
        let graph = load_graph(text.to_string(), LoadOptions::default())
            .graph
            .unwrap_or_else(|| panic!("valid"));
        let selection = Selection::all(&graph);
        let taken = RunGraph::from_graph(graph, &selection);
        assert_eq!(taken.index_of(ObjectId(2001)), Some(1));
        assert_eq!(taken.parents(1), [0]);
    }
}
