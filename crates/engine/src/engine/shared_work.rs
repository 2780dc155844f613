//! Never two at once, carried out: the core decides (`orchestrator_core::scheduler::shared`);
//! here a Ready event whose attempt the core held does not go out, and the held attempts it
//! releases are carried out like any step's actions.

use super::{Engine, Outbox};
use orchestrator_core::scheduler::{hold_if_shared, release_shared};

impl Engine {
    /// Of the Ready events from `out.ready[from..]`, those whose object another run has in
    /// flight are held in their run (stored with the turn) and do not go out.
    pub(super) fn hold_shared(&mut self, from: usize, out: &mut Outbox) {
        if self.runs.len() < 2 || out.ready.len() <= from {
            return;
        }
        for ready in out.ready.split_off(from) {
            match hold_if_shared(&mut self.runs, &ready.run_id, ready.id, ready.attempt) {
                Some(other) => {
                    tracing::info!(run = %ready.run_id, object = %ready.id, attempt = ready.attempt, %other, "in flight in another run: held until its attempt ends");
                    if out.touched.last() != Some(&ready.run_id) {
                        out.touched.push(ready.run_id.clone());
                    }
                }
                None => out.ready.push(ready),
            }
        }
    }

    /// Releases the attempts held for others whose attempt ended this turn: each is loaded by
    /// that run's load (its attempt says so), or goes out.
    pub(super) fn release_shared(&mut self, out: &mut Outbox) {
        let now = self.clock.now_ms();
        for (run, mut actions) in release_shared(&mut self.runs, now) {
            self.carry_out(&run, &mut actions, out);
        }
    }
}
