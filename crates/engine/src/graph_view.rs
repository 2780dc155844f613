//! A run's graph with each object's state, whole or cut down (`targets` and their ancestors,
//! or the objects `around` one within `depth` links), as JSON or as DOT coloured by state.

use orchestrator_core::plan::escape_dot;
use orchestrator_core::scheduler::{ObjectState, Run};
use orchestrator_protocol::{ObjectId, Zone};
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};

/// Which part of the graph to show.
#[derive(Clone, Debug, Default)]
pub struct GraphCut {
    /// These objects and every ancestor of theirs.
    pub targets: Vec<ObjectId>,
    /// This object and those within `depth` links of it, up or down.
    pub around: Option<ObjectId>,
    pub depth: u32,
}

/// An object the cut names is not in the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("object {0} is not in this run")]
pub struct UnknownObject(pub ObjectId);

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
pub struct GraphNode {
    pub id: ObjectId,
    pub name: String,
    pub zone: Zone,
    pub state: ObjectState,
    pub attempt: u32,
    /// Its level: 0 without parents in the run, else one more than its deepest parent's.
    pub level: u32,
}

/// The objects of a cut, and the links between them (parent, child).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
pub struct GraphView {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<(ObjectId, ObjectId)>,
}

impl GraphView {
    pub fn of(run: &Run, cut: &GraphCut) -> Result<GraphView, UnknownObject> {
        let graph = run.graph();
        let index = |id: ObjectId| graph.index_of(id).ok_or(UnknownObject(id));
        let mut chosen: BTreeSet<u32> = BTreeSet::new();
        if cut.targets.is_empty() && cut.around.is_none() {
            chosen.extend(0..graph.len() as u32);
        }
        let mut stack = Vec::new();
        for &t in &cut.targets {
            stack.push(index(t)?);
        }
        while let Some(i) = stack.pop() {
            if chosen.insert(i) {
                stack.extend_from_slice(graph.parents(i));
            }
        }
        if let Some(center) = cut.around {
            let mut queue = VecDeque::from([(index(center)?, 0u32)]);
            let mut seen = BTreeSet::new();
            while let Some((i, d)) = queue.pop_front() {
                if !seen.insert(i) {
                    continue;
                }
                chosen.insert(i);
                if d == cut.depth {
                    continue;
                }
                for &n in graph.parents(i).iter().chain(graph.children(i)) {
                    queue.push_back((n, d + 1));
                }
            }
        }
        let level = levels(graph);
        let nodes = chosen
            .iter()
            .map(|&i| GraphNode {
                id: graph.id(i),
                name: graph.name(i).to_string(),
                zone: graph.zone(i),
                state: run.record(i).state,
                attempt: run.record(i).attempt,
                level: level[i as usize],
            })
            .collect();
        let edges = chosen
            .iter()
            .flat_map(|&c| graph.parents(c).iter().map(move |&p| (p, c)))
            .filter(|(p, _)| chosen.contains(p))
            .map(|(p, c)| (graph.id(p), graph.id(c)))
            .collect();
        Ok(GraphView { nodes, edges })
    }

    /// DOT, one cluster per zone, each object filled with its state's colour.
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph run {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
        );
        for zone in Zone::ALL {
            let members: Vec<&GraphNode> = self.nodes.iter().filter(|n| n.zone == zone).collect();
            if members.is_empty() {
                continue;
            }
            s.push_str(&format!(
                "  subgraph \"cluster_{z}\" {{\n    label=\"{z}\";\n",
                z = zone.as_str()
            ));
            for n in members {
                s.push_str(&format!(
                    "    \"{}\" [label=\"{}\\n{}\\n{}\", fillcolor=\"{}\"];\n",
                    n.id,
                    n.id,
                    escape_dot(&n.name),
                    n.state.as_str(),
                    colour(n.state)
                ));
            }
            s.push_str("  }\n");
        }
        for (p, c) in &self.edges {
            s.push_str(&format!("  \"{p}\" -> \"{c}\";\n"));
        }
        s.push_str("}\n");
        s
    }
}

/// The fill colour of a state.
pub fn colour(state: ObjectState) -> &'static str {
    match state {
        ObjectState::Waiting => "#eeeeee",
        ObjectState::Queued => "#d9e8fb",
        ObjectState::Dispatched => "#b3d1f7",
        ObjectState::Held => "#c5b0d5",
        ObjectState::Running => "#5b9bd5",
        ObjectState::RetryWait => "#ffd966",
        ObjectState::Loaded => "#a9d18e",
        ObjectState::Failed => "#f4826f",
        ObjectState::UpstreamFailed => "#f8cbad",
        ObjectState::Cancelled => "#bfbfbf",
    }
}

/// Each object's level in the whole run: 0 without parents, else one more than its deepest
/// parent's (Kahn's order: O(objects + links)).
fn levels(graph: &orchestrator_core::run_graph::RunGraph) -> Vec<u32> {
    let n = graph.len();
    let mut level = vec![0u32; n];
    let mut pending: Vec<u32> = (0..n as u32)
        .map(|i| graph.parents(i).len() as u32)
        .collect();
    let mut ready: Vec<u32> = (0..n as u32)
        .filter(|&i| pending[i as usize] == 0)
        .collect();
    while let Some(i) = ready.pop() {
        for &c in graph.children(i) {
            let c = c as usize;
            level[c] = level[c].max(level[i as usize] + 1);
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push(c as u32);
            }
        }
    }
    level
}
