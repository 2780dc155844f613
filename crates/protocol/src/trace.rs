//! Trace context for the messages of one attempt: a W3C `traceparent` derived from the run (the
//! trace) and the attempt (the span), so the orchestrator and every worker put the same context
//! on the messages of an attempt without passing it along.

use crate::{ControlEvent, FailedEvent, ObjectId, ProgressEvent, ReadyEvent, ResultEvent, RunId};

/// FNV-1a, 64 bits, over `parts` (seeded so that two seeds give independent halves).
fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A zero id is invalid in W3C trace context.
    h.max(1)
}

/// `00-<trace id: the run>-<span id: run, object, attempt>-01`.
pub fn traceparent(run: &RunId, object: ObjectId, attempt: u32) -> String {
    let r = run.as_str().as_bytes();
    let trace = (fnv(1, &[r]), fnv(2, &[r]));
    let span = fnv(3, &[r, &object.0.to_le_bytes(), &attempt.to_le_bytes()]);
    format!("00-{:016x}{:016x}-{span:016x}-01", trace.0, trace.1)
}

/// An event that belongs to one attempt of one object in one run.
pub trait Traced {
    fn run_id(&self) -> &RunId;
    fn object_id(&self) -> ObjectId;
    /// 0 when the event does not say (an old worker's result).
    fn attempt_number(&self) -> u32;
    fn traceparent(&self) -> String {
        traceparent(self.run_id(), self.object_id(), self.attempt_number())
    }
}

macro_rules! traced {
    ($t:ty, $attempt:expr) => {
        impl Traced for $t {
            fn run_id(&self) -> &RunId {
                &self.run_id
            }
            fn object_id(&self) -> ObjectId {
                self.id
            }
            fn attempt_number(&self) -> u32 {
                let f: fn(&$t) -> u32 = $attempt;
                f(self)
            }
        }
    };
}

traced!(ReadyEvent, |e| e.attempt);
traced!(ResultEvent, |e| e.attempt.unwrap_or(0));
traced!(ProgressEvent, |e| e.attempt);
traced!(FailedEvent, |e| e.attempt);

/// A control message belongs to a run, no object.
impl Traced for ControlEvent {
    fn run_id(&self) -> &RunId {
        &self.run_id
    }
    fn object_id(&self) -> ObjectId {
        ObjectId(0)
    }
    fn attempt_number(&self) -> u32 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trace_per_run_one_span_per_attempt() {
        let run = RunId::new("run-1");
        let a = traceparent(&run, ObjectId(1001), 1);
        let b = traceparent(&run, ObjectId(1001), 2);
        let c = traceparent(&RunId::new("run-2"), ObjectId(1001), 1);
        assert_eq!(a.len(), 55, "{a}");
        assert!(a.starts_with("00-") && a.ends_with("-01"));
        assert_eq!(a[3..35], b[3..35], "same run, same trace");
        assert_ne!(a[36..52], b[36..52], "another attempt, another span");
        assert_ne!(a[3..35], c[3..35], "another run, another trace");
        assert_eq!(a, traceparent(&run, ObjectId(1001), 1), "stable");
    }
}
