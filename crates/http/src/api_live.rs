//! `GET /api/events`: the runs as they change, as server-sent events, for the web console:
//! `run` events carry a run's header (status and counts) each time it changes, and with
//! `?run=ID` `objects` events carry that run's objects whose state changed. A follower that
//! falls behind gets `resync` (read the run again). Nothing is sent per object to anyone not
//! following that run.

use crate::api::{ApiError, ApiState};
use crate::api_query::ApiQuery;
use crate::openapi::{ErrorBody, ReadRefusals};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use orchestrator_engine::live::LiveUpdate;
use orchestrator_protocol::RunId;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    /// Follow this run's objects too.
    run: Option<String>,
}

#[utoipa::path(get, path = "/api/events", tag = "runs",
    params(("run" = Option<String>, Query, description = "Also follow this run's objects")),
    responses(
        (status = 200, description = "Server-sent events: `run` (a run's header, each time it changes), `objects` (with `run`: `{run, objects: [{id, state, attempt}]}`), `resync` (fell behind: read the run again)", content_type = "text/event-stream", body = String),
        (status = 409, description = "This orchestrator has no live view", body = ErrorBody),
        (status = 503, description = "MAX_EVENT_SUBSCRIBERS followers already", body = ErrorBody),
        ReadRefusals,
    ))]
pub(crate) async fn events(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let live = state
        .live
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "this orchestrator has no live view"))?;
    // Each follower holds a connection for as long as it follows: their number is bounded.
    let permit = state.subscribers.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many followers of the live events (MAX_EVENT_SUBSCRIBERS): try again later",
        )
    })?;
    let followed = query.run.map(|r| RunId::new(r.as_str()));
    let receiver = live.subscribe();
    let stream = futures::stream::unfold(
        (receiver, followed, true, permit),
        |(mut receiver, followed, first, permit)| async move {
            if first {
                let hello = Event::default().event("hello").data("{}");
                return Some((Ok(hello), (receiver, followed, false, permit)));
            }
            loop {
                let event = match receiver.recv().await {
                    Ok(update) => to_event(&update, followed.as_ref()),
                    Err(RecvError::Lagged(_)) => Some(Event::default().event("resync").data("{}")),
                    Err(RecvError::Closed) => return None,
                };
                if let Some(event) = event {
                    return Some((Ok(event), (receiver, followed, false, permit)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The event an update makes for a follower of `followed` (or of the runs list alone).
fn to_event(update: &LiveUpdate, followed: Option<&RunId>) -> Option<Event> {
    if followed == Some(&update.run.header.run_id) {
        Event::default().event("objects").json_data(update).ok()
    } else {
        Event::default().event("run").json_data(&update.run).ok()
    }
}
