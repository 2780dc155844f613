//! Every metric the orchestrator exports, defined in one place with Prometheus names: the old
//! system's counters plus per-zone in-flight, waiting, retries, dead letters and durations.

use orchestrator_protocol::Zone;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

/// Latency buckets of every duration histogram: 10 ms to 10 minutes.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The orchestrator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    uptime: Gauge,
    pub ready_published: IntCounterVec,
    pub loaded_received: IntCounterVec,
    pub failed_received: IntCounterVec,
    pub results_ignored: IntCounterVec,
    pub retries: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub leases_expired: IntCounterVec,
    pub in_flight: IntGaugeVec,
    /// Of those in flight, the ones a worker said it started (the rest wait on the bus or for
    /// a free worker).
    pub running: IntGaugeVec,
    pub waiting: IntGaugeVec,
    pub dispatch_to_result: HistogramVec,
    /// Dispatch to result, less the handler's time: broker hops and waiting for a worker.
    pub queue_wait: HistogramVec,
    /// The handler's time, as its worker reports it.
    pub task_seconds: HistogramVec,
    pub store_batches: IntCounterVec,
    /// Messages nobody could read, set aside to the DLQ topic.
    pub messages_rejected: IntCounter,
    /// Times a consumer stopped fetching while nothing arrived (the bus's idle pause).
    pub bus_idle_pauses: IntCounter,
    /// Store writes that failed and were tried again (the store away for a while).
    pub store_errors: IntCounter,
    /// 1 while this process is the writer (`serve`: 0 while it stands by).
    pub writer: IntGauge,
    /// The writer lease's epoch this process holds (it grows at each takeover).
    pub writer_epoch: IntGauge,
    /// Whether the broker and the store answered the latest check (1) or not (0).
    pub dependency_up: IntGaugeVec,
    /// Ticks the schedule evaluated.
    pub schedule_ticks: IntCounter,
    /// Runs the schedule started, by cause (`tick`, `trigger`).
    pub schedule_runs: IntCounterVec,
    /// Objects with a frequency not loaded since their latest tick, per zone.
    pub schedule_stale: IntGaugeVec,
    /// The largest time since a missed tick, per zone.
    pub schedule_lag: GaugeVec,
    /// Time to evaluate a tick.
    pub schedule_tick_seconds: Histogram,
    /// Runs that finished, by outcome and by what started them.
    pub runs_finished: IntCounterVec,
    /// The per-object series of each zone, looked up once.
    pub per_zone: [ZoneSeries; 3],
}

/// One zone's series of the metrics moved for every object, resolved when the metrics are
/// made: a lookup by label hashes the label each time (1.5 % of a 1,000,000-object embedded
/// run's CPU).
#[derive(Clone)]
pub struct ZoneSeries {
    pub ready_published: IntCounter,
    pub loaded_received: IntCounter,
    pub failed_received: IntCounter,
    pub dispatch_to_result: Histogram,
    pub queue_wait: Histogram,
    pub task_seconds: Histogram,
}

impl Metrics {
    /// The per-object series of `zone`.
    pub fn zone(&self, zone: Zone) -> &ZoneSeries {
        &self.per_zone[zone.index()]
    }

    /// A result received, loaded or failed, of `zone` (`unknown` when neither the result nor
    /// its object's id tells).
    pub fn count_result(&self, zone: Option<Zone>, loaded: bool) {
        match (zone, loaded) {
            (Some(z), true) => self.zone(z).loaded_received.inc(),
            (Some(z), false) => self.zone(z).failed_received.inc(),
            (None, true) => self.loaded_received.with_label_values(&["unknown"]).inc(),
            (None, false) => self.failed_received.with_label_values(&["unknown"]).inc(),
        }
    }
}

/// What started a run, for the finished-runs metric: a schedule's tick (`tick-…`), a trigger
/// (`trigger-…`), or a submission (the API, a file).
pub fn run_cause(run: &orchestrator_protocol::RunId) -> &'static str {
    let id = run.as_str();
    if id.starts_with("tick-") {
        "tick"
    } else if id.starts_with("trigger-") {
        "trigger"
    } else {
        "submit"
    }
}

#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// A metric's name and help.
type Spec = (&'static str, &'static str);

fn counter(
    registry: &Registry,
    (name, help): Spec,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    add(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn plain_counter(registry: &Registry, (name, help): Spec) -> Result<IntCounter, MetricsError> {
    add(registry, IntCounter::new(name, help)?)
}

fn gauge(registry: &Registry, (name, help): Spec) -> Result<IntGaugeVec, MetricsError> {
    add(
        registry,
        IntGaugeVec::new(Opts::new(name, help), &["zone"])?,
    )
}

const DISPATCH_TO_RESULT: Spec = (
    "orchestrator_dispatch_to_result_seconds",
    "Time from an attempt's Ready event to its accepted result.",
);
const QUEUE_WAIT: Spec = (
    "orchestrator_queue_wait_seconds",
    "Time from an attempt's Ready event to its handler's start (dispatch to result, less the handler's time): broker hops and waiting for a free worker.",
);
const TASK_SECONDS: Spec = (
    "orchestrator_task_seconds",
    "Time an attempt's handler ran, as its worker reports it.",
);
const SCHEDULE_TICKS: Spec = (
    "orchestrator_schedule_ticks_total",
    "Ticks of the schedule evaluated.",
);
const SCHEDULE_RUNS: Spec = (
    "orchestrator_schedule_runs_started_total",
    "Runs the schedule started, by cause (tick, trigger).",
);
const SCHEDULE_STALE: Spec = (
    "orchestrator_schedule_stale_objects",
    "Objects with a frequency not loaded since their latest tick.",
);
const RUNS_FINISHED: Spec = (
    "orchestrator_runs_finished_total",
    "Runs that finished, by outcome (succeeded, failed, cancelled) and cause (tick, trigger, submit).",
);
const MESSAGES_REJECTED: Spec = (
    "orchestrator_messages_rejected_total",
    "Messages on the results or progress topics that could not be read (sent to the DLQ topic).",
);
const BUS_IDLE_PAUSES: Spec = (
    "orchestrator_bus_idle_pauses_total",
    "Times a consumer of results or progress stopped fetching, idle, to probe for events instead (KAFKA_IDLE_PAUSE_MS).",
);
const STORE_ERRORS: Spec = (
    "orchestrator_store_errors_total",
    "State store writes that failed and were tried again (the store unreachable for a while).",
);
const READY_PUBLISHED: Spec = (
    "orchestrator_ready_published_total",
    "Ready events published.",
);
const LOADED_RECEIVED: Spec = (
    "orchestrator_loaded_received_total",
    "Loaded results received.",
);
const FAILED_RECEIVED: Spec = (
    "orchestrator_failed_received_total",
    "Failed results received.",
);
const RESULTS_IGNORED: Spec = (
    "orchestrator_results_ignored_total",
    "Results and progress reports that changed nothing (duplicate, stale or unknown).",
);
const RETRIES: Spec = ("orchestrator_retries_total", "Retries scheduled.");
const DEAD_LETTERS: Spec = (
    "orchestrator_dead_letters_total",
    "Objects that failed for good.",
);
const LEASES_EXPIRED: Spec = (
    "orchestrator_attempts_expired_total",
    "Attempts failed by an expired lease or start timeout.",
);
const STORE_BATCHES: Spec = (
    "orchestrator_store_batches_total",
    "Atomic batches written to the state store.",
);
const IN_FLIGHT: Spec = (
    "orchestrator_objects_in_flight",
    "Objects dispatched and not yet answered.",
);
const RUNNING: Spec = (
    "orchestrator_objects_running",
    "Objects in flight that a worker said it started (dispatched and not started: in flight less these).",
);
const WAITING: Spec = (
    "orchestrator_objects_waiting",
    "Objects whose parents are loaded, waiting for room in their zone.",
);

/// Registers `collector` and hands it back.
fn add<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// A latency histogram per zone, 10 ms to 10 minutes.
fn latency(registry: &Registry, (name, help): Spec) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    add(registry, HistogramVec::new(opts, &["zone"])?)
}

/// The writer's and the dependencies' gauges: (writer, writer epoch, dependency up).
fn writer_gauges(registry: &Registry) -> Result<(IntGauge, IntGauge, IntGaugeVec), MetricsError> {
    let writer = IntGauge::new(
        "orchestrator_writer",
        "1 while this orchestrator is the writer (0 while it stands by).",
    )?;
    let epoch = IntGauge::new(
        "orchestrator_writer_epoch",
        "The writer lease's epoch this orchestrator holds: it grows each time the lease changes hands.",
    )?;
    let up = IntGaugeVec::new(
        Opts::new(
            "orchestrator_dependency_up",
            "Whether the broker and the state store answered the latest check (every 5 s): 1 or 0.",
        ),
        &["dependency"],
    )?;
    Ok((
        add(registry, writer)?,
        add(registry, epoch)?,
        add(registry, up)?,
    ))
}

/// The schedule's lag gauge and tick histogram.
fn schedule_timing(registry: &Registry) -> Result<(GaugeVec, Histogram), MetricsError> {
    let lag = GaugeVec::new(
        Opts::new(
            "orchestrator_schedule_freshness_lag_seconds",
            "The largest time since a tick that an object of the zone has not loaded for.",
        ),
        &["zone"],
    )?;
    let tick = Histogram::with_opts(
        HistogramOpts::new(
            "orchestrator_schedule_tick_evaluation_seconds",
            "Time to evaluate one tick of the schedule over the catalog.",
        )
        .buckets(vec![0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
    )?;
    Ok((add(registry, lag)?, add(registry, tick)?))
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let r = &registry;
        let zone = &["zone"];
        let uptime = Gauge::new(
            "orchestrator_uptime_seconds",
            "Seconds since the orchestrator started.",
        )?;
        let (writer, writer_epoch, dependency_up) = writer_gauges(r)?;
        let (schedule_lag, schedule_tick_seconds) = schedule_timing(r)?;
        let dispatch_to_result = latency(r, DISPATCH_TO_RESULT)?;
        let queue_wait = latency(r, QUEUE_WAIT)?;
        let task_seconds = latency(r, TASK_SECONDS)?;
        let ready_published = counter(r, READY_PUBLISHED, zone)?;
        let loaded_received = counter(r, LOADED_RECEIVED, zone)?;
        let failed_received = counter(r, FAILED_RECEIVED, zone)?;
        let per_zone = Zone::ALL.map(|z| {
            let l = [z.as_str()];
            ZoneSeries {
                ready_published: ready_published.with_label_values(&l),
                loaded_received: loaded_received.with_label_values(&l),
                failed_received: failed_received.with_label_values(&l),
                dispatch_to_result: dispatch_to_result.with_label_values(&l),
                queue_wait: queue_wait.with_label_values(&l),
                task_seconds: task_seconds.with_label_values(&l),
            }
        });
        let m = Metrics {
            uptime: add(r, uptime)?,
            dispatch_to_result,
            queue_wait,
            task_seconds,
            per_zone,
            writer,
            writer_epoch,
            dependency_up,
            schedule_ticks: plain_counter(r, SCHEDULE_TICKS)?,
            schedule_runs: counter(r, SCHEDULE_RUNS, &["cause"])?,
            schedule_stale: gauge(r, SCHEDULE_STALE)?,
            schedule_lag,
            schedule_tick_seconds,
            runs_finished: counter(r, RUNS_FINISHED, &["outcome", "cause"])?,
            messages_rejected: plain_counter(r, MESSAGES_REJECTED)?,
            bus_idle_pauses: plain_counter(r, BUS_IDLE_PAUSES)?,
            store_errors: plain_counter(r, STORE_ERRORS)?,
            ready_published,
            loaded_received,
            failed_received,
            results_ignored: counter(r, RESULTS_IGNORED, &["reason"])?,
            retries: counter(r, RETRIES, zone)?,
            dead_letters: counter(r, DEAD_LETTERS, zone)?,
            leases_expired: counter(r, LEASES_EXPIRED, zone)?,
            store_batches: counter(r, STORE_BATCHES, &["store"])?,
            in_flight: gauge(r, IN_FLIGHT)?,
            running: gauge(r, RUNNING)?,
            waiting: gauge(r, WAITING)?,
            started: Instant::now(),
            registry,
        };
        m.every_zone_at_zero();
        Ok(m)
    }

    /// Every series exists from the start, at zero (the store's batches once the engine knows
    /// its store).
    fn every_zone_at_zero(&self) {
        for z in Zone::ALL {
            let l = [z.as_str()];
            self.ready_published.with_label_values(&l);
            self.loaded_received.with_label_values(&l);
            self.failed_received.with_label_values(&l);
            self.retries.with_label_values(&l);
            self.dead_letters.with_label_values(&l);
            self.in_flight.with_label_values(&l);
            self.waiting.with_label_values(&l);
            self.running.with_label_values(&l);
            self.schedule_stale.with_label_values(&l);
            self.schedule_lag.with_label_values(&l);
            self.leases_expired.with_label_values(&l);
            self.dispatch_to_result.with_label_values(&l);
            self.queue_wait.with_label_values(&l);
            self.task_seconds.with_label_values(&l);
        }
        for cause in ["tick", "trigger"] {
            self.schedule_runs.with_label_values(&[cause]);
        }
        for outcome in ["succeeded", "failed", "cancelled"] {
            for cause in ["tick", "trigger", "submit"] {
                self.runs_finished.with_label_values(&[outcome, cause]);
            }
        }
        for reason in [
            "already_finished",
            "stale_attempt",
            "unknown_object",
            "unknown_run",
        ] {
            self.results_ignored.with_label_values(&[reason]);
        }
    }

    /// The registry, for a binary to add what it exports of itself (process, build).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
