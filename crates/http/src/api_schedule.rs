//! The schedule's API: every object of the catalog with where it stands
//! (`GET /api/objects`, paged and filtered), the catalog replaced (`PUT /api/objects`), a run of one object now
//! (`POST /api/objects/{id}/trigger`), and pausing or resuming the whole schedule or one object
//! (`POST /api/schedule/pause|resume`, `POST /api/objects/{id}/pause|resume`).

use crate::api::{ApiError, ApiState, ask};
use crate::api_body::read_body;
use crate::api_objects::object_id;
use crate::api_query::ApiQuery;
use crate::openapi::InvalidObjects;
use crate::openapi::{ChangeRefusals, ErrorBody, ReadRefusals};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orchestrator_core::diagnostics::Report;
use orchestrator_core::graph::{Graph, LoadOptions, load_graph};
use orchestrator_core::schedule::Catalog;
use orchestrator_core::schedule::{Freshness, ObjectStatus, TriggerError};
use orchestrator_engine::open_schedule::ScheduleSettings;
use orchestrator_engine::{EngineCommand, PauseAnswer};
use orchestrator_protocol::{ObjectId, Zone};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Objects a page holds by default, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

/// `GET /api/objects`: which objects, from where.
#[derive(Debug, Deserialize)]
pub(crate) struct ObjectsQuery {
    zone: Option<String>,
    freshness: Option<String>,
    /// Objects with this frequency (`none`: without one).
    frequency: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// A page of the catalog.
#[derive(Serialize, ToSchema)]
pub struct ObjectPage {
    /// Objects that match the filters.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// The whole schedule is paused.
    pub paused: bool,
    pub objects: Vec<ObjectStatus>,
}

/// A run a trigger started.
#[derive(Serialize, ToSchema)]
pub struct Triggered {
    pub run_id: String,
}

/// What a pause or resume left.
#[derive(Serialize, ToSchema)]
pub struct PauseState {
    /// The object paused or resumed (absent: the whole schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<u64>,
    pub paused: bool,
}

fn no_schedule() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "this orchestrator keeps no schedule: start it with --schedule (SCHEDULE=true) and an OBJECTS_PATH catalog",
    )
}

#[utoipa::path(get, path = "/api/objects", tag = "schedule",
    params(
        ("zone" = Option<String>, Query, description = "Only this zone (`raw`, `2-Standardized`, …)"),
        ("freshness" = Option<String>, Query, description = "Only objects that are `due`, `fresh`, `stale`, `paused` or `inactive`"),
        ("frequency" = Option<String>, Query, description = "Only objects with this `Fréquence` (`none`: without one)"),
        ("offset" = Option<usize>, Query, description = "Objects to skip"),
        ("limit" = Option<usize>, Query, description = "Objects per page (default 100, at most 10000)"),
    ),
    responses(
        (status = 200, description = "The catalog: each object's zone, frequency, latest load, latest and next tick, and whether it is fresh, stale or due (and why)", body = ObjectPage),
        (status = 400, description = "An unknown zone or freshness", body = ErrorBody),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        ReadRefusals,
    ))]
pub(crate) async fn objects(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<ObjectsQuery>,
) -> Result<Json<ObjectPage>, ApiError> {
    let zone = match query.zone.as_deref() {
        None => None,
        Some(z) => Some(
            z.parse::<Zone>()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("zone: {e}")))?,
        ),
    };
    let freshness = match query.freshness.as_deref() {
        None => None,
        Some(f) => Some(parse_freshness(f)?),
    };
    let (paused, all) = ask(&state, |reply| EngineCommand::Objects { reply })
        .await?
        .ok_or_else(no_schedule)?;
    let wanted = |o: &ObjectStatus| {
        zone.is_none_or(|z| o.zone == z)
            && freshness.is_none_or(|f| o.freshness == f)
            && query.frequency.as_deref().is_none_or(|f| match f {
                "none" => o.frequency.is_none(),
                f => o.frequency.as_deref() == Some(f.trim()),
            })
    };
    let matching: Vec<ObjectStatus> = all.into_iter().filter(wanted).collect();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    Ok(Json(ObjectPage {
        total: matching.len(),
        offset,
        limit,
        paused,
        objects: matching.into_iter().skip(offset).take(limit).collect(),
    }))
}

fn parse_freshness(text: &str) -> Result<Freshness, ApiError> {
    Ok(match text {
        "due" => Freshness::Due,
        "fresh" => Freshness::Fresh,
        "stale" => Freshness::Stale,
        "paused" => Freshness::Paused,
        "inactive" => Freshness::Inactive,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("freshness={other:?}: expected due, fresh, stale, paused or inactive"),
            ));
        }
    })
}

#[utoipa::path(post, path = "/api/objects/{id}/trigger", tag = "schedule",
    params(("id" = u64, Path, description = "The object's id (IdObjet)")),
    responses(
        (status = 202, description = "A run of the object (with its stale ancestors and the objects that follow it) started", body = Triggered),
        (status = 400, description = "Not an object id", body = ErrorBody),
        (status = 404, description = "No such object in the catalog", body = ErrorBody),
        (status = 409, description = "The object is not active, or this orchestrator keeps no schedule", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn trigger(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    let object = object_id(&id)?;
    let answer = ask(&state, |reply| EngineCommand::Trigger { object, reply })
        .await?
        .ok_or_else(no_schedule)?;
    match answer {
        Ok(run) => Ok((
            StatusCode::ACCEPTED,
            Json(Triggered {
                run_id: run.to_string(),
            }),
        )),
        Err(e @ TriggerError::Unknown(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e @ TriggerError::Inactive(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
    }
}

async fn set_paused(
    state: &ApiState,
    object: Option<ObjectId>,
    paused: bool,
) -> Result<Json<PauseState>, ApiError> {
    match ask(state, |reply| EngineCommand::Pause {
        object,
        paused,
        reply,
    })
    .await?
    {
        PauseAnswer::Done => Ok(Json(PauseState {
            object: object.map(|o| o.0),
            paused,
        })),
        PauseAnswer::NoSchedule => Err(no_schedule()),
        PauseAnswer::UnknownObject => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("object {} is not in the catalog", object.map_or(0, |o| o.0)),
        )),
    }
}

#[utoipa::path(post, path = "/api/schedule/pause", tag = "schedule",
    responses(
        (status = 200, description = "The schedule is paused: no tick starts a run (triggers still do); stored", body = PauseState),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn pause_schedule(
    State(state): State<Arc<ApiState>>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, None, true).await
}

#[utoipa::path(post, path = "/api/schedule/resume", tag = "schedule",
    responses(
        (status = 200, description = "The schedule runs again from its next tick; stored", body = PauseState),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn resume_schedule(
    State(state): State<Arc<ApiState>>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, None, false).await
}

#[utoipa::path(post, path = "/api/objects/{id}/pause", tag = "schedule",
    params(("id" = u64, Path, description = "The object's id (IdObjet)")),
    responses(
        (status = 200, description = "The object is paused: never due, never run as a stale ancestor; stored", body = PauseState),
        (status = 400, description = "Not an object id", body = ErrorBody),
        (status = 404, description = "No such object in the catalog", body = ErrorBody),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn pause_object(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, Some(object_id(&id)?), true).await
}

#[utoipa::path(post, path = "/api/objects/{id}/resume", tag = "schedule",
    params(("id" = u64, Path, description = "The object's id (IdObjet)")),
    responses(
        (status = 200, description = "The object runs by its frequency again; stored", body = PauseState),
        (status = 400, description = "Not an object id", body = ErrorBody),
        (status = 404, description = "No such object in the catalog", body = ErrorBody),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn resume_object(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, Some(object_id(&id)?), false).await
}

#[utoipa::path(put, path = "/api/objects", tag = "schedule",
    request_body(content = Vec<Object>, content_type = "application/json", description = "The new catalog: object definitions in the old system's format"),
    responses(
        (status = 200, description = "Scheduled from now on and stored; each object keeps its latest load", body = Replaced),
        (status = 400, description = "Invalid objects or frequencies (every problem listed): the old catalog stays", body = InvalidObjects),
        (status = 409, description = "This orchestrator keeps no schedule", body = ErrorBody),
        (status = 413, description = "The body is past MAX_INPUT_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        ChangeRefusals,
    ))]
pub(crate) async fn replace(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Replaced>, Response> {
    let Some(settings) = state.schedule else {
        return Err(no_schedule().into_response());
    };
    let body = read_body(&headers, body, state.max_input_bytes, &state.budget)
        .await
        .map_err(IntoResponse::into_response)?;
    let (text, _held) = (body.text, body.held);
    // Validation of a large catalog takes a while: off the async threads.
    let now = state.clock.now_ms();
    let checked = tokio::task::spawn_blocking(move || check_catalog(text, &settings, now))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        })?;
    let (graph, catalog, objects) = checked.map_err(|report| {
        let problems = crate::api::problems_json(&report);
        let body = serde_json::json!({
            "error": format!("invalid catalog: {} error(s), {} warning(s); the current catalog stays", report.error_count(), report.warning_count()),
            "listed": problems.len(),
            "problems": problems,
        });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    })?;
    let objects_n = ask(&state, |reply| EngineCommand::ReplaceCatalog {
        graph: Box::new(graph),
        catalog: Box::new(catalog),
        objects,
        reply,
    })
    .await
    .map_err(IntoResponse::into_response)?
    .ok_or_else(|| no_schedule().into_response())?;
    Ok(Json(Replaced { objects: objects_n }))
}

/// A catalog replaced.
#[derive(Serialize, ToSchema)]
pub struct Replaced {
    /// Objects in the new catalog.
    pub objects: usize,
}

/// The catalog's graph and frequencies, with its compact text to store; or every problem.
fn check_catalog(
    text: String,
    settings: &ScheduleSettings,
    now: u64,
) -> Result<(Graph, Catalog, Arc<String>), Report> {
    let options = LoadOptions {
        missing_parents: settings.missing_parents,
        strict: false,
        max_object_bytes: settings.max_object_bytes,
    };
    let loaded = load_graph(text, options);
    let Some(mut graph) = loaded.graph else {
        return Err(loaded.report);
    };
    let (catalog, report) = Catalog::from_graph(&graph, settings.zone, now);
    if report.error_count() > 0 {
        return Err(report);
    }
    let objects = graph.rebase_on_compact();
    Ok((graph, catalog, objects))
}
