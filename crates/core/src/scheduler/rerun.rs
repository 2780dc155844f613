//! Running failures again: every failure of a run (rerun), or one object and the descendants
//! it blocked (retry; an upstream-failed object through the failed ancestors that block it).
//! What loaded is never touched; attempt numbers keep counting up, so every attempt keeps its
//! own idempotency key.

use super::header::RunStatus;
use super::run::Run;
use super::state::ObjectState;
use super::steps::Action;
use orchestrator_protocol::ObjectId;
use std::collections::HashSet;

/// Why one object cannot be retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    #[error("object {0} is not in this run")]
    UnknownObject(ObjectId),
    #[error(
        "object {id} is {state}: only a failed, cancelled or upstream-failed object can be retried"
    )]
    NotFailed { id: ObjectId, state: &'static str },
}

/// What a retry ran again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    /// Objects that run again (the roots and the descendants they alone blocked).
    pub reset: usize,
    /// The objects retried as roots: the one asked for, or the failed ancestors that block it.
    pub roots: Vec<ObjectId>,
}

impl Run {
    /// Puts failed, upstream-failed and cancelled objects back to waiting (loaded ones are not
    /// touched) and dispatches what of them is ready; the run's dead letters go.
    pub fn reset_failed(&mut self, now: u64, out: &mut Vec<Action>) -> usize {
        let reset: Vec<u32> = (0..self.graph.len() as u32)
            .filter(|&i| {
                matches!(
                    self.records[i as usize].state,
                    ObjectState::Failed | ObjectState::UpstreamFailed | ObjectState::Cancelled
                )
            })
            .collect();
        self.letters.clear();
        self.letters_removed.clear();
        self.letters_cleared = true;
        self.run_again(&reset, now, out);
        reset.len()
    }

    /// Puts object `id` back to waiting with what it takes to load it, and dispatches what of
    /// them is ready: a failed (or cancelled) object is retried itself; an upstream-failed one
    /// through the failed ancestors that block it. Every upstream-failed descendant that only
    /// those blocked runs again too (one still blocked by another failure stays as it is).
    /// Returns how many objects run again and the objects retried as roots (`id`, or its
    /// blockers).
    pub fn retry_object(
        &mut self,
        id: ObjectId,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<Retried, RetryRefused> {
        let roots = self.retry_roots(id)?;
        let root_set: HashSet<u32> = roots.iter().copied().collect();
        // The upstream-failed descendants reached through upstream-failed objects…
        let mut blocked: HashSet<u32> = HashSet::new();
        let mut stack: Vec<u32> = roots
            .iter()
            .flat_map(|&r| self.graph.children(r).iter().copied())
            .collect();
        while let Some(c) = stack.pop() {
            if self.records[c as usize].state == ObjectState::UpstreamFailed && blocked.insert(c) {
                stack.extend_from_slice(self.graph.children(c));
            }
        }
        // …less those another failure (or a cancel) still blocks, to a fixed point.
        loop {
            let still: Vec<u32> = blocked
                .iter()
                .copied()
                .filter(|&c| {
                    self.graph.parents(c).iter().any(|&p| {
                        !root_set.contains(&p)
                            && match self.records[p as usize].state {
                                ObjectState::Failed | ObjectState::Cancelled => true,
                                ObjectState::UpstreamFailed => !blocked.contains(&p),
                                _ => false,
                            }
                    })
                })
                .collect();
            if still.is_empty() {
                break;
            }
            for c in still {
                blocked.remove(&c);
            }
        }
        let mut reset: Vec<u32> = roots.iter().copied().chain(blocked).collect();
        reset.sort_unstable();
        let retried: Vec<ObjectId> = roots.iter().map(|&r| self.graph.id(r)).collect();
        for r in &retried {
            self.letters.retain(|l| l.id != *r);
            self.letters_removed.push(*r);
        }
        self.run_again(&reset, now, out);
        Ok(Retried {
            reset: reset.len(),
            roots: retried,
        })
    }

    /// The objects a retry of `id` runs again as roots: `id` itself if it failed or was
    /// cancelled; if it is upstream-failed, the failed ancestors that block it (reached
    /// through upstream-failed ancestors). Anything else is refused.
    pub fn retry_roots(&self, id: ObjectId) -> Result<Vec<u32>, RetryRefused> {
        let i = self
            .graph
            .index_of(id)
            .ok_or(RetryRefused::UnknownObject(id))?;
        match self.records[i as usize].state {
            ObjectState::Failed | ObjectState::Cancelled => Ok(vec![i]),
            ObjectState::UpstreamFailed => {
                let mut roots = Vec::new();
                let mut seen: HashSet<u32> = HashSet::from([i]);
                let mut stack = vec![i];
                while let Some(o) = stack.pop() {
                    for &p in self.graph.parents(o) {
                        if !seen.insert(p) {
                            continue;
                        }
                        match self.records[p as usize].state {
                            ObjectState::Failed | ObjectState::Cancelled => roots.push(p),
                            ObjectState::UpstreamFailed => stack.push(p),
                            _ => {}
                        }
                    }
                }
                roots.sort_unstable();
                if roots.is_empty() {
                    // Nothing this run holds blocks it any more (cannot happen in a settled
                    // run): say so rather than run nothing.
                    return Err(RetryRefused::NotFailed {
                        id,
                        state: ObjectState::UpstreamFailed.as_str(),
                    });
                }
                Ok(roots)
            }
            state => Err(RetryRefused::NotFailed {
                id,
                state: state.as_str(),
            }),
        }
    }

    /// Objects that a rerun would run again: failed, upstream-failed and cancelled ones.
    pub fn failures(&self) -> usize {
        let c = self.counts();
        [
            ObjectState::Failed,
            ObjectState::UpstreamFailed,
            ObjectState::Cancelled,
        ]
        .into_iter()
        .map(|s| c.in_state(s))
        .sum()
    }

    /// Objects `reset` (terminal, not loaded) wait again; the run runs again.
    fn run_again(&mut self, reset: &[u32], now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        for &i in reset {
            self.set_state(i, ObjectState::Waiting);
            let r = &mut self.records[i as usize];
            r.failures = 0;
            r.due_ms = 0;
            r.finished_ms = 0;
        }
        self.header.cancelled = false;
        self.set_status(RunStatus::Running);
        out.push(Action::FailuresReset);
        for &i in reset {
            self.pending_parents[i as usize] = self.unloaded_parents(i);
            if self.pending_parents[i as usize] == 0 {
                self.enqueue(i);
            }
        }
        self.dispatch_ready(now, out);
        self.check_finished(out);
    }
}
