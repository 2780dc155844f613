//! The compact graph one run schedules: only the objects that run, re-indexed from 0, with
//! parent counts, child lists, each object's priority rank and the graph's version hash.

use crate::graph::Graph;
use crate::objects::Criticality;
use crate::plan::Selection;
use orchestrator_protocol::{ObjectId, RawJson, Zone};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

/// One object as the scheduler and the dispatcher need it.
#[derive(Clone, Debug)]
pub struct RunNode {
    pub id: ObjectId,
    pub zone: Zone,
    pub criticality: Criticality,
    pub name: String,
    pub raw: RawJson,
}

/// The run's graph: nodes by index, parents and children by index.
#[derive(Debug)]
pub struct RunGraph {
    pub nodes: Vec<RunNode>,
    index: FxHashMap<ObjectId, u32>,
    parent_offsets: Vec<u32>,
    parent_list: Vec<u32>,
    child_offsets: Vec<u32>,
    child_list: Vec<u32>,
    /// Longest path (in objects) from each node to a terminal: the dispatch priority.
    rank: Vec<u32>,
    /// Each node's id and zone, packed apart from the nodes for the scheduler's hot path.
    ids: Vec<ObjectId>,
    zones: Vec<Zone>,
    criticality: Vec<Criticality>,
    version: String,
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
        let mut new_index = vec![u32::MAX; graph.len()];
        let mut nodes = Vec::new();
        for (i, o) in graph.objects.iter().enumerate() {
            if selection.contains(i as u32) {
                new_index[i] = nodes.len() as u32;
                nodes.push(RunNode {
                    id: o.id,
                    zone: o.zone,
                    criticality: o.criticality,
                    name: event_name(&o.name),
                    raw: o.raw.clone(),
                });
            }
        }
        let mut parents = vec![Vec::new(); nodes.len()];
        for (i, &ni) in new_index.iter().enumerate() {
            if ni == u32::MAX {
                continue;
            }
            for &p in graph.parents(i as u32) {
                let np = new_index[p as usize];
                if np != u32::MAX {
                    parents[ni as usize].push(np);
                }
            }
        }
        // The source graph is validated: indices are in range and acyclic.
        Self::from_parents(nodes, parents).unwrap_or_else(|_| RunGraph::empty())
    }

    fn empty() -> RunGraph {
        RunGraph {
            nodes: Vec::new(),
            index: FxHashMap::default(),
            parent_offsets: vec![0],
            parent_list: Vec::new(),
            child_offsets: vec![0],
            child_list: Vec::new(),
            rank: Vec::new(),
            ids: Vec::new(),
            zones: Vec::new(),
            criticality: Vec::new(),
            version: version_of(&[], &[], &[]),
        }
    }

    /// Builds from nodes and each node's parent indices (for tests and generated graphs).
    pub fn from_parents(
        nodes: Vec<RunNode>,
        parents: Vec<Vec<u32>>,
    ) -> Result<RunGraph, RunGraphError> {
        let n = nodes.len();
        let mut index = FxHashMap::with_capacity_and_hasher(n, Default::default());
        for (i, node) in nodes.iter().enumerate() {
            if index.insert(node.id, i as u32).is_some() {
                return Err(RunGraphError::Duplicate(node.id));
            }
        }
        let mut parent_offsets = Vec::with_capacity(n + 1);
        let mut parent_list = Vec::new();
        parent_offsets.push(0);
        let mut child_offsets = vec![0u32; n + 1];
        for (c, ps) in parents.iter().enumerate().take(n) {
            for &p in ps {
                if p as usize >= n {
                    return Err(RunGraphError::BadIndex {
                        child: c,
                        parent: p,
                    });
                }
                parent_list.push(p);
                child_offsets[p as usize + 1] += 1;
            }
            parent_offsets.push(parent_list.len() as u32);
        }
        while parent_offsets.len() < n + 1 {
            parent_offsets.push(parent_list.len() as u32);
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
        let version = version_of(&nodes, &parent_offsets, &parent_list);
        let zones = nodes.iter().map(|n| n.zone).collect();
        let ids = nodes.iter().map(|n| n.id).collect();
        let criticality = nodes.iter().map(|n| n.criticality).collect();
        Ok(RunGraph {
            ids,
            zones,
            criticality,
            nodes,
            index,
            parent_offsets,
            parent_list,
            child_offsets,
            child_list,
            rank,
            version,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn index_of(&self, id: ObjectId) -> Option<u32> {
        self.index.get(&id).copied()
    }
    pub fn node(&self, i: u32) -> &RunNode {
        &self.nodes[i as usize]
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
        self.ids[i as usize]
    }
    pub fn criticality(&self, i: u32) -> Criticality {
        self.criticality[i as usize]
    }
    pub fn zone(&self, i: u32) -> Zone {
        self.zones[i as usize]
    }
    pub fn rank(&self, i: u32) -> u32 {
        self.rank[i as usize]
    }
    /// A hash of the objects, zones and edges: a resumed run must have the same.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Longest name an event carries (`name` of Ready and failed events, logs); the object's
/// JSON, which the event also carries, keeps the whole `NomObjet`.
pub const MAX_EVENT_NAME_BYTES: usize = 1024;

/// `name` cut to [`MAX_EVENT_NAME_BYTES`] on a character boundary, marked with `…` when cut.
pub fn event_name(name: &str) -> String {
    if name.len() <= MAX_EVENT_NAME_BYTES {
        return name.to_string();
    }
    format!(
        "{}…",
        &name[..name.floor_char_boundary(MAX_EVENT_NAME_BYTES)]
    )
}

fn version_of(nodes: &[RunNode], parent_offsets: &[u32], parent_list: &[u32]) -> String {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| nodes[i].id);
    let mut h = Sha256::new();
    for i in order {
        h.update(nodes[i].id.0.to_le_bytes());
        h.update([nodes[i].zone.index() as u8]);
        let mut ps: Vec<u64> = parent_list
            [parent_offsets[i] as usize..parent_offsets[i + 1] as usize]
            .iter()
            .map(|&p| nodes[p as usize].id.0)
            .collect();
        ps.sort_unstable();
        h.update((ps.len() as u64).to_le_bytes());
        for p in ps {
            h.update(p.to_le_bytes());
        }
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
