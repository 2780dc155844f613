//! The runs API of `orchestrator serve`: submit a run (`POST /api/runs`), list runs, look at one
//! (counts and a page of its objects) and cancel one. Runs the engine holds are answered from
//! memory, as they stand now; finished ones from the store.

use crate::api_body::{SubmitBudget, read_body};
use crate::api_query::ApiQuery;
use crate::auth::{ApiTokens, require_token};
use crate::openapi::{
    Accepted, ApiDoc, ChangeRefusals, ErrorBody, InvalidObjects, ReadRefusals, RunList, Submitted,
    document_router,
};
use crate::role::{Role, SharedRole};
use crate::{api_live, api_objects, api_schedule};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_core::diagnostics::{MAX_LISTED_PROBLEMS, Report};
use orchestrator_core::graph::MissingParents;
use orchestrator_core::scheduler::{ObjectState, RunOptions, RunOutcome, RunStatus};
use orchestrator_engine::EngineCommand;
use orchestrator_engine::clock::Clock;
use orchestrator_engine::live::LiveSender;
use orchestrator_engine::open::{Submission, SubmitError, open_new};
use orchestrator_engine::open_schedule::ScheduleSettings;
use orchestrator_engine::reads::{Cancelled, ReadError, RunFilter, RunReads};
use orchestrator_engine::run_view::{ObjectQuery, RunView};
use orchestrator_protocol::{ObjectId, RunId};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::oneshot;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the handlers need.
pub struct ApiState {
    /// The engine's read side: every run is read and acted on through it.
    pub reads: Arc<RunReads>,
    /// The moment a submission is stamped with (the engine's injected clock).
    pub clock: Arc<dyn Clock>,
    /// Largest body `POST /api/runs` takes.
    pub max_input_bytes: u64,
    /// Larger objects are refused (`MAX_OBJECT_BYTES`).
    pub max_object_bytes: usize,
    /// Work is refused unless this orchestrator is the writer.
    pub role: Arc<SharedRole>,
    /// Who may call the API (empty: anyone who reaches it).
    pub tokens: Arc<ApiTokens>,
    /// The memory submissions in progress may hold together.
    pub budget: SubmitBudget,
    /// How the schedule reads a catalog, if this orchestrator keeps one.
    pub schedule: Option<ScheduleSettings>,
    /// The engine's stored changes, for `GET /api/events` (the console's live view).
    pub live: Option<LiveSender>,
    /// Followers of `GET /api/events` at once (`MAX_EVENT_SUBSCRIBERS`); past them, 503.
    pub subscribers: Arc<tokio::sync::Semaphore>,
}

/// How long a request that comes while `serve` is still starting waits for it to be ready.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

pub fn api_router(state: Arc<ApiState>) -> Router {
    let standby_state = state.clone();
    let tokens = state.tokens.clone();
    let (routes, document) = documented_routes().split_for_parts();
    routes
        .route("/api/{*rest}", axum::routing::any(no_such_route))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(move |request, next: Next| {
            let role = standby_state.role.clone();
            async move {
                // While starting (broker or store not reached yet), wait a little rather
                // than refuse: a script that starts `serve` and submits at once just works.
                let started = tokio::time::Instant::now();
                while role.get() == Role::Starting && started.elapsed() < START_WAIT {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                match role.not_ready() {
                    None => next.run(request).await,
                    Some(why) => error(StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }
        }))
        .layer(axum::middleware::from_fn_with_state(tokens, require_token))
        .with_state(state)
        .merge(document_router(document))
}

/// An address under `/api/` that names no route: the documented JSON body, as every refusal.
async fn no_such_route(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("{}: no such API route (see /api/openapi.json)", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} {}: method not allowed (see /api/openapi.json)",
            uri.path()
        ),
    )
}

/// The API's OpenAPI document (what `/api/openapi.json` serves).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// Every route of the API with its documentation: one list, so that no route is served
/// without being in the document.
fn documented_routes() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(submit, list))
        .routes(routes!(inspect))
        .routes(routes!(cancel))
        .routes(routes!(api_objects::rerun))
        .routes(routes!(api_objects::graph))
        .routes(routes!(api_objects::object))
        .routes(routes!(api_objects::retry))
        .routes(routes!(api_objects::attempt_output))
        .routes(routes!(api_live::events))
        .routes(routes!(api_schedule::objects, api_schedule::replace))
        .routes(routes!(api_schedule::trigger))
        .routes(routes!(api_schedule::pause_schedule))
        .routes(routes!(api_schedule::resume_schedule))
        .routes(routes!(api_schedule::pause_object))
        .routes(routes!(api_schedule::resume_object))
}

/// An answer other than success: its status and what went wrong (`{"error": …}`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The engine is stopping: nothing can be asked of it.
    pub(crate) fn engine_gone() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the orchestrator is shutting down",
        )
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let status = match &e {
            ReadError::EngineGone | ReadError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ReadError::RunNotFound(_)
            | ReadError::ObjectNotFound(..)
            | ReadError::AttemptNotFound(..) => StatusCode::NOT_FOUND,
            ReadError::Unreadable(..) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Asks the engine: `command` carries the reply channel; the engine gone (stopping) is 503.
pub(crate) async fn ask<T>(
    state: &ApiState,
    command: impl FnOnce(oneshot::Sender<T>) -> EngineCommand,
) -> Result<T, ApiError> {
    Ok(state.reads.ask(command).await?)
}

pub(crate) fn engine_gone() -> Response {
    ApiError::engine_gone().into_response()
}

/// Every problem of refused objects, in display order, each as data and as `validate` prints
/// it (`text`): the `problems` of an `InvalidObjects` answer.
pub(crate) fn problems_json(report: &Report) -> Vec<serde_json::Value> {
    report
        .sorted()
        .into_iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["text"] = p.to_string().into();
            v
        })
        .collect()
}

/// Options of `POST /api/runs`, in the query string.
#[derive(Debug, Deserialize)]
struct SubmitQuery {
    /// Comma-separated object ids: build these and their ancestors only.
    targets: Option<String>,
    /// `error` (default) or `external`.
    missing_parents: Option<String>,
    #[serde(default)]
    strict: bool,
    /// A name for the run's source (default `api`).
    source: Option<String>,
}

#[utoipa::path(post, path = "/api/runs", tag = "runs",
    params(
        ("targets" = Option<String>, Query, description = "Comma-separated object ids: build these and their ancestors only"),
        ("missing_parents" = Option<String>, Query, description = "`error` (default) or `external`: a parent not in the body is taken as loaded elsewhere"),
        ("strict" = Option<bool>, Query, description = "Warnings are errors"),
        ("source" = Option<String>, Query, description = "A name for the run's source (default `api`)"),
    ),
    request_body(content = Vec<Object>, content_type = "application/json", description = "The object definitions, in the old system's format"),
    responses(
        (status = 201, description = "The run started", body = Submitted),
        (status = 400, description = "Invalid objects (every problem listed) or query", body = InvalidObjects),
        (status = 413, description = "The body is past MAX_INPUT_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        ChangeRefusals,
    ))]
async fn submit(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body, state.max_input_bytes, &state.budget).await {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    // The budget stays taken until the run is handed over and the answer made.
    let (text, _held) = (body.text, body.held);
    let options = match run_options(&query) {
        Ok(o) => o,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let submission = Submission {
        text,
        source: query.source.unwrap_or_else(|| "api".to_string()),
        options,
        seed: None,
        strict: query.strict,
        max_object_bytes: state.max_object_bytes,
        run_id: None,
    };
    let config = state.reads.config().clone();
    let now = state.clock.now_ms();
    // Validation of a large file takes a while: off the async threads.
    let prepared =
        match tokio::task::spawn_blocking(move || open_new(submission, &config, now)).await {
            Ok(p) => p,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    let prepared = match prepared {
        Ok(p) => p,
        Err(SubmitError::Invalid(report)) => {
            let problems = problems_json(&report);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": SubmitError::Invalid(report).to_string(),
                    "problems": problems,
                    "listed": problems.len(),
                })),
            )
                .into_response();
        }
        Err(e @ SubmitError::Selection(_)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let header = prepared.run.header();
    let body = json!({
        "run_id": header.run_id,
        "graph_version": header.graph_version,
        "objects": header.objects,
        "zones": prepared.zones,
        "warnings": prepared.warnings.iter().take(MAX_LISTED_PROBLEMS).collect::<Vec<_>>(),
        "warning_count": prepared.warnings.len(),
    });
    let command = |reply| EngineCommand::Submit {
        run: Box::new(prepared.run),
        objects: prepared.objects,
        reply,
    };
    match ask(&state, command).await {
        Ok(Ok(())) => (StatusCode::CREATED, Json(body)).into_response(),
        Ok(Err(why)) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(gone) => gone.into_response(),
    }
}

/// The options a submission asks for: `missing_parents=error|external`, `targets=ID,ID`.
fn run_options(query: &SubmitQuery) -> Result<RunOptions, String> {
    let missing_parents = match query.missing_parents.as_deref() {
        None | Some("error") => MissingParents::Error,
        Some("external") => MissingParents::External,
        Some(other) => {
            return Err(format!(
                "missing_parents={other:?}: expected error or external"
            ));
        }
    };
    let targets = query
        .targets
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>()
                .map(ObjectId)
                .map_err(|_| format!("targets: {t:?} is not an object id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunOptions {
        targets,
        zone: None,
        missing_parents,
        handlers: None,
    })
}

/// Which runs `GET /api/runs` lists: newest first, a page at a time, optionally by status.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_list_limit")]
    limit: usize,
    status: Option<RunStatus>,
    outcome: Option<RunOutcome>,
}

fn default_list_limit() -> usize {
    100
}

/// Every run: those the engine holds as they stand now, the others as stored.
#[utoipa::path(get, path = "/api/runs", tag = "runs",
    params(
        ("offset" = Option<usize>, Query, description = "Runs to skip"),
        ("limit" = Option<usize>, Query, description = "Runs to return (default 100, at most 10,000)"),
        ("status" = Option<RunStatus>, Query, description = "Only runs in this status"),
        ("outcome" = Option<RunOutcome>, Query, description = "Only runs with this outcome (`running`, `succeeded`, `failed`, `cancelled`, `interrupted`)"),
    ),
    responses(
        (status = 200, description = "Runs, newest first", body = RunList),
        ReadRefusals,
    ))]
async fn list(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = RunFilter {
        offset: query.offset,
        limit: query.limit,
        status: query.status,
        outcome: query.outcome,
    };
    let page = state.reads.runs(&filter).await?;
    let body = json!({ "total": page.total, "offset": query.offset, "limit": page.limit, "runs": page.runs });
    Ok(Json(body).into_response())
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("offset" = Option<usize>, Query, description = "Objects to skip (in id order)"),
        ("limit" = Option<usize>, Query, description = "Objects to return (default 100, at most 10,000)"),
        ("state" = Option<ObjectState>, Query, description = "Only objects in this state"),
    ),
    responses(
        (status = 200, description = "The run, its counts per state and a page of its objects", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
        ReadRefusals,
    ))]
async fn inspect(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ObjectQuery>,
) -> Result<Json<RunView>, ApiError> {
    let run = RunId::new(id.as_str());
    Ok(Json(state.reads.run(&run, &query).await?))
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "Cancelling: nothing new is dispatched and the workers stop its attempts in flight", body = Accepted),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Already finished, or not driven by this orchestrator", body = ErrorBody),
        ChangeRefusals,
    ))]
async fn cancel(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = RunId::new(id.as_str());
    match state.reads.cancel(&run).await? {
        Cancelled::Cancelling => {
            let body = Accepted {
                run_id: run.to_string(),
                status: RunStatus::Cancelling.as_str().into(),
                reset: None,
                retried: None,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Cancelled::AlreadyFinished => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {run} has already finished"),
        )),
        Cancelled::NotDriven => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {run} is not driven by this orchestrator"),
        )),
    }
}
