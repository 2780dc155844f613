//! The engine: the thin async loop around the pure scheduler. It feeds worker reports and clock
//! ticks to each run, writes the changed records to the store in one atomic batch, then
//! publishes the Ready events, and keeps metrics and the progress view up to date.

mod commit;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::run_view::{ObjectQuery, RunView};
use crate::store::{DeadLetter, RunMeta, RunStatus, StateStore, StoreError, Transition};
use orchestrator_bus::{AckToken, Bus, BusError, Consumer, Delivery, retry};
use orchestrator_core::scheduler::{Action, Event, Run};
use orchestrator_protocol::{
    AttemptStatus, FailedEvent, ProgressEvent, ProgressKind, ReadyEvent, ResultEvent, RunId,
    SCHEMA_VERSION, Zone, unix_seconds,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Events taken from the bus per loop turn (and so per store batch).
const BATCH: usize = 8192;
const GROUP: &str = "orchestrator";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// How `drive_with` behaves.
#[derive(Clone, Copy, Debug)]
pub struct DriveOptions {
    /// Return when every run is finished (the embedded run); a server drives until shutdown.
    pub until_all_finished: bool,
    /// On shutdown, cancel the runs and wait for the attempts in flight (the embedded run); a
    /// server leaves its runs to the next process.
    pub cancel_on_shutdown: bool,
    /// Drop finished runs from memory (their records stay in the store).
    pub forget_finished: bool,
}

impl DriveOptions {
    pub fn embedded() -> Self {
        DriveOptions {
            until_all_finished: true,
            cancel_on_shutdown: true,
            forget_finished: false,
        }
    }
    pub fn server() -> Self {
        DriveOptions {
            until_all_finished: false,
            cancel_on_shutdown: false,
            forget_finished: true,
        }
    }
}

/// What a server asks of the engine while it drives.
pub enum EngineCommand {
    /// Start a run; its object definitions are stored with it.
    Submit {
        meta: Box<RunMeta>,
        run: Box<Run>,
        objects: Arc<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Cancel a run; answers whether the engine had it.
    Cancel {
        run: RunId,
        reply: oneshot::Sender<bool>,
    },
    /// A run the engine holds, as it stands now (`None` if the engine does not hold it).
    Inspect {
        run: RunId,
        query: ObjectQuery,
        reply: oneshot::Sender<Option<RunView>>,
    },
    /// The records of every run the engine holds, with their current summaries.
    Runs {
        reply: oneshot::Sender<Vec<RunMeta>>,
    },
}

async fn next_command(
    commands: &mut Option<mpsc::Receiver<EngineCommand>>,
) -> Option<EngineCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What one loop turn must write, then publish: store transitions first, then the events.
#[derive(Default)]
struct Outbox {
    tx: Vec<Transition>,
    ready: Vec<ReadyEvent>,
    failed: Vec<FailedEvent>,
}

/// What the progress display shows, per zone: (terminal, total).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressView {
    pub zones: [(usize, usize); 3],
    pub in_flight: [u32; 3],
    pub finished: bool,
}

struct Entry {
    meta: RunMeta,
    run: Run,
    /// Objects per zone, for the progress view.
    totals: [usize; 3],
}

/// Drives the runs it holds until each is finished.
pub struct Engine {
    bus: Arc<dyn Bus>,
    store: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    runs: BTreeMap<RunId, Entry>,
    progress: watch::Sender<ProgressView>,
    actions: Vec<Action>,
    /// Ends the retries of a publish that fails (see [`Engine::stop_retrying_on`]).
    stop: CancellationToken,
    /// The consumers of results and progress, once opened (see [`Engine::open_consumers`]).
    consumers: Option<Consumers>,
}

type Consumers = (
    Box<dyn Consumer<ResultEvent>>,
    Box<dyn Consumer<ProgressEvent>>,
);

impl Engine {
    pub fn new(bus: Arc<dyn Bus>, store: Arc<dyn StateStore>, metrics: Arc<Metrics>) -> Engine {
        Engine {
            bus,
            store,
            metrics,
            runs: BTreeMap::new(),
            progress: watch::channel(ProgressView::default()).0,
            actions: Vec::new(),
            stop: CancellationToken::new(),
            consumers: None,
        }
    }

    /// Opens the consumers of results and progress now rather than when driving starts, so
    /// that they have found their position on the bus by the time the first results come
    /// back: call it before adding runs whose Ready events go out at once.
    pub async fn open_consumers(&mut self) -> Result<(), EngineError> {
        if self.consumers.is_none() {
            self.consumers = Some(self.new_consumers().await?);
        }
        Ok(())
    }

    /// The consumers of results and progress, waiting with backoff while the broker is away
    /// (until `stop`, see [`Engine::stop_retrying_on`]).
    async fn new_consumers(&self) -> Result<Consumers, EngineError> {
        let what = "opening the consumers of results and progress";
        Ok(retry::until_ok(what, &self.stop, || async {
            Ok((
                self.bus.result_consumer(GROUP).await?,
                self.bus.progress_consumer(GROUP).await?,
            ))
        })
        .await?)
    }

    /// A publish that fails (the broker is away) is retried with backoff until it succeeds or
    /// `stop` fires; then the engine stops with the error. The Ready events are recorded before
    /// they are published, so a successor re-arms them as in flight. `drive` and `drive_with`
    /// set it to their shutdown token.
    pub fn stop_retrying_on(&mut self, stop: CancellationToken) {
        self.stop = stop;
    }

    /// A view that follows the progress of every run.
    pub fn progress(&self) -> watch::Receiver<ProgressView> {
        self.progress.subscribe()
    }

    /// Adds a run and starts it: `prepare` may act on the run first (for example reset its
    /// failures); its actions are carried out with the start's.
    pub async fn add_run(
        &mut self,
        meta: RunMeta,
        mut run: Run,
        objects: Option<Arc<String>>,
        prepare: impl FnOnce(&mut Run, u64, &mut Vec<Action>),
    ) -> Result<(), EngineError> {
        let now = now_ms();
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        run.start(now, &mut actions);
        prepare(&mut run, now, &mut actions);
        let id = meta.run_id.clone();
        let mut totals = [0; 3];
        for n in &run.graph().nodes {
            totals[n.zone.index()] += 1;
        }
        self.runs.insert(id.clone(), Entry { meta, run, totals });
        let mut out = Outbox::default();
        if let Some(objects) = objects {
            out.tx.push(Transition::Graph {
                run: id.clone(),
                objects,
            });
        }
        self.carry_out(&id, &mut actions, &mut out, true);
        self.actions = actions;
        self.commit(out).await
    }

    /// Runs held (unfinished ones, and finished ones unless forgotten).
    pub fn run_ids(&self) -> Vec<RunId> {
        self.runs.keys().cloned().collect()
    }

    pub fn run(&self, id: &RunId) -> Option<&Run> {
        self.runs.get(id).map(|e| &e.run)
    }

    pub fn meta(&self, id: &RunId) -> Option<&RunMeta> {
        self.runs.get(id).map(|e| &e.meta)
    }

    /// A held run as it stands now: its record with a fresh summary, and a page of objects.
    pub fn inspect(&self, id: &RunId, query: &ObjectQuery) -> Option<RunView> {
        let e = self.runs.get(id)?;
        let mut meta = e.meta.clone();
        meta.summary = Some(e.run.summary());
        let graph = e.run.graph();
        let records = (0..graph.len() as u32).map(|i| (graph.node(i).id, *e.run.record(i)));
        Some(RunView::build(meta, records, query))
    }

    /// The records of the held runs, with fresh summaries.
    pub fn live_metas(&self) -> Vec<RunMeta> {
        self.runs
            .values()
            .map(|e| {
                let mut meta = e.meta.clone();
                meta.summary = Some(e.run.summary());
                meta
            })
            .collect()
    }

    fn all_finished(&self) -> bool {
        self.runs.values().all(|e| e.run.is_finished())
    }

    /// Runs until every run is finished. When `shutdown` fires, every run is cancelled: nothing
    /// new is dispatched and the loop waits for the attempts in flight.
    pub async fn drive(&mut self, shutdown: CancellationToken) -> Result<(), EngineError> {
        self.drive_with(shutdown, DriveOptions::embedded(), None)
            .await
    }

    /// The loop, with its options and, for a server, a channel of commands (new runs, cancels).
    pub async fn drive_with(
        &mut self,
        shutdown: CancellationToken,
        options: DriveOptions,
        mut commands: Option<mpsc::Receiver<EngineCommand>>,
    ) -> Result<(), EngineError> {
        self.stop = shutdown.clone();
        let (mut results, mut progress) = match self.consumers.take() {
            Some(opened) => opened,
            None => self.new_consumers().await?,
        };
        let mut cancelled = false;
        self.publish_progress();
        while !(options.until_all_finished && self.all_finished()) {
            let deadline = self
                .runs
                .values()
                .filter_map(|e| e.run.next_deadline())
                .min();
            let sleep = async {
                match deadline {
                    Some(d) => {
                        tokio::time::sleep(std::time::Duration::from_millis(
                            d.saturating_sub(now_ms()),
                        ))
                        .await
                    }
                    None => std::future::pending().await,
                }
            };
            let mut out = Outbox::default();
            let mut result_acks = Vec::new();
            let mut progress_acks = Vec::new();
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !cancelled => {
                    cancelled = true;
                    if !options.cancel_on_shutdown {
                        break; // the runs go on with the next process
                    }
                    tracing::warn!("stopping: nothing new is dispatched; waiting for the attempts in flight");
                    self.each_run(&mut out, true, |e, now, actions| {
                        e.run.cancel(now, actions);
                        e.meta.cancelled = true;
                    });
                }
                Some(command) = next_command(&mut commands) => {
                    match command {
                        EngineCommand::Submit { meta, run, objects, reply } => {
                            let id = meta.run_id.clone();
                            let added = self.add_run(*meta, *run, Some(objects), |_, _, _| {}).await;
                            let _ = reply.send(added.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                            added?;
                            tracing::info!(run = %id, "run submitted");
                        }
                        EngineCommand::Cancel { run, reply } => {
                            let found = self.runs.contains_key(&run);
                            if found {
                                let mut actions = std::mem::take(&mut self.actions);
                                if let Some(e) = self.runs.get_mut(&run) {
                                    e.run.cancel(now_ms(), &mut actions);
                                    e.meta.cancelled = true;
                                }
                                self.carry_out(&run, &mut actions, &mut out, true);
                                self.actions = actions;
                            }
                            let _ = reply.send(found);
                        }
                        EngineCommand::Inspect { run, query, reply } => {
                            let _ = reply.send(self.inspect(&run, &query));
                        }
                        EngineCommand::Runs { reply } => {
                            let _ = reply.send(self.live_metas());
                        }
                    }
                }
                batch = results.next_batch(BATCH) => {
                    let batch = batch?;
                    if batch.is_empty() { break; }
                    // Take the progress already waiting too, so one store batch covers both.
                    if let Some(p) = ready_now(&mut *progress).await? {
                        progress_acks = tokens(&p);
                        self.apply(p.into_iter().map(|d| progress_event(d.event)).collect(), &mut out);
                    }
                    result_acks = tokens(&batch);
                    let events = batch.into_iter().map(|d| self.result_event(d.event)).collect();
                    self.apply(events, &mut out);
                }
                batch = progress.next_batch(BATCH) => {
                    let batch = batch?;
                    if batch.is_empty() { break; }
                    progress_acks = tokens(&batch);
                    self.apply(batch.into_iter().map(|d| progress_event(d.event)).collect(), &mut out);
                    if let Some(r) = ready_now(&mut *results).await? {
                        result_acks = tokens(&r);
                        let events = r.into_iter().map(|d| self.result_event(d.event)).collect();
                        self.apply(events, &mut out);
                    }
                }
                _ = sleep => {
                    self.each_run(&mut out, false, |e, now, actions| e.run.tick(now, actions));
                }
            }
            self.commit(out).await?;
            // At-least-once: what was taken from the bus is acknowledged only once stored.
            if !result_acks.is_empty() {
                results.ack(result_acks).await?;
            }
            if !progress_acks.is_empty() {
                progress.ack(progress_acks).await?;
            }
            if options.forget_finished {
                // Their records are stored: a server keeps only what still runs in memory.
                self.runs.retain(|_, e| !e.run.is_finished());
            }
            self.publish_progress();
        }
        self.publish_progress();
        Ok(())
    }

    /// Counts a result as received and turns it into the scheduler's event.
    fn result_event(&self, r: ResultEvent) -> (RunId, Event, bool) {
        // The zone labels the metric only; an old worker may leave it out.
        let zone = [r
            .zone
            .or_else(|| Zone::from_legacy_id(r.id.0))
            .map_or("unknown", Zone::short)];
        let event = match r.status {
            AttemptStatus::Loaded => {
                self.metrics.loaded_received.with_label_values(&zone).inc();
                Event::Loaded {
                    id: r.id,
                    attempt: r.attempt,
                }
            }
            AttemptStatus::Failed => {
                self.metrics.failed_received.with_label_values(&zone).inc();
                Event::Failed {
                    id: r.id,
                    attempt: r.attempt,
                    reason: r.info,
                    retryable: r.retryable,
                }
            }
        };
        (r.run_id, event, true)
    }

    /// Feeds events to their runs; `bool` tells a result from a progress report.
    fn apply(&mut self, events: Vec<(RunId, Event, bool)>, out: &mut Outbox) {
        let now = now_ms();
        let mut actions = std::mem::take(&mut self.actions);
        for (run_id, event, is_result) in events {
            let Some(entry) = self.runs.get_mut(&run_id) else {
                if is_result {
                    self.metrics
                        .results_ignored
                        .with_label_values(&["unknown_run"])
                        .inc();
                }
                tracing::debug!(run = %run_id, ?event, "report for an unknown run ignored");
                continue;
            };
            entry.run.handle(event, now, &mut actions);
            self.carry_out(&run_id, &mut actions, out, false);
        }
        self.actions = actions;
    }

    /// Acts on every run (tick, cancel) and carries out what each one returns.
    fn each_run(
        &mut self,
        out: &mut Outbox,
        meta_changed: bool,
        mut act: impl FnMut(&mut Entry, u64, &mut Vec<Action>),
    ) {
        let now = now_ms();
        let ids: Vec<RunId> = self.runs.keys().cloned().collect();
        let mut actions = std::mem::take(&mut self.actions);
        for id in ids {
            if let Some(entry) = self.runs.get_mut(&id) {
                act(entry, now, &mut actions);
            }
            self.carry_out(&id, &mut actions, out, meta_changed);
        }
        self.actions = actions;
    }

    /// Turns a run's actions into Ready events, metrics, logs and store transitions.
    fn carry_out(
        &mut self,
        id: &RunId,
        actions: &mut Vec<Action>,
        out: &mut Outbox,
        meta_changed: bool,
    ) {
        let Some(entry) = self.runs.get_mut(id) else {
            return;
        };
        let graph = entry.run.graph().clone();
        let now = now_ms();
        let mut meta_changed = meta_changed;
        for action in actions.drain(..) {
            match action {
                Action::Dispatch { index, attempt } => {
                    let node = graph.node(index);
                    tracing::info!(run = %id, object = %node.id, zone = %node.zone, attempt, "ready");
                    self.metrics
                        .ready_published
                        .with_label_values(&[node.zone.short()])
                        .inc();
                    out.ready.push(ReadyEvent {
                        event: "ObjectReady".into(),
                        id: node.id,
                        zone: node.zone,
                        name: node.name.clone(),
                        run_id: id.clone(),
                        ts: unix_seconds(),
                        preflight_fail: false,
                        attempt,
                        graph_version: entry.meta.graph_version.clone(),
                        object: node.raw.clone(),
                        schema_version: SCHEMA_VERSION,
                    });
                }
                Action::ResultAccepted {
                    index,
                    elapsed_ms,
                    loaded,
                } => {
                    let node = graph.node(index);
                    if loaded {
                        tracing::info!(run = %id, object = %node.id, zone = %node.zone, elapsed_ms, "loaded");
                    }
                    let zone = node.zone.short();
                    self.metrics
                        .dispatch_to_result
                        .with_label_values(&[zone])
                        .observe(elapsed_ms as f64 / 1000.0);
                }
                Action::RetryScheduled {
                    index,
                    failed_attempt,
                    delay_ms,
                    reason,
                } => {
                    let node = graph.node(index);
                    self.metrics
                        .retries
                        .with_label_values(&[node.zone.short()])
                        .inc();
                    tracing::info!(run = %id, object = %node.id, attempt = failed_attempt, delay_ms, %reason, "attempt failed; retry scheduled");
                }
                Action::DeadLettered {
                    index,
                    attempt,
                    reason,
                    upstream_failed,
                } => {
                    let node = graph.node(index);
                    self.metrics
                        .dead_letters
                        .with_label_values(&[node.zone.short()])
                        .inc();
                    tracing::error!(run = %id, object = %node.id, attempt, upstream_failed, %reason, "object failed for good");
                    out.failed.push(FailedEvent {
                        event: "ObjectFailed".into(),
                        id: node.id,
                        zone: node.zone,
                        name: node.name.clone(),
                        run_id: id.clone(),
                        attempt,
                        reason: reason.clone(),
                        upstream_failed,
                        ts: unix_seconds(),
                        schema_version: SCHEMA_VERSION,
                    });
                    out.tx.push(Transition::DeadLetter {
                        run: id.clone(),
                        letter: DeadLetter {
                            id: node.id,
                            attempt,
                            reason,
                            at_ms: now,
                        },
                    });
                }
                Action::Expired {
                    index,
                    attempt,
                    reason,
                } => {
                    let node = graph.node(index);
                    self.metrics
                        .leases_expired
                        .with_label_values(&[node.zone.short()])
                        .inc();
                    tracing::warn!(run = %id, object = %node.id, attempt, %reason, "attempt expired");
                }
                Action::Ignored {
                    id: object,
                    reason,
                    is_result,
                } => {
                    if is_result {
                        self.metrics
                            .results_ignored
                            .with_label_values(&[reason.as_str()])
                            .inc();
                    }
                    tracing::debug!(run = %id, %object, reason = reason.as_str(), "report ignored");
                }
                Action::Finished => meta_changed = true,
                Action::FailuresReset => {
                    out.tx
                        .push(Transition::DeadLettersCleared { run: id.clone() });
                    meta_changed = true;
                }
            }
        }
        for i in entry.run.take_changed() {
            out.tx.push(Transition::Object {
                run: id.clone(),
                id: graph.node(i).id,
                record: *entry.run.record(i),
            });
        }
        if meta_changed {
            entry.meta.updated_ms = now;
            entry.meta.status = if entry.run.is_finished() {
                RunStatus::Finished
            } else if entry.run.is_cancelled() {
                RunStatus::Cancelling
            } else {
                RunStatus::Running
            };
            entry.meta.summary = Some(entry.run.summary());
            out.tx.push(Transition::Run(Box::new(entry.meta.clone())));
        }
    }

    /// Tells the progress view that nothing more will come (after `drive`, even on an error).
    pub fn close_progress(&self) {
        self.progress.send_modify(|v| v.finished = true);
    }

    fn publish_progress(&self) {
        let mut view = ProgressView {
            finished: self.all_finished(),
            ..Default::default()
        };
        for e in self.runs.values() {
            for z in Zone::ALL {
                let i = z.index();
                view.zones[i].0 += e.run.terminal_in(z);
                view.zones[i].1 += e.totals[i];
                view.in_flight[i] += e.run.in_flight(z);
            }
        }
        self.progress.send_replace(view);
    }
}

fn tokens<T>(batch: &[Delivery<T>]) -> Vec<AckToken> {
    batch.iter().map(|d| d.token).collect()
}

/// What a consumer has right now, without waiting (`None` when nothing is there).
async fn ready_now<T: Send>(
    consumer: &mut dyn Consumer<T>,
) -> Result<Option<Vec<Delivery<T>>>, BusError> {
    // One poll, no timer: a zero timeout still waits for the timer wheel's next tick (about a
    // millisecond) when nothing is there, which capped the loop at a thousand turns a second.
    let mut batch = std::pin::pin!(consumer.next_batch(BATCH));
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(batch.as_mut().poll(cx))).await;
    match polled {
        std::task::Poll::Ready(batch) => Ok(Some(batch?).filter(|b| !b.is_empty())),
        std::task::Poll::Pending => Ok(None),
    }
}

fn progress_event(p: ProgressEvent) -> (RunId, Event, bool) {
    let event = match p.event {
        ProgressKind::AttemptStarted => Event::Started {
            id: p.id,
            attempt: p.attempt,
        },
        ProgressKind::Heartbeat => Event::Heartbeat {
            id: p.id,
            attempt: p.attempt,
        },
    };
    (p.run_id, event, false)
}
