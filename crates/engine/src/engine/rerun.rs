//! Reruns and retries a server is asked for: on a run the engine holds, in place; on one it
//! does not (finished, or stopped), on the run opened from the store, which it then holds.

use super::{Engine, EngineError, Outbox, RerunAnswer, RerunRefused};
use orchestrator_core::scheduler::{Action, Run, RunStatus};
use orchestrator_protocol::{ObjectId, RunId};

impl Engine {
    /// Every failure of `run` again (`object: None`), or one failed object and what it
    /// blocked. A whole rerun waits for the run to be settled; a retry does not.
    pub(super) async fn rerun(
        &mut self,
        run: RunId,
        object: Option<ObjectId>,
        stored: Option<Box<Run>>,
        out: &mut Outbox,
    ) -> Result<RerunAnswer, EngineError> {
        let now = self.clock.now_ms();
        if let Some(held) = self.runs.get_mut(&run) {
            if let Err(refused) = refusal(held, &run, object) {
                return Ok(RerunAnswer::Refused(refused));
            }
            let mut actions = std::mem::take(&mut self.actions);
            let (reset, retried) = run_again(held, object, now, &mut actions);
            self.carry_out(&run, &mut actions, out);
            self.actions = actions;
            tracing::info!(run = %run, ?object, reset, ?retried, "failures run again");
            return Ok(RerunAnswer::Done { reset, retried });
        }
        let Some(stored) = stored else {
            return Ok(RerunAnswer::NotHeld);
        };
        if let Err(refused) = refusal(&stored, &run, object) {
            return Ok(RerunAnswer::Refused(refused));
        }
        let (mut reset, mut retried) = (0, Vec::new());
        self.add_run(*stored, None, |r, now, actions| {
            (reset, retried) = run_again(r, object, now, actions);
        })
        .await?;
        tracing::info!(run = %run, ?object, reset, ?retried, "failures of a stored run run again");
        Ok(RerunAnswer::Done { reset, retried })
    }
}

/// Runs every failure of `run` again, or `object` and what it blocked (checked beforehand by
/// [`refusal`]); returns how many objects run again and, for a retry, the objects retried as
/// roots (the object, or the failed ancestors that blocked it).
fn run_again(
    run: &mut Run,
    object: Option<ObjectId>,
    now: u64,
    actions: &mut Vec<Action>,
) -> (usize, Vec<ObjectId>) {
    match object {
        None => (run.reset_failed(now, actions), Vec::new()),
        Some(id) => match run.retry_object(id, now, actions) {
            Ok(retried) => (retried.reset, retried.roots),
            Err(_) => (0, Vec::new()),
        },
    }
}

/// Why `run` may not be rerun (or `object` of it retried) now, if it may not.
fn refusal(run: &Run, id: &RunId, object: Option<ObjectId>) -> Result<(), RerunRefused> {
    if run.status() == RunStatus::Cancelling {
        return Err(RerunRefused::Cancelling(id.clone()));
    }
    match object {
        Some(object) => run
            .retry_roots(object)
            .map(|_| ())
            .map_err(|why| RerunRefused::Retry {
                run: id.clone(),
                why,
            }),
        None if !run.is_settled() => Err(RerunRefused::Running(id.clone())),
        None if run.failures() == 0 => Err(RerunRefused::NothingFailed(id.clone())),
        None => Ok(()),
    }
}
