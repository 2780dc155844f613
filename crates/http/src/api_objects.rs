//! The runs API on one run's objects: one object with its attempts
//! (`GET /api/runs/{id}/objects/{oid}`), an attempt's output (`…/attempts/{n}/output`), the
//! run's graph with states (`GET /api/runs/{id}/graph`), and running failures again
//! (`POST /api/runs/{id}/rerun`, `POST /api/runs/{id}/objects/{oid}/retry`). A run the engine
//! holds is read as it stands; any other is opened from the store.

use crate::api::{ApiError, ApiState, engine_gone, error};
use crate::api_query::ApiQuery;
use crate::openapi::{Accepted, ChangeRefusals, ErrorBody, ReadRefusals};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use orchestrator_core::scheduler::{RetryRefused, RunStatus};
use orchestrator_engine::graph_view::{GraphCut, GraphView};
use orchestrator_engine::object_view::ObjectDetail;
use orchestrator_engine::{RerunAnswer, RerunRefused};
use orchestrator_protocol::{ObjectId, RunId};
use serde::Deserialize;
use std::sync::Arc;

/// An object id from a path, or a 400 that says what was wrong.
pub(crate) fn object_id(text: &str) -> Result<ObjectId, ApiError> {
    text.parse::<u64>().map(ObjectId).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not an object id (a whole number)"),
        )
    })
}

#[utoipa::path(get, path = "/api/runs/{id}/objects/{oid}", tag = "runs",
    params(("id" = String, Path, description = "The run's id"), ("oid" = u64, Path, description = "The object's id (IdObjet)")),
    responses(
        (status = 200, description = "The object: definition, state, neighbours, blocking ancestor and every ended attempt", body = ObjectDetail),
        (status = 400, description = "Not an object id", body = ErrorBody),
        (status = 404, description = "No such run, or no such object in it", body = ErrorBody),
        ReadRefusals,
    ))]
pub(crate) async fn object(
    State(state): State<Arc<ApiState>>,
    Path((run, oid)): Path<(String, String)>,
) -> Result<Json<ObjectDetail>, ApiError> {
    let run = RunId::new(run.as_str());
    let id = object_id(&oid)?;
    Ok(Json(state.reads.object(&run, id).await?))
}

#[utoipa::path(get, path = "/api/runs/{id}/objects/{oid}/attempts/{n}/output", tag = "runs",
    params(("id" = String, Path, description = "The run's id"), ("oid" = u64, Path, description = "The object's id (IdObjet)"), ("n" = u32, Path, description = "The attempt (1 for the first)")),
    responses(
        (status = 200, description = "What the attempt's handler wrote (head and tail when long)", body = String, content_type = "text/plain"),
        (status = 400, description = "Not an object id or attempt number", body = ErrorBody),
        (status = 404, description = "No such run, object or ended attempt", body = ErrorBody),
        ReadRefusals,
    ))]
pub(crate) async fn attempt_output(
    State(state): State<Arc<ApiState>>,
    Path((run, oid, n)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let run = RunId::new(run.as_str());
    let id = object_id(&oid)?;
    let n = n.parse::<u32>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{n:?} is not an attempt number"),
        )
    })?;
    let output = state.reads.attempt_output(&run, id, n).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        output,
    )
        .into_response())
}

/// `GET /api/runs/{id}/graph`: the whole graph, or a cut of it.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphQuery {
    /// `json` (default) or `dot`.
    format: Option<String>,
    /// Comma-separated ids: these and their ancestors.
    targets: Option<String>,
    /// An id: it and the objects within `depth` links of it.
    around: Option<String>,
    /// Links from `around` (default 2).
    depth: Option<u32>,
}

#[utoipa::path(get, path = "/api/runs/{id}/graph", tag = "runs",
    params(("id" = String, Path, description = "The run's id"),
        ("format" = Option<String>, Query, description = "`json` (default) or `dot` (Graphviz, coloured by state)"),
        ("targets" = Option<String>, Query, description = "Comma-separated ids: these and their ancestors"),
        ("around" = Option<u64>, Query, description = "An id: it and the objects within `depth` links"),
        ("depth" = Option<u32>, Query, description = "Links from `around` (default 2)"),
    ),
    responses(
        (status = 200, description = "The run's objects with their states, and the links between them", body = GraphView),
        (status = 400, description = "An unknown format, or not an object id", body = ErrorBody),
        (status = 404, description = "No such run, or no such object in it", body = ErrorBody),
        ReadRefusals,
    ))]
pub(crate) async fn graph(
    State(state): State<Arc<ApiState>>,
    Path(run): Path<String>,
    ApiQuery(query): ApiQuery<GraphQuery>,
) -> Result<Response, ApiError> {
    let run = RunId::new(run.as_str());
    let dot = match query.format.as_deref() {
        None | Some("json") => false,
        Some("dot") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("format={other:?}: expected json or dot"),
            ));
        }
    };
    let mut cut = GraphCut {
        depth: query.depth.unwrap_or(2),
        ..GraphCut::default()
    };
    for t in query.targets.as_deref().unwrap_or("").split(',') {
        if !t.trim().is_empty() {
            cut.targets.push(object_id(t.trim())?);
        }
    }
    if let Some(around) = &query.around {
        cut.around = Some(object_id(around.trim())?);
    }
    let view = state.reads.graph(&run, cut).await?;
    Ok(if dot {
        (
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            view.to_dot(),
        )
            .into_response()
    } else {
        Json(view).into_response()
    })
}

#[utoipa::path(post, path = "/api/runs/{id}/rerun", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "Every failed, upstream-failed and cancelled object runs again (new attempts); what loaded is untouched", body = Accepted),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is still running, or nothing failed", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn rerun(State(state): State<Arc<ApiState>>, Path(run): Path<String>) -> Response {
    again(&state, RunId::new(run.as_str()), None).await
}

#[utoipa::path(post, path = "/api/runs/{id}/objects/{oid}/retry", tag = "runs",
    params(("id" = String, Path, description = "The run's id"), ("oid" = u64, Path, description = "The object's id (IdObjet)")),
    responses(
        (status = 202, description = "The object runs again with the descendants it alone blocked: a failed or cancelled object itself, an upstream-failed one through the failed ancestors that block it (`retried` names them)", body = Accepted),
        (status = 400, description = "Not an object id", body = ErrorBody),
        (status = 404, description = "No such run, or no such object in it", body = ErrorBody),
        (status = 409, description = "The object is neither failed, cancelled nor upstream-failed", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn retry(
    State(state): State<Arc<ApiState>>,
    Path((run, oid)): Path<(String, String)>,
) -> Response {
    match object_id(&oid) {
        Ok(id) => again(&state, RunId::new(run.as_str()), Some(id)).await,
        Err(refused) => refused.into_response(),
    }
}

/// Asks the engine to run failures again (it opens a run it does not hold from the store).
async fn again(state: &ApiState, run: RunId, object: Option<ObjectId>) -> Response {
    let answer = match state.reads.again(&run, object).await {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match answer {
        RerunAnswer::Done { reset, retried } => {
            let body = Accepted {
                run_id: run.to_string(),
                status: RunStatus::Running.as_str().into(),
                reset: Some(reset),
                retried: object.map(|_| retried.iter().map(|o| o.0).collect()),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        RerunAnswer::NotHeld => engine_gone(),
        RerunAnswer::Refused(why) => {
            let status = match &why {
                RerunRefused::Retry {
                    why: RetryRefused::UnknownObject(_),
                    ..
                } => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            error(status, why.to_string())
        }
    }
}
