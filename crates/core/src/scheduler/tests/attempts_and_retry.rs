//! Scenario tests of attempt history (one record per ended attempt, with what its worker
//! said) and of retrying one failed object with the descendants it blocked.

use super::*;

fn failed(object: u64, attempt: u32, reason: &str, retryable: bool) -> Event {
    Event::Failed {
        id: id(object),
        attempt: Some(attempt),
        reason: reason.into(),
        retryable,
        report: AttemptReport {
            duration_ms: 5,
            text: AttemptText {
                worker: "w1".into(),
                output: format!("out of {object}/{attempt}"),
                ..AttemptText::default()
            }
            .shared(),
            simulated: false,
        },
    }
}

fn loaded(object: u64, attempt: u32) -> Event {
    Event::Loaded {
        id: id(object),
        attempt: Some(attempt),
        report: AttemptReport {
            duration_ms: 3,
            text: AttemptText {
                worker: "w2".into(),
                info: "rows=1".into(),
                ..AttemptText::default()
            }
            .shared(),
            simulated: false,
        },
    }
}

#[test]
fn every_ended_attempt_is_in_a_delta_once_with_what_its_worker_said() {
    let config = SchedulerConfig {
        max_retries: 1,
        ..SchedulerConfig::default()
    };
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(10, &mut out);
    run.handle(failed(1000, 1, "boom", true), 20, &mut out);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    assert_eq!(delta.attempts.len(), 1);
    let (object, a) = &delta.attempts[0];
    assert_eq!(*object, id(1000));
    assert_eq!(
        (a.attempt, a.outcome, a.reason(), a.worker()),
        (1, AttemptOutcome::Failed, "boom", "w1")
    );
    assert_eq!((a.dispatched_ms, a.started_ms, a.ended_ms), (10, 15, 20));
    assert_eq!(a.output(), "out of 1000/1");
    // The retry comes due and loads: its record, and nothing of the first again.
    run.tick(1_000_000, &mut out);
    run.handle(loaded(1000, 2), 1_000_010, &mut out);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    let attempts: Vec<_> = delta
        .attempts
        .iter()
        .map(|(o, a)| (o.0, a.attempt, a.outcome, a.info()))
        .collect();
    assert_eq!(attempts, [(1000, 2, AttemptOutcome::Loaded, "rows=1")]);
    // A result for an attempt already answered leaves no record.
    run.handle(loaded(1000, 2), 1_000_020, &mut out);
    assert!(run.take_delta().is_none_or(|d| d.attempts.is_empty()));
}

#[test]
fn an_expired_lease_is_an_attempt_of_its_own() {
    let config = SchedulerConfig {
        lease_ms: 100,
        ..SchedulerConfig::default()
    };
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(
        Event::Started {
            id: id(1000),
            attempt: 1,
        },
        1,
        &mut out,
    );
    run.take_delta();
    run.tick(500, &mut out);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    let expired: Vec<_> = delta
        .attempts
        .iter()
        .map(|(o, a)| (o.0, a.attempt, a.outcome))
        .collect();
    assert_eq!(expired, [(1000, 1, AttemptOutcome::Expired)]);
}

/// The diamond with a second failure: b(2000) fails for good, so d(3000) is blocked twice
/// over once c(2001) fails too.
fn diamond_with_failures(fail_c: bool) -> Run {
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(loaded(1000, 1), 1, &mut out);
    run.handle(loaded(1001, 1), 1, &mut out);
    run.handle(failed(2000, 1, "bad", false), 2, &mut out);
    if fail_c {
        run.handle(failed(2001, 1, "bad too", false), 2, &mut out);
    }
    run
}

#[test]
fn retrying_one_object_runs_it_and_what_it_alone_blocked() {
    let mut run = diamond_with_failures(false);
    let mut out = Vec::new();
    if !run.is_finished() {
        run.handle(loaded(2001, 1), 3, &mut out);
    }
    assert!(run.is_finished());
    assert_eq!(run.record(3).state, ObjectState::UpstreamFailed);
    run.take_delta();
    out.clear();
    assert_eq!(
        run.retry_object(id(2000), 10, &mut out).map(|r| r.reset),
        Ok(2)
    );
    assert_eq!(run.status(), RunStatus::Running);
    assert_eq!(dispatched(&out), [(1, 2)]);
    assert_eq!(run.record(3).state, ObjectState::Waiting);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    assert_eq!(delta.dead_letters_removed, [id(2000)]);
    // What loaded is untouched.
    assert_eq!(run.record(0).attempt, 1);
    run.handle(loaded(2000, 2), 11, &mut out);
    run.handle(loaded(3000, 1), 12, &mut out);
    assert!(run.is_finished());
    assert_eq!(run.summary().loaded, 5);
}

#[test]
fn a_descendant_another_failure_still_blocks_stays_blocked() {
    let mut run = diamond_with_failures(true);
    assert!(run.is_finished());
    let mut out = Vec::new();
    assert_eq!(
        run.retry_object(id(2000), 10, &mut out).map(|r| r.reset),
        Ok(1)
    );
    assert_eq!(run.record(3).state, ObjectState::UpstreamFailed);
    run.handle(loaded(2000, 2), 11, &mut out);
    assert!(run.is_finished(), "nothing waits on a blocked object");
    // Refusals name the object and why.
    assert_eq!(
        run.retry_object(id(1000), 12, &mut out),
        Err(RetryRefused::NotFailed {
            id: id(1000),
            state: "loaded"
        })
    );
    assert_eq!(
        run.retry_object(id(9), 12, &mut out),
        Err(RetryRefused::UnknownObject(id(9)))
    );
    // Retrying the other failure now frees the last one.
    assert_eq!(
        run.retry_object(id(2001), 13, &mut out).map(|r| r.reset),
        Ok(2)
    );
}

#[test]
fn retrying_an_upstream_failed_object_retries_the_failures_that_block_it() {
    // d(3000) is blocked by both b(2000) and c(2001): retrying d retries both, and d.
    let mut run = diamond_with_failures(true);
    assert!(run.is_finished());
    assert_eq!(run.header().outcome(), RunOutcome::Failed);
    run.take_delta();
    let mut out = Vec::new();
    let retried = run
        .retry_object(id(3000), 10, &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retried.roots, [id(2000), id(2001)]);
    assert_eq!(retried.reset, 3);
    assert_eq!(run.header().outcome(), RunOutcome::Running);
    let mut sent = dispatched(&out);
    sent.sort_unstable();
    assert_eq!(sent, [(1, 2), (2, 2)]);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    assert_eq!(delta.dead_letters_removed, [id(2000), id(2001)]);
    run.handle(loaded(2000, 2), 11, &mut out);
    run.handle(loaded(2001, 2), 11, &mut out);
    run.handle(loaded(3000, 1), 12, &mut out);
    assert!(run.is_finished());
    assert_eq!(run.summary().loaded, 5);
    assert_eq!(run.header().outcome(), RunOutcome::Succeeded);
}

#[test]
fn a_run_says_how_it_ended() {
    let mut run = diamond_with_failures(false);
    let mut out = Vec::new();
    assert_eq!(run.header().outcome(), RunOutcome::Running);
    run.handle(loaded(2001, 1), 3, &mut out);
    assert_eq!(run.header().outcome(), RunOutcome::Failed);
    // Cancelled by a user while an object was still waiting: cancelled.
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    run.start(0, &mut out);
    run.handle(loaded(1000, 1), 1, &mut out);
    run.cancel(2, &mut out);
    assert_eq!(run.header().outcome(), RunOutcome::Running, "cancelling");
    for object in [1001, 2000, 2001] {
        run.handle(loaded(object, 1), 3, &mut out);
    }
    assert!(run.is_finished());
    assert_eq!(run.header().outcome(), RunOutcome::Cancelled);
    // Interrupted.
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    run.start(0, &mut out);
    run.interrupt(1, &mut out);
    assert_eq!(run.header().outcome(), RunOutcome::Interrupted);
}

#[test]
fn the_delta_that_finishes_a_run_carries_its_loads_once() {
    let mut run = diamond_with_failures(false);
    let mut out = Vec::new();
    run.take_delta();
    run.handle(loaded(2001, 1), 30, &mut out);
    assert!(run.is_finished());
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    let loads: Vec<(u64, u64, u32)> = delta
        .loads
        .iter()
        .map(|l| (l.id.0, l.at_ms, l.attempt))
        .collect();
    assert_eq!(loads, [(1000, 1, 1), (2001, 30, 1), (1001, 1, 1)]);
    // Not again; and again, with the retried object, once the rerun finishes.
    assert!(run.take_delta().is_none_or(|d| d.loads.is_empty()));
    run.retry_object(id(2000), 40, &mut out).unwrap_or_default();
    run.handle(loaded(2000, 2), 41, &mut out);
    run.handle(loaded(3000, 1), 42, &mut out);
    let delta = run.take_delta().unwrap_or_else(|| panic!("a delta"));
    assert_eq!(delta.loads.len(), 5);
}
