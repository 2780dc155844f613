//! The engine: the thin async loop around the run aggregates. It feeds worker reports and clock
//! ticks to each run, writes each run's delta to the store in one atomic batch, then publishes
//! the Ready events, and keeps metrics and the progress view up to date.

mod commit;
mod intake;
mod options;
mod report;
mod rerun;
mod schedule;
mod shared_work;

pub use options::{DriveOptions, EngineCommand, PauseAnswer, RerunAnswer, RerunRefused};
pub use schedule::{EngineSchedule, TriggerAnswer};

use crate::clock::{Clock, WallClock};
use crate::metrics::Metrics;
use crate::run_view::{ObjectQuery, RunView};
use intake::{progress_event, ready_now, tokens};
use orchestrator_bus::{AckToken, Bus, BusError, Consumer, retry};
use orchestrator_core::scheduler::{Action, Run};
use orchestrator_protocol::{
    ControlEvent, FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, RunId, Zone,
};
use orchestrator_store::{RunHeader, StateStore, StoreError, Transition};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Events taken from the bus per loop turn (and so per store batch).
const BATCH: usize = 8192;
/// Handlers' output a turn takes in at most, about: results carry up to `ATTEMPT_OUTPUT_BYTES`
/// each, so a turn of results with long outputs takes fewer of them (see
/// [`Engine::results_per_turn`]), which bounds the memory and the store batch of a turn.
const OUTPUT_BYTES_PER_TURN: usize = 32 << 20;
const GROUP: &str = "orchestrator";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What one loop turn must write, then publish: store transitions first, then the events.
#[derive(Default)]
struct Outbox {
    tx: Vec<Transition>,
    ready: Vec<ReadyEvent>,
    failed: Vec<FailedEvent>,
    /// Messages to every worker (cancelled runs).
    control: Vec<ControlEvent>,
    /// The runs the turn changed: each one's delta joins `tx` once, when the turn commits.
    touched: Vec<RunId>,
}

/// What the progress display shows, per zone: (terminal, total).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressView {
    pub zones: [(usize, usize); 3],
    pub in_flight: [u32; 3],
    pub finished: bool,
}

/// Drives the runs it holds until each is finished.
pub struct Engine {
    bus: Arc<dyn Bus>,
    store: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    runs: BTreeMap<RunId, Run>,
    progress: watch::Sender<ProgressView>,
    actions: Vec<Action>,
    /// Ends the retries of a publish that fails (see [`Engine::stop_retrying_on`]).
    stop: CancellationToken,
    /// The consumers of results and progress, once opened (see [`Engine::open_consumers`]).
    consumers: Option<Consumers>,
    /// Results taken per turn: [`BATCH`], or fewer while they carry long outputs.
    results_per_turn: usize,
    /// Runs started by the objects' frequencies, if the engine keeps a schedule.
    schedule: Option<EngineSchedule>,
    /// Where stored changes go for the console, if anyone follows them.
    live: Option<crate::live::LiveSender>,
    /// When the schedule's freshness gauges were last computed (they follow loads at most
    /// every few seconds: a pass over the catalog).
    freshness_observed_ms: u64,
    /// One copy of the texts attempts repeat (see [`SharedTexts`]).
    texts: orchestrator_core::scheduler::SharedTexts,
}

type Consumers = (
    Box<dyn Consumer<ResultEvent>>,
    Box<dyn Consumer<ProgressEvent>>,
);

/// What one loop turn took from the bus, to acknowledge once its batch is stored.
#[derive(Default)]
struct Taken {
    results: Vec<AckToken>,
    progress: Vec<AckToken>,
}

impl Engine {
    pub fn new(bus: Arc<dyn Bus>, store: Arc<dyn StateStore>, metrics: Arc<Metrics>) -> Engine {
        metrics.store_batches.with_label_values(&[store.kind()]);
        Engine {
            bus,
            store,
            metrics,
            clock: Arc::new(WallClock),
            runs: BTreeMap::new(),
            progress: watch::channel(ProgressView::default()).0,
            actions: Vec::new(),
            stop: CancellationToken::new(),
            consumers: None,
            results_per_turn: BATCH,
            schedule: None,
            live: None,
            freshness_observed_ms: 0,
            texts: Default::default(),
        }
    }

    /// Sends each stored change of a run to `live` (the console's live view).
    pub fn with_live(mut self, live: crate::live::LiveSender) -> Engine {
        self.live = Some(live);
        self
    }

    /// Reads time from `clock` (tests: [`crate::clock::TokioClock`] on paused time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// The clock it reads: what opens a run, a schedule or a submission beside it reads too.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
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

    /// Adds a run and starts it: `prepare` may act on the run first (for example rerun its
    /// failures); its delta (and `objects`, the definitions to store with a new run) are
    /// written, then its actions carried out.
    pub async fn add_run(
        &mut self,
        run: Run,
        objects: Option<Arc<String>>,
        prepare: impl FnOnce(&mut Run, u64, &mut Vec<Action>),
    ) -> Result<(), EngineError> {
        let mut out = Outbox::default();
        self.begin_run(run, objects, prepare, &mut out);
        self.commit(out).await
    }

    /// As [`Engine::add_run`], its writes and events left in `out` for the turn to commit.
    fn begin_run(
        &mut self,
        mut run: Run,
        objects: Option<Arc<String>>,
        prepare: impl FnOnce(&mut Run, u64, &mut Vec<Action>),
        out: &mut Outbox,
    ) {
        let now = self.clock.now_ms();
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        run.start(now, &mut actions);
        prepare(&mut run, now, &mut actions);
        let id = run.header().run_id.clone();
        self.runs.insert(id.clone(), run);
        if let Some(objects) = objects {
            out.tx.push(Transition::Graph {
                run: id.clone(),
                objects,
            });
        }
        self.carry_out(&id, &mut actions, out);
        self.actions = actions;
    }

    /// Runs held (unfinished ones, and finished ones unless forgotten).
    pub fn run_ids(&self) -> Vec<RunId> {
        self.runs.keys().cloned().collect()
    }

    pub fn run(&self, id: &RunId) -> Option<&Run> {
        self.runs.get(id)
    }

    /// A held run as it stands now: its header and a page of objects.
    pub fn inspect(&self, id: &RunId, query: &ObjectQuery) -> Option<RunView> {
        let run = self.runs.get(id)?;
        let graph = run.graph();
        let records = graph.by_id().iter().map(|&i| (graph.id(i), *run.record(i)));
        Some(RunView::build(run.header().clone(), records, query))
    }

    /// The headers of the held runs, as they stand now.
    pub fn live_headers(&self) -> Vec<RunHeader> {
        self.runs.values().map(|r| r.header().clone()).collect()
    }

    fn all_settled(&self) -> bool {
        self.runs.values().all(Run::is_settled)
    }

    /// Runs until every run is settled. When `shutdown` fires, every run is interrupted:
    /// nothing new is dispatched and the loop waits for the attempts in flight.
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
        let mut stopping = false;
        self.publish_progress();
        while !(options.until_all_finished && self.all_settled()) {
            let deadline = self
                .runs
                .values()
                .filter_map(Run::next_deadline)
                .chain(self.schedule_wake())
                .min();
            let clock = self.clock.clone();
            let sleep = async move {
                match deadline {
                    Some(d) => {
                        let wait = d.saturating_sub(clock.now_ms());
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            let mut out = Outbox::default();
            let mut taken = Taken::default();
            let per_turn = self.results_per_turn;
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    if !options.interrupt_on_shutdown {
                        break; // the runs go on with the next process
                    }
                    tracing::warn!("stopping: nothing new is dispatched; waiting for the attempts in flight");
                    self.each_run(&mut out, |run, now, actions| run.interrupt(now, actions));
                }
                Some(command) = options::next_command(&mut commands) => {
                    self.command(command, &mut out).await?;
                }
                batch = results.next_batch(per_turn) => {
                    let batch = batch?;
                    if batch.is_empty() { break; }
                    self.size_next_turn(&batch);
                    // Take the progress already waiting too, so one store batch covers both.
                    if let Some(p) = ready_now(&mut *progress, BATCH).await? {
                        taken.progress = tokens(&p);
                        self.apply(p.into_iter().map(|d| progress_event(d.event)).collect(), &mut out);
                    }
                    taken.results = tokens(&batch);
                    let events = batch.into_iter().map(|d| self.result_event(d.event)).collect();
                    self.apply(events, &mut out);
                }
                batch = progress.next_batch(BATCH) => {
                    let batch = batch?;
                    if batch.is_empty() { break; }
                    taken.progress = tokens(&batch);
                    self.apply(batch.into_iter().map(|d| progress_event(d.event)).collect(), &mut out);
                    if let Some(r) = ready_now(&mut *results, per_turn).await? {
                        self.size_next_turn(&r);
                        taken.results = tokens(&r);
                        let events = r.into_iter().map(|d| self.result_event(d.event)).collect();
                        self.apply(events, &mut out);
                    }
                }
                _ = sleep => {
                    self.each_run(&mut out, |run, now, actions| run.tick(now, actions));
                    if !stopping {
                        self.on_schedule_tick(&mut out);
                    }
                }
            }
            self.release_shared(&mut out);
            self.commit(out).await?;
            // At-least-once: what was taken from the bus is acknowledged only once stored.
            if !taken.results.is_empty() {
                results.ack(taken.results).await?;
            }
            if !taken.progress.is_empty() {
                progress.ack(taken.progress).await?;
            }
            if options.forget_finished {
                // Their records are stored: a server keeps only what still runs in memory.
                self.runs.retain(|_, run| !run.is_finished());
            }
            self.publish_progress();
        }
        self.publish_progress();
        Ok(())
    }

    /// Sizes the next turn's take of results by the output these carried: a turn holds about
    /// [`OUTPUT_BYTES_PER_TURN`] of it at most.
    fn size_next_turn(&mut self, batch: &[orchestrator_bus::Delivery<ResultEvent>]) {
        let bytes: usize = batch.iter().map(|d| d.event.output.len()).sum();
        let each = bytes / batch.len().max(1);
        self.results_per_turn = (OUTPUT_BYTES_PER_TURN / each.max(1)).clamp(16, BATCH);
    }

    /// Carries out one command of a server.
    async fn command(
        &mut self,
        command: EngineCommand,
        out: &mut Outbox,
    ) -> Result<(), EngineError> {
        match command {
            EngineCommand::Submit {
                run,
                objects,
                reply,
            } => {
                let id = run.header().run_id.clone();
                let added = self.add_run(*run, Some(objects), |_, _, _| {}).await;
                let _ = reply.send(added.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                added?;
                tracing::info!(run = %id, "run submitted");
            }
            EngineCommand::Cancel { run, reply } => {
                let now = self.clock.now_ms();
                let mut actions = std::mem::take(&mut self.actions);
                let found = match self.runs.get_mut(&run) {
                    Some(held) => {
                        held.cancel(now, &mut actions);
                        // Workers stop its attempts in flight and answer them cancelled.
                        out.control.push(ControlEvent::cancel_run(run.clone()));
                        true
                    }
                    None => false,
                };
                self.carry_out(&run, &mut actions, out);
                self.actions = actions;
                let _ = reply.send(found);
            }
            EngineCommand::Inspect { run, query, reply } => {
                let _ = reply.send(self.inspect(&run, &query));
            }
            EngineCommand::Runs { reply } => {
                let _ = reply.send(self.live_headers());
            }
            EngineCommand::Look { run, look } => look(self.runs.get(&run)),
            EngineCommand::Objects { reply } => {
                let _ = reply.send(self.schedule_status());
            }
            EngineCommand::ReplaceCatalog {
                graph,
                catalog,
                objects,
                reply,
            } => {
                let _ = reply.send(self.replace_catalog(*graph, *catalog, objects, out));
            }
            EngineCommand::Trigger { object, reply } => {
                let _ = reply.send(self.trigger(object, out));
            }
            EngineCommand::Pause {
                object,
                paused,
                reply,
            } => {
                let answer = match self.pause(object, paused, out) {
                    None => PauseAnswer::NoSchedule,
                    Some(false) => PauseAnswer::UnknownObject,
                    Some(true) => PauseAnswer::Done,
                };
                let _ = reply.send(answer);
            }
            EngineCommand::Rerun {
                run,
                object,
                stored,
                reply,
            } => {
                // An error here (the store refused for good) stops the engine, as for a
                // submission; the caller hears that the engine is gone.
                let answer = self.rerun(run, object, stored, out).await?;
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    /// Tells the progress view that nothing more will come (after `drive`, even on an error).
    pub fn close_progress(&self) {
        self.progress.send_modify(|v| v.finished = true);
    }

    fn publish_progress(&self) {
        let mut view = ProgressView {
            finished: self.all_settled(),
            ..Default::default()
        };
        for run in self.runs.values() {
            for z in Zone::ALL {
                let i = z.index();
                view.zones[i].0 += run.terminal_in(z);
                view.zones[i].1 += run.counts().zone(z).objects;
                view.in_flight[i] += run.in_flight(z);
            }
        }
        self.progress.send_replace(view);
    }
}
