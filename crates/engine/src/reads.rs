//! The one way the API and the console read and act on runs: through the engine. A run the
//! engine holds is answered as it stands; any other is read from the store, with one status rule
//! (a stored run that nothing drives is interrupted). The HTTP layer holds this and nothing
//! else of the engine's: no store, no run aggregate.

use crate::engine::{EngineCommand, RerunAnswer};
use crate::graph_view::{GraphCut, GraphView};
use crate::object_view::ObjectDetail;
use crate::open::open_stored;
use crate::run_view::{MAX_PAGE, ObjectQuery, RunReport, RunView};
use orchestrator_core::scheduler::{InFlightOnRestore, ObjectState, Run, SchedulerConfig};
use orchestrator_protocol::{ObjectId, RunId};
use orchestrator_store::{RunHeader, RunOutcome, RunStatus, StateStore, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Why a read or an action could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the orchestrator is shutting down")]
    EngineGone,
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("run {0} not found")]
    RunNotFound(RunId),
    #[error("run {0} has no object {1}")]
    ObjectNotFound(RunId, ObjectId),
    #[error("run {0}: object {1} has no ended attempt {2}")]
    AttemptNotFound(RunId, ObjectId, u32),
    #[error("run {0} cannot be read: {1}")]
    Unreadable(RunId, String),
}

/// Which runs to list: newest first, a page at a time, by status and outcome.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub offset: usize,
    pub limit: usize,
    pub status: Option<RunStatus>,
    pub outcome: Option<RunOutcome>,
}

/// A page of runs and how many match.
#[derive(Clone, Debug)]
pub struct RunPage {
    pub total: usize,
    pub limit: usize,
    pub runs: Vec<RunReport>,
}

/// How a cancel went.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The engine had it: cancelling.
    Cancelling,
    AlreadyFinished,
    /// Stored, unfinished, and not driven by this engine.
    NotDriven,
}

/// The engine's read side: its command channel, and the store for what it does not hold.
pub struct RunReads {
    commands: mpsc::Sender<EngineCommand>,
    store: Arc<dyn StateStore>,
    config: SchedulerConfig,
}

impl RunReads {
    pub fn new(
        commands: mpsc::Sender<EngineCommand>,
        store: Arc<dyn StateStore>,
        config: SchedulerConfig,
    ) -> RunReads {
        RunReads {
            commands,
            store,
            config,
        }
    }

    /// The scheduler settings new runs get.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Asks the engine: `command` carries the reply channel.
    pub async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> EngineCommand,
    ) -> Result<T, ReadError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(ReadError::EngineGone);
        }
        answer.await.map_err(|_| ReadError::EngineGone)
    }

    /// Every run, those the engine holds as they stand now, the others as stored (an
    /// unfinished one nothing drives is interrupted); newest first, filtered, one page.
    pub async fn runs(&self, filter: &RunFilter) -> Result<RunPage, ReadError> {
        let stored = self.store.runs().await?;
        let held = self.ask(|reply| EngineCommand::Runs { reply }).await?;
        let mut runs: BTreeMap<RunId, RunHeader> = stored
            .into_iter()
            .map(|h| (h.run_id.clone(), not_driven(h)))
            .collect();
        for h in held {
            runs.insert(h.run_id.clone(), h);
        }
        let mut runs: Vec<RunHeader> = runs
            .into_values()
            .filter(|h| filter.status.is_none_or(|s| h.status == s))
            .filter(|h| filter.outcome.is_none_or(|o| h.outcome() == o))
            .collect();
        runs.sort_by(|a, b| (b.created_ms, &b.run_id).cmp(&(a.created_ms, &a.run_id)));
        let limit = filter.limit.min(MAX_PAGE);
        Ok(RunPage {
            total: runs.len(),
            limit,
            runs: runs
                .into_iter()
                .skip(filter.offset)
                .take(limit)
                .map(RunReport::from)
                .collect(),
        })
    }

    /// One run with its counts and a page of its objects, each failed one with its reason.
    pub async fn run(&self, run: &RunId, query: &ObjectQuery) -> Result<RunView, ReadError> {
        let command = |reply| EngineCommand::Inspect {
            run: run.clone(),
            query: query.clone(),
            reply,
        };
        let view = match self.ask(command).await? {
            Some(view) => view,
            None => {
                let header = self.stored_header(run).await?;
                let records = self.store.objects(run).await?;
                RunView::build(not_driven(header), records.into_iter(), query)
            }
        };
        if !view.objects.iter().any(|o| o.state == ObjectState::Failed) {
            return Ok(view);
        }
        let dead = self.store.dead_letters(run).await?;
        Ok(view.with_reasons(&dead))
    }

    /// One object with its attempts.
    pub async fn object(&self, run: &RunId, id: ObjectId) -> Result<ObjectDetail, ReadError> {
        let detail = self
            .look(run, move |r| ObjectDetail::of(r, id))
            .await?
            .ok_or_else(|| ReadError::ObjectNotFound(run.clone(), id))?;
        let attempts = self.store.attempts(run, id).await?;
        Ok(detail.with_attempts(&attempts))
    }

    /// What attempt `n` of an object wrote.
    pub async fn attempt_output(
        &self,
        run: &RunId,
        id: ObjectId,
        n: u32,
    ) -> Result<String, ReadError> {
        self.stored_header(run).await?;
        let attempts = self.store.attempts(run, id).await?;
        attempts
            .into_iter()
            .find(|a| a.attempt == n)
            .map(|a| a.output().to_string())
            .ok_or_else(|| ReadError::AttemptNotFound(run.clone(), id, n))
    }

    /// The run's graph with its states, or a cut of it.
    pub async fn graph(&self, run: &RunId, cut: GraphCut) -> Result<GraphView, ReadError> {
        self.look(run, move |r| GraphView::of(r, &cut))
            .await?
            .map_err(|unknown| ReadError::ObjectNotFound(run.clone(), unknown.0))
    }

    /// Every failure again (`object: None`), or one object with what it blocked; a run the
    /// engine does not hold is opened from the store and handed to it.
    pub async fn again(
        &self,
        run: &RunId,
        object: Option<ObjectId>,
    ) -> Result<RerunAnswer, ReadError> {
        let mut stored: Option<Run> = None;
        for round in 0..2 {
            let command = |reply| EngineCommand::Rerun {
                run: run.clone(),
                object,
                stored: stored.take().map(Box::new),
                reply,
            };
            match self.ask(command).await? {
                RerunAnswer::NotHeld if round == 0 => stored = Some(self.open(run).await?),
                answer => return Ok(answer),
            }
        }
        Err(ReadError::EngineGone)
    }

    /// Cancels a run the engine drives.
    pub async fn cancel(&self, run: &RunId) -> Result<Cancelled, ReadError> {
        let command = |reply| EngineCommand::Cancel {
            run: run.clone(),
            reply,
        };
        if self.ask(command).await? {
            return Ok(Cancelled::Cancelling);
        }
        let header = self.stored_header(run).await?;
        Ok(if header.status == RunStatus::Finished {
            Cancelled::AlreadyFinished
        } else {
            Cancelled::NotDriven
        })
    }

    async fn stored_header(&self, run: &RunId) -> Result<RunHeader, ReadError> {
        self.store
            .run(run)
            .await?
            .ok_or_else(|| ReadError::RunNotFound(run.clone()))
    }

    /// A stored run opened again (not started: nothing runs).
    async fn open(&self, run: &RunId) -> Result<Run, ReadError> {
        let header = self.stored_header(run).await?;
        open_stored(&*self.store, header, &self.config, InFlightOnRestore::Rearm)
            .await
            .map_err(|e| ReadError::Unreadable(run.clone(), e.to_string()))
    }

    /// `look` at run `run`: as the engine holds it, or else as stored.
    async fn look<T: Send + 'static>(
        &self,
        run: &RunId,
        look: impl FnOnce(&Run) -> T + Send + 'static,
    ) -> Result<T, ReadError> {
        let (reply, answer) = oneshot::channel();
        let command = EngineCommand::Look {
            run: run.clone(),
            look: Box::new(move |held: Option<&Run>| {
                let _ = reply.send(match held {
                    Some(run) => Ok(look(run)),
                    None => Err(look),
                });
            }),
        };
        if self.commands.send(command).await.is_err() {
            return Err(ReadError::EngineGone);
        }
        match answer.await {
            Ok(Ok(seen)) => Ok(seen),
            Ok(Err(look)) => Ok(look(&self.open(run).await?)),
            Err(_) => Err(ReadError::EngineGone),
        }
    }
}

/// The status rule for a run the engine does not hold: nothing drives it, so an unfinished
/// one is interrupted.
fn not_driven(mut header: RunHeader) -> RunHeader {
    header.status = header.status.seen_by_reader(false);
    header
}
