//! `simulate[:MS[:FAIL_PROB]]`: waits MS milliseconds and fails with probability FAIL_PROB,
//! drawn from a seed and the attempt's key, so a demo or a benchmark is reproducible.

use crate::handler::{Handler, Outcome};
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
    async fn handle(&self, task: &ReadyEvent) -> Outcome {
        if !self.duration.is_zero() {
            tokio::time::sleep(self.duration).await;
        }
        if self.fail_probability > 0.0 {
            let mut h = DefaultHasher::new();
            (self.seed, task.run_id.as_str(), task.id.0, task.attempt).hash(&mut h);
            if fastrand::Rng::with_seed(h.finish()).f64() < self.fail_probability {
                return Outcome::Failed {
                    reason: "simulated failure".into(),
                    retryable: true,
                };
            }
        }
        Outcome::Loaded {
            info: "simulated".into(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "simulate:{}:{}",
            self.duration.as_millis(),
            self.fail_probability
        )
    }
}
