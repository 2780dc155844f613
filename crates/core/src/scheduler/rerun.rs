//! Running failures again: every failure of a run (rerun), or one failed object and the
//! descendants it blocked (retry). What loaded is never touched; attempt numbers keep counting
//! up, so every attempt keeps its own idempotency key.

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
    #[error("object {id} is {state}: only a failed object can be retried")]
    NotFailed { id: ObjectId, state: &'static str },
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

    /// Puts failed object `id` back to waiting with every upstream-failed descendant it alone
    /// blocked (one still blocked by another failure stays as it is), and dispatches what of
    /// them is ready. Returns how many objects run again (`id` included).
    pub fn retry_object(
        &mut self,
        id: ObjectId,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<usize, RetryRefused> {
        let root = self.retryable(id)?;
        // The upstream-failed descendants reached through upstream-failed objects…
        let mut blocked: HashSet<u32> = HashSet::new();
        let mut stack: Vec<u32> = self.graph.children(root).to_vec();
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
                        p != root
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
        let mut reset: Vec<u32> = std::iter::once(root).chain(blocked).collect();
        reset.sort_unstable();
        self.letters.retain(|l| l.id != id);
        self.letters_removed.push(id);
        self.run_again(&reset, now, out);
        Ok(reset.len())
    }

    /// The index of object `id` if it may be retried (it failed), or why not.
    pub fn retryable(&self, id: ObjectId) -> Result<u32, RetryRefused> {
        let i = self
            .graph
            .index_of(id)
            .ok_or(RetryRefused::UnknownObject(id))?;
        match self.records[i as usize].state {
            ObjectState::Failed => Ok(i),
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
