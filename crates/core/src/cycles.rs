//! Cycles in an object graph: one path per strongly connected component, as the user can follow
//! it (`3001 -> 2001 -> 3001`, where each object needs the next).

use crate::diagnostics::{Problem, Report};
use crate::graph::Graph;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::DiGraph;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// One problem per strongly connected component: a cycle through it, printed as a path in which
/// each object needs the next (`3001 -> 2001 -> 3001`).
pub(crate) fn report_cycles(graph: &Graph, pg: &DiGraph<(), ()>, report: &mut Report) {
    let mut component = vec![usize::MAX; graph.len()];
    let mut cycles = Vec::new();
    for (ci, scc) in kosaraju_scc(pg).into_iter().enumerate() {
        if scc.len() < 2 {
            continue;
        }
        for ix in &scc {
            component[ix.index()] = ci;
        }
        let start = scc.iter().map(|ix| ix.index() as u32).min().unwrap_or(0);
        cycles.push((start, ci, scc.len()));
    }
    cycles.sort();
    for (start, ci, size) in cycles {
        let path = cycle_through(graph, start, |v| component[v as usize] == ci);
        let text: Vec<String> = path
            .iter()
            .map(|&i| graph.objects[i as usize].id.to_string())
            .collect();
        let o = &graph.objects[start as usize];
        let more = if size > path.len() - 1 {
            format!(" ({size} objects are caught in this cycle group)")
        } else {
            String::new()
        };
        report.push(Problem::error(
            Some(o.index),
            Some(o.id),
            Some("IdObjet_Parent"),
            format!("cycle: {}{more}", text.join(" -> ")),
        ));
    }
}

/// The shortest cycle through `start` inside one component, in "needs" order, start repeated at
/// the end.
fn cycle_through(graph: &Graph, start: u32, inside: impl Fn(u32) -> bool) -> Vec<u32> {
    // Breadth-first along "needs" edges (child -> parent) from start until start comes back.
    let mut came_from: FxHashMap<u32, u32> = FxHashMap::default();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &p in graph.parents(v) {
            if !inside(p) {
                continue;
            }
            if p == start {
                let mut path = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = came_from.get(&cur).copied().unwrap_or(start);
                    path.push(cur);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if p != start && !came_from.contains_key(&p) {
                came_from.insert(p, v);
                queue.push_back(p);
            }
        }
    }
    vec![start, start]
}
