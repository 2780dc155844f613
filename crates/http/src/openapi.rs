//! The runs API's OpenAPI document, generated from the handlers' annotations (utoipa): every
//! route is registered with its documentation (`utoipa_axum`), so none can be served without
//! being in it. Served at `/api/openapi.json`, open like the health probes.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The name of the API tokens' scheme in the document.
pub const SECURITY_SCHEME: &str = "api_token";

/// What every refusal carries.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// What a route that reads may refuse with, whatever it is.
#[derive(utoipa::IntoResponses)]
pub enum ReadRefusals {
    /// No valid token.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not the writer, stopping, or the store cannot be read.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// What a route that changes a run may refuse with, whatever it is.
#[derive(utoipa::IntoResponses)]
pub enum ChangeRefusals {
    /// No valid token.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// A read-only token.
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// Busy (submissions past SUBMIT_MEMORY_BYTES: see Retry-After), not the writer, stopping,
    /// or the store cannot be read.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// A submission refused for its objects: every problem, each naming the object and field.
#[derive(Serialize, ToSchema)]
pub struct InvalidObjects {
    pub error: String,
    /// `{"severity","index","id","field","message","text"}` per problem (`text`: as
    /// `orchestrator validate` prints it).
    pub problems: Vec<serde_json::Value>,
    pub listed: usize,
}

/// A run started.
#[derive(Serialize, ToSchema)]
pub struct Submitted {
    pub run_id: String,
    pub graph_version: String,
    pub objects: usize,
    /// Objects per zone.
    pub zones: serde_json::Value,
    pub warnings: Vec<serde_json::Value>,
    pub warning_count: usize,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub runs: Vec<orchestrator_engine::run_view::RunReport>,
}

/// A run whose status changed on request (cancelled, or its failures run again).
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub run_id: String,
    pub status: String,
    /// Objects that run again (rerun and retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<usize>,
    /// A retry's roots: the object asked for, or the failed ancestors that blocked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried: Option<Vec<u64>>,
}

/// Adds the bearer-token scheme the API is closed with.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of API_TOKEN or API_TOKENS_FILE (`rw` to change, `ro` to read), as `Authorization: Bearer TOKEN`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orchestrator runs API",
        description = "Submit runs of a graph of data objects, follow them, look into their objects and attempts, run failures again and cancel them."
    ),
    modifiers(&BearerTokens),
    security(("api_token" = [])),
    tags(
        (name = "runs", description = "Runs and their objects"),
        (name = "schedule", description = "The catalog's objects by their frequencies: where each stands, triggers and pauses")
    )
)]
pub struct ApiDoc;

/// `/api/openapi.json`, serving `document`.
pub fn document_router(document: utoipa::openapi::OpenApi) -> Router {
    let document = std::sync::Arc::new(document);
    Router::new().route(
        "/api/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json((*document).clone()) }
        }),
    )
}
