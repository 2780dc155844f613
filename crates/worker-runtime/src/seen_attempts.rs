//! The attempts a worker runs or has just finished, by idempotency key (run, object, attempt):
//! a Ready event delivered twice, for example sent again after a broker outage, runs once.

use orchestrator_protocol::{ObjectId, ReadyEvent};
use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};

/// An attempt's idempotency key as plain numbers: a 64-bit SipHash of the run id, the object,
/// the attempt. (Copying the shared run id instead would touch one reference count from every
/// task on every thread.) Two runs whose ids hashed alike, with the same object at the same
/// attempt here at once, would cost the second a lease's wait: its attempt is then retried.
pub type AttemptKey = (u64, ObjectId, u32);

pub fn attempt_key(task: &ReadyEvent) -> AttemptKey {
    let run = BuildHasherDefault::<DefaultHasher>::default().hash_one(task.run_id.as_str());
    (run, task.id, task.attempt)
}

#[derive(Debug)]
pub struct SeenAttempts<K = AttemptKey> {
    // A fast hash: this is on every task's path.
    running: FxHashSet<K>,
    finished: FxHashSet<K>,
    /// Finished keys, oldest first, so that only the last `keep` are remembered.
    order: VecDeque<K>,
    keep: usize,
}

impl<K: Hash + Eq + Clone> SeenAttempts<K> {
    /// Remembers up to `keep` finished attempts.
    pub fn new(keep: usize) -> Self {
        SeenAttempts {
            running: FxHashSet::default(),
            finished: FxHashSet::default(),
            order: VecDeque::new(),
            keep,
        }
    }

    /// Whether the attempt `key` may start here: false when it runs here or has just finished.
    pub fn start(&mut self, key: &K) -> bool {
        if self.running.contains(key) || self.finished.contains(key) {
            return false;
        }
        self.running.insert(key.clone());
        true
    }

    /// The attempt `key` has ended (its result handed to the publisher, or its task gone).
    pub fn finish(&mut self, key: K) {
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
        assert!(seen.start(&"r/1/1"));
        assert!(!seen.start(&"r/1/1"), "running");
        assert!(seen.start(&"r/1/2"), "another attempt is another key");
        seen.finish("r/1/1");
        assert!(!seen.start(&"r/1/1"), "just finished");
        seen.finish("r/1/2");
        assert!(seen.start(&"r/2/1"));
        seen.finish("r/2/1");
        // Only the last two finished are remembered: r/1/1 is forgotten.
        assert!(seen.start(&"r/1/1"));
        assert!(!seen.start(&"r/1/2"));
    }
}
