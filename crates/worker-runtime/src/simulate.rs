//! `simulate[:MS[:FAIL_PROB]]`: waits MS milliseconds and fails with probability FAIL_PROB,
//! drawn from a seed, the object and the attempt (not the run's id, which holds its start time),
//! so that a demo or a benchmark run again with the same seed fails the same attempts.

use crate::handler::{Handler, Outcome, Ran};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SimulateHandler {
    pub duration: Duration,
    pub fail_probability: f64,
    pub seed: u64,
}

#[async_trait]
impl Handler for SimulateHandler {
    async fn handle(&self, task: &ReadyEvent) -> Ran {
        if !self.duration.is_zero() {
            tokio::time::sleep(self.duration).await;
        }
        if self.fail_probability > 0.0 {
            let mut h = DefaultHasher::new();
            (self.seed, task.id.0, task.attempt).hash(&mut h);
            if fastrand::Rng::with_seed(h.finish()).f64() < self.fail_probability {
                return Outcome::Failed {
                    reason: "simulated failure".into(),
                    retryable: true,
                }
                .into();
            }
        }
        Outcome::Loaded {
            info: "simulated".into(),
        }
        .into()
    }

    fn simulates(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "simulate:{}:{}",
            self.duration.as_millis(),
            self.fail_probability
        )
    }
}
