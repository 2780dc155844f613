//! The attempts a worker runs or has just finished, by idempotency key (run, object, attempt):
//! a Ready event delivered twice, for example sent again after a broker outage, runs once.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct SeenAttempts {
    running: HashSet<String>,
    finished: HashSet<String>,
    /// Finished keys, oldest first, so that only the last `keep` are remembered.
    order: VecDeque<String>,
    keep: usize,
}

impl SeenAttempts {
    /// Remembers up to `keep` finished attempts.
    pub fn new(keep: usize) -> Self {
        SeenAttempts {
            running: HashSet::new(),
            finished: HashSet::new(),
            order: VecDeque::new(),
            keep,
        }
    }

    /// Whether the attempt `key` may start here: false when it runs here or has just finished.
    pub fn start(&mut self, key: &str) -> bool {
        if self.running.contains(key) || self.finished.contains(key) {
            return false;
        }
        self.running.insert(key.to_string());
        true
    }

    /// The attempt `key` has ended (its result handed to the publisher, or its task gone).
    pub fn finish(&mut self, key: String) {
        self.running.remove(&key);
        if self.keep == 0 || !self.finished.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.keep {
            if let Some(old) = self.order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeenAttempts;

    #[test]
    fn an_attempt_runs_once_while_running_and_while_remembered() {
        let mut seen = SeenAttempts::new(2);
        assert!(seen.start("r/1/1"));
        assert!(!seen.start("r/1/1"), "running");
        assert!(seen.start("r/1/2"), "another attempt is another key");
        seen.finish("r/1/1".into());
        assert!(!seen.start("r/1/1"), "just finished");
        seen.finish("r/1/2".into());
        assert!(seen.start("r/2/1"));
        seen.finish("r/2/1".into());
        // Only the last two finished are remembered: r/1/1 is forgotten.
        assert!(seen.start("r/1/1"));
        assert!(!seen.start("r/1/2"));
    }
}
