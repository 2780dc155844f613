//! What the core's property tests share: a run graph of objects 1000, 1001, … in the given zones,
//! each with parents of lower indices only (a DAG; self-links and repeats dropped).

use orchestrator_core::objects::Criticality;
use orchestrator_core::run_graph::{RunGraph, RunNode};
use orchestrator_protocol::{ObjectId, Zone};
use std::sync::Arc;

pub fn graph(zones: &[u8], parents: Vec<Vec<u32>>) -> Arc<RunGraph> {
    let raw = orchestrator_protocol::RawJson::from_string("{}".into());
    let nodes = zones
        .iter()
        .enumerate()
        .map(|(i, &z)| RunNode {
            id: ObjectId(1000 + i as u64),
            zone: Zone::ALL[z as usize],
            criticality: Criticality::Medium,
            name: format!("o{i}"),
            raw: raw.clone(),
        })
        .collect();
    let parents = parents
        .into_iter()
        .enumerate()
        .map(|(i, mut ps)| {
            ps.retain(|&p| (p as usize) < i);
            ps.sort_unstable();
            ps.dedup();
            ps
        })
        .collect();
    Arc::new(RunGraph::from_parents(nodes, parents).unwrap_or_else(|e| panic!("{e}")))
}
