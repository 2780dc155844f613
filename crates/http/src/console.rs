//! The web console: one page and its script and style, built into the binary (no CDN, works
//! offline), served open at `/` (the API calls it makes carry the token the user gives it).
//! The script is built from `crates/http/console/src` (TypeScript) into `console/dist`; see
//! the console's README.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/dist/console.js");
const STYLE: &str = include_str!("../console/console.css");

fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/` (the runs), `/runs/{id}` (a run: the same page, which reads the address) and the assets.
pub fn console_router() -> Router {
    let page = || async { asset(INDEX, "text/html; charset=utf-8") };
    Router::new()
        .route("/", get(page))
        .route("/runs/{id}", get(page))
        .route(
            "/console/console.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}
