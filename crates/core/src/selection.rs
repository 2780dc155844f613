//! Which objects of a graph take part in a run: all of them, the ancestors a set of targets
//! needs, or one zone with the ancestors it needs.

use crate::graph::Graph;
use orchestrator_protocol::{ObjectId, Zone};

/// Which objects of a graph take part in a run.
#[derive(Clone, Debug)]
pub struct Selection {
    pub included: Vec<bool>,
}

/// A target that is not in the file, or that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("target {0} is not in the file")]
    UnknownTarget(ObjectId),
    #[error("target {0} is disabled (EtatObjet is not actif)")]
    DisabledTarget(ObjectId),
}

impl Selection {
    /// Every enabled object.
    pub fn all(graph: &Graph) -> Selection {
        Selection {
            included: graph.objects.iter().map(|o| o.enabled).collect(),
        }
    }

    /// The targets (and every object of `zone`, if given) with all the ancestors they need.
    /// Disabled objects count as loaded outside the run, so the walk stops at them.
    pub fn for_targets(
        graph: &Graph,
        targets: &[ObjectId],
        zone: Option<Zone>,
    ) -> Result<Selection, SelectionError> {
        if targets.is_empty() && zone.is_none() {
            return Ok(Selection::all(graph));
        }
        let mut stack = Vec::new();
        for t in targets {
            let &i = graph
                .index
                .get(t)
                .ok_or(SelectionError::UnknownTarget(*t))?;
            if !graph.objects[i as usize].enabled {
                return Err(SelectionError::DisabledTarget(*t));
            }
            stack.push(i);
        }
        if let Some(z) = zone {
            stack.extend((0..graph.len() as u32).filter(|&i| {
                let o = &graph.objects[i as usize];
                o.zone == z && o.enabled
            }));
        }
        let mut included = vec![false; graph.len()];
        while let Some(v) = stack.pop() {
            if included[v as usize] || !graph.objects[v as usize].enabled {
                continue;
            }
            included[v as usize] = true;
            stack.extend_from_slice(graph.parents(v));
        }
        Ok(Selection { included })
    }

    pub fn contains(&self, i: u32) -> bool {
        self.included.get(i as usize).copied().unwrap_or(false)
    }

    pub fn count(&self) -> usize {
        self.included.iter().filter(|b| **b).count()
    }
}
