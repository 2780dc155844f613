//! The worker runtime: takes Ready tasks for one zone from a bus, runs them with bounded
//! concurrency, reports `Started` and heartbeats, enforces the task timeout, publishes results
//! with timings, and on shutdown stops taking work and finishes what it started.

use crate::cancels::{self, RunCancels};
use crate::handler::{Handler, Outcome, Ran};
use crate::seen_attempts::{AttemptKey, SeenAttempts, attempt_key};
use futures::FutureExt;
use orchestrator_bus::{AckToken, Bus, BusError, Delivery, retry};
use orchestrator_protocol::{ProgressEvent, ProgressKind, ReadyEvent, ResultEvent, Zone};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The reason of an attempt stopped because its run was cancelled.
const CANCELLED: &str = "cancelled: the run was cancelled while the attempt ran";

/// Finished attempts a worker remembers, to run an attempt delivered again only once.
const REMEMBERED_ATTEMPTS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub zone: Zone,
    /// Tasks run at once (`MAX_WORKERS`).
    pub max_workers: usize,
    /// An attempt still running after this long is stopped and reported failed (retryable).
    pub task_timeout: Option<Duration>,
    /// How often a running attempt says it is alive.
    pub heartbeat_interval: Duration,
    /// An attempt reports `Started` once it has run this long. One that ends sooner reports only
    /// its result, which implies it started: quick tasks cost one message instead of two.
    pub started_after: Duration,
    /// Name of this worker in results and logs.
    pub worker_id: String,
    /// Consumer group on the bus (`worker-<zone>`).
    pub group: String,
}

impl WorkerConfig {
    pub fn new(zone: Zone) -> Self {
        WorkerConfig {
            zone,
            max_workers: 4,
            task_timeout: None,
            heartbeat_interval: Duration::from_secs(5),
            started_after: Duration::from_millis(50),
            worker_id: format!("{}-{}", zone.short(), std::process::id()),
            group: format!("worker-{}", zone.short()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// What a worker counts, as Prometheus metrics labelled with its zone (register them with
/// [`WorkerStats::register`] to serve them).
#[derive(Clone, Debug)]
pub struct WorkerStats {
    pub loaded: IntCounter,
    pub failed: IntCounter,
    pub timed_out: IntCounter,
    pub in_flight: IntGauge,
    pub duration: Histogram,
    /// Ready events for an attempt this worker runs or has just finished, acknowledged
    /// without running it again.
    pub duplicates: IntCounter,
}

impl WorkerStats {
    pub fn new(zone: Zone) -> Result<WorkerStats, prometheus::Error> {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("zone", zone.as_str());
        Ok(WorkerStats {
            loaded: IntCounter::with_opts(opts(
                "orchestrator_worker_tasks_loaded_total",
                "Tasks that ended loaded.",
            ))?,
            failed: IntCounter::with_opts(opts(
                "orchestrator_worker_tasks_failed_total",
                "Tasks that ended failed (timeouts included).",
            ))?,
            timed_out: IntCounter::with_opts(opts(
                "orchestrator_worker_tasks_timed_out_total",
                "Tasks stopped at their timeout.",
            ))?,
            in_flight: IntGauge::with_opts(opts(
                "orchestrator_worker_tasks_in_flight",
                "Tasks running now.",
            ))?,
            duplicates: IntCounter::with_opts(opts(
                "orchestrator_worker_duplicate_ready_total",
                "Ready events for an attempt this worker runs or has just finished, acknowledged without running it again.",
            ))?,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "orchestrator_worker_task_duration_seconds",
                    "How long the handler ran.",
                )
                .const_label("zone", zone.as_str())
                .buckets(vec![
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                    300.0, 600.0,
                ]),
            )?,
        })
    }

    /// Adds these metrics to `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.loaded.clone()))?;
        registry.register(Box::new(self.failed.clone()))?;
        registry.register(Box::new(self.timed_out.clone()))?;
        registry.register(Box::new(self.in_flight.clone()))?;
        registry.register(Box::new(self.duplicates.clone()))?;
        registry.register(Box::new(self.duration.clone()))
    }
}

/// What a task hands to the publisher: a progress report, or a result and the delivery it
/// answers (acknowledged once the result is out).
enum Outgoing {
    Progress(ProgressEvent),
    Result(ResultEvent, AckToken),
}

/// Publishes what the tasks hand over in batches, many sends in flight and none awaited by a
/// task: a slot is free for the next task as soon as its handler returns. Sends the tokens of
/// published results back for acknowledgement. Results that cannot be published (the broker is
/// away) are kept and sent again with backoff until they are out; once `stop` has fired they
/// get one last try, and what still fails stays unacknowledged, for the group's next worker.
async fn publisher(
    bus: Arc<dyn Bus>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    done: mpsc::UnboundedSender<AckToken>,
    stop: CancellationToken,
) {
    while let Some(first) = rx.recv().await {
        let mut progress = Vec::new();
        let mut results = Vec::new();
        let mut tokens = Vec::new();
        let mut take = |o: Outgoing| match o {
            Outgoing::Progress(p) => progress.push(p),
            Outgoing::Result(r, t) => {
                results.push(r);
                tokens.push(t);
            }
        };
        take(first);
        while let Ok(o) = rx.try_recv() {
            take(o);
        }
        let progress_sent = async {
            if progress.is_empty() {
                Ok(())
            } else {
                // Advisory: a lost report only makes the orchestrator wait a little longer.
                bus.publish_progress(progress).await.map_err(BusError::from)
            }
        };
        let results_sent = async {
            if results.is_empty() {
                Ok(())
            } else {
                // A result sent twice (a send that timed out but had reached the broker) is
                // applied once: the orchestrator keys it by run, object and attempt.
                retry::publish_until_ok("publishing results", &stop, results, |r| {
                    bus.publish_results(r)
                })
                .await
                .map(|refused| {
                    // A result is small (its info and reason are cut short): never seen.
                    for (result, reason) in refused {
                        tracing::error!(run = %result.run_id, object = %result.id, %reason, "the bus refused a result for good; its attempt will expire and be retried");
                    }
                })
            }
        };
        let (p, r) = tokio::join!(progress_sent, results_sent);
        if let Err(e) = p {
            tracing::warn!(error = %e, "could not publish progress reports");
        }
        match r {
            // At-least-once: only a published result lets its Ready event be acknowledged.
            Ok(()) => {
                for t in tokens {
                    let _ = done.send(t);
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                results = tokens.len(),
                "results not published; their Ready events stay unacknowledged and go to the group's next worker after this one stops, or are retried when their lease expires"
            ),
        }
    }
}

/// Runs until `shutdown` fires (then finishes started tasks) or the bus closes.
pub async fn run_worker(
    bus: Arc<dyn Bus>,
    handler: Arc<dyn Handler>,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let mut consumer = bus.ready_consumer(config.zone, &config.group).await?;
    let slots = Arc::new(Semaphore::new(config.max_workers.max(1)));
    let mut tasks = JoinSet::new();
    // Tasks hand their reports to the publisher; it sends the published results' tokens back.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<AckToken>();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let publishing = tokio::spawn(publisher(bus.clone(), out_rx, done_tx, shutdown.clone()));
    let mut seen = SeenAttempts::new(REMEMBERED_ATTEMPTS);
    let cancels = Arc::new(RunCancels::default());
    let listening = tokio::spawn(cancels::listen(
        bus.clone(),
        config.worker_id.clone(),
        cancels.clone(),
        shutdown.clone(),
    ));
    tracing::debug!(zone = %config.zone, handler = %handler.describe(), max_workers = config.max_workers, "worker started");
    loop {
        let acks = drain(&mut done_rx);
        if !acks.is_empty() {
            consumer.ack(acks).await?;
        }
        while let Some(done) = tasks.try_join_next() {
            if let Some(key) = report_join(done) {
                seen.finish(key);
            }
        }
        // Wait for a free slot first, so that no task is taken that cannot start.
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
        };
        let free = slots.available_permits() + 1;
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(token) = done_rx.recv() => {
                consumer.ack(vec![token]).await?;
                continue;
            }
            batch = consumer.next_batch(free) => batch?,
        };
        if batch.is_empty() {
            break; // the bus closed
        }
        let (fresh, again) = split_repeats(batch, &mut seen);
        if !again.is_empty() {
            stats.duplicates.inc_by(again.len() as u64);
            consumer.ack(again).await?;
        }
        let batch = fresh;
        let permits = permits_for(&slots, first, batch.len()).await;
        for ((delivery, key), permit) in batch.into_iter().zip(permits) {
            let (handler, config, stats, out) = (
                handler.clone(),
                config.clone(),
                stats.clone(),
                out_tx.clone(),
            );
            let cancel = cancels.token(&delivery.event.run_id);
            stats.in_flight.inc();
            tasks.spawn(async move {
                let result =
                    run_one(&*handler, &config, &stats, &cancel, &delivery.event, &out).await;
                drop(permit);
                let _ = out.send(Outgoing::Result(result, delivery.token));
                key
            });
        }
    }
    // Shutting down: finish and report what was started, then acknowledge it.
    while let Some(done) = tasks.join_next().await {
        report_join(done);
    }
    listening.abort();
    drop(out_tx);
    if publishing.await.is_err() {
        tracing::error!("the result publisher stopped unexpectedly");
    }
    consumer.ack(drain(&mut done_rx)).await?;
    tracing::debug!(zone = %config.zone, "worker stopped");
    Ok(())
}

/// The tokens of the results published so far.
fn drain(done: &mut mpsc::UnboundedReceiver<AckToken>) -> Vec<AckToken> {
    let mut acks = Vec::new();
    while let Ok(t) = done.try_recv() {
        acks.push(t);
    }
    acks
}

/// `first` and as many more slots as it takes for `n` tasks (fewer if the slots close).
async fn permits_for(
    slots: &Arc<Semaphore>,
    first: tokio::sync::OwnedSemaphorePermit,
    n: usize,
) -> Vec<tokio::sync::OwnedSemaphorePermit> {
    let mut permits = vec![first];
    while permits.len() < n {
        match slots.clone().acquire_owned().await {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    permits
}

/// The same attempt delivered again while it runs here or just after: its first delivery
/// answers for both. (Its own acknowledgement waits for its result, and a partition's offset
/// never passes an event not acknowledged, so nothing is lost.) Returns the deliveries to run,
/// each with its attempt's key, and the tokens of the repeats.
fn split_repeats(
    batch: Vec<Delivery<ReadyEvent>>,
    seen: &mut SeenAttempts,
) -> (Vec<(Delivery<ReadyEvent>, AttemptKey)>, Vec<AckToken>) {
    let mut fresh = Vec::with_capacity(batch.len());
    let mut again = Vec::new();
    for d in batch {
        let key = attempt_key(&d.event);
        if seen.start(&key) {
            fresh.push((d, key));
        } else {
            tracing::info!(run = %d.event.run_id, object = %d.event.id, attempt = d.event.attempt, "Ready event delivered again for an attempt run here: not run twice");
            again.push(d.token);
        }
    }
    (fresh, again)
}

/// The attempt a task ran, or `None` after logging that the runtime's own part of the task
/// panicked (a handler's panic is caught and reported as a failed attempt before this).
fn report_join(done: Result<AttemptKey, tokio::task::JoinError>) -> Option<AttemptKey> {
    match done {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::error!(error = %e, "a task panicked");
            None
        }
    }
}

/// Runs one attempt: the handler, its heartbeats, its timeout and `cancel`, which fires when
/// its run is cancelled; returns its result.
async fn run_one(
    handler: &dyn Handler,
    config: &WorkerConfig,
    stats: &WorkerStats,
    cancel: &CancellationToken,
    task: &ReadyEvent,
    out: &mpsc::UnboundedSender<Outgoing>,
) -> ResultEvent {
    let started = Instant::now();
    if cancel.is_cancelled() {
        stats.in_flight.dec();
        return ResultEvent::failed(task, CANCELLED.into(), false, 0, &config.worker_id);
    }
    // A handler that panics fails its attempt (retryable) like one that returns an error: the
    // worker goes on, and the delivery is answered and acknowledged like any other.
    let work = std::panic::AssertUnwindSafe(handler.handle(task))
        .catch_unwind()
        .map(|ran| ran.unwrap_or_else(|panic| panicked(&*panic).into()));
    tokio::pin!(work);
    let now = tokio::time::Instant::now();
    // Started first, then a heartbeat every interval after it.
    let mut report_started = Some(now + config.started_after);
    let mut heartbeat = tokio::time::interval_at(
        now + config.started_after + config.heartbeat_interval,
        config.heartbeat_interval,
    );
    let deadline = config.task_timeout.map(|t| now + t);
    let Ran { outcome, output } = loop {
        tokio::select! {
            biased;
            ran = &mut work => break ran,
            _ = sleep_until_opt(report_started) => {
                report_started = None;
                let _ = out.send(Outgoing::Progress(ProgressEvent::new(ProgressKind::AttemptStarted, task, &config.worker_id)));
            }
            _ = heartbeat.tick() => {
                let _ = out.send(Outgoing::Progress(ProgressEvent::new(ProgressKind::Heartbeat, task, &config.worker_id)));
            }
            _ = cancel.cancelled() => {
                break Outcome::Failed { reason: CANCELLED.into(), retryable: false }.into();
            }
            _ = sleep_until_opt(deadline) => {
                stats.timed_out.inc();
                let limit = config.task_timeout.unwrap_or_default();
                break Outcome::Failed { reason: format!("timed out after {} ms", limit.as_millis()), retryable: true }.into();
            }
        }
    };
    let elapsed = started.elapsed();
    let ms = elapsed.as_millis() as u64;
    stats.duration.observe(elapsed.as_secs_f64());
    stats.in_flight.dec();
    match outcome {
        Outcome::Loaded { info } => {
            stats.loaded.inc();
            tracing::debug!(run = %task.run_id, object = %task.id, attempt = task.attempt, ms, "loaded");
            let mut result = ResultEvent::loaded(task, info, ms, &config.worker_id);
            result.simulated = handler.simulates();
            result.with_output(output)
        }
        Outcome::Failed { reason, retryable } => {
            stats.failed.inc();
            tracing::warn!(run = %task.run_id, object = %task.id, attempt = task.attempt, retryable, %reason, "attempt failed");
            ResultEvent::failed(task, reason, retryable, ms, &config.worker_id).with_output(output)
        }
    }
}

/// The failure a panicked handler reports, with its panic message when it has one.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Outcome {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    Outcome::Failed {
        reason: format!("the handler panicked: {message}"),
        retryable: true,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
