//! The steps of building a graph from its objects: duplicate ids left out, parents resolved
//! (self-parents, missing and higher-layer parents reported), children listed, and the
//! topological order.

use crate::diagnostics::{Problem, Report};
use crate::graph::{Graph, LoadOptions, MissingParents};
use crate::objects::ObjectDef;
use orchestrator_protocol::ObjectId;
use rustc_hash::{FxHashMap, FxHashSet};

/// Duplicate ids: the first one wins the id, the others are errors and are left out. Returns
/// the objects kept and the index of their ids.
pub(crate) fn drop_duplicates(
    mut objects: Vec<ObjectDef>,
    report: &mut Report,
) -> (Vec<ObjectDef>, FxHashMap<ObjectId, u32>) {
    let mut index: FxHashMap<ObjectId, u32> =
        FxHashMap::with_capacity_and_hasher(objects.len(), Default::default());
    let mut duplicates = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(&first) = index.get(&o.id) {
            let first_index = objects[first as usize].index;
            report.push(Problem::error(
                Some(o.index),
                Some(o.id),
                Some("IdObjet"),
                format!("duplicate id: also at index {first_index}"),
            ));
            duplicates.push(i);
        } else {
            index.insert(o.id, i as u32);
        }
    }
    if !duplicates.is_empty() {
        let mut position = 0;
        objects.retain(|_| {
            position += 1;
            duplicates.binary_search(&(position - 1)).is_err()
        });
        index.clear();
        for (i, o) in objects.iter().enumerate() {
            index.insert(o.id, i as u32);
        }
    }
    (objects, index)
}

/// Each object's in-file parents as flat lists, and the parents outside the file.
pub(crate) struct ResolvedParents {
    pub(crate) offsets: Vec<u32>,
    pub(crate) list: Vec<u32>,
    pub(crate) external: Vec<ObjectId>,
}

/// Resolves every object's parents: a self-parent and (unless external) a missing parent are
/// errors, a parent in a higher layer a warning.
pub(crate) fn resolve_parents(
    objects: &[ObjectDef],
    index: &FxHashMap<ObjectId, u32>,
    options: LoadOptions,
    report: &mut Report,
) -> ResolvedParents {
    let mut external: Vec<ObjectId> = Vec::new();
    let mut external_seen: FxHashSet<ObjectId> = FxHashSet::default();
    let mut offsets = Vec::with_capacity(objects.len() + 1);
    let mut list = Vec::new();
    offsets.push(0u32);
    for o in objects {
        for &p in &o.parents {
            let problem = |msg: String| {
                Problem::error(Some(o.index), Some(o.id), Some("IdObjet_Parent"), msg)
            };
            if p == o.id {
                report.push(problem("names itself as a parent".into()));
                continue;
            }
            match index.get(&p) {
                Some(&pi) => {
                    let parent = &objects[pi as usize];
                    if parent.zone > o.zone {
                        report.push(Problem::warning(
                            Some(o.index),
                            Some(o.id),
                            Some("IdObjet_Parent"),
                            format!("layer inversion: parent {p} is in {}, a higher layer than this object's {}", parent.zone, o.zone),
                        ));
                    }
                    list.push(pi);
                }
                None => match options.missing_parents {
                    MissingParents::Error => report.push(problem(format!(
                        "parent {p} does not exist in this file (use --missing-parents=external if it is loaded elsewhere)"
                    ))),
                    MissingParents::External => {
                        if external_seen.insert(p) {
                            external.push(p);
                        }
                    }
                },
            }
        }
        offsets.push(list.len() as u32);
    }
    ResolvedParents {
        offsets,
        list,
        external,
    }
}

/// Children lists from parent lists (a counting sort by parent).
pub(crate) fn children_of(
    n: usize,
    parent_offsets: &[u32],
    parent_list: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    let mut child_count = vec![0u32; n + 1];
    for &p in parent_list {
        child_count[p as usize + 1] += 1;
    }
    for i in 0..n {
        child_count[i + 1] += child_count[i];
    }
    let child_offsets = child_count.clone();
    let mut fill = child_count;
    let mut child_list = vec![0u32; parent_list.len()];
    for c in 0..n {
        for &p in &parent_list[parent_offsets[c] as usize..parent_offsets[c + 1] as usize] {
            child_list[fill[p as usize] as usize] = c as u32;
            fill[p as usize] += 1;
        }
    }
    (child_offsets, child_list)
}

/// Kahn's order, parents before children; `None` when there is a cycle.
pub(crate) fn topological_order(graph: &Graph) -> Option<Vec<u32>> {
    let n = graph.len();
    let mut pending: Vec<u32> = (0..n)
        .map(|i| graph.parents(i as u32).len() as u32)
        .collect();
    let mut order: Vec<u32> = (0..n as u32)
        .filter(|&i| pending[i as usize] == 0)
        .collect();
    order.reserve(n - order.len());
    let mut head = 0;
    while head < order.len() {
        let v = order[head];
        head += 1;
        for &c in graph.children(v) {
            pending[c as usize] -= 1;
            if pending[c as usize] == 0 {
                order.push(c);
            }
        }
    }
    (order.len() == n).then_some(order)
}
