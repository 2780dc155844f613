//! Reading a submission's body within bounds: JSON only (415 otherwise), refused past the input
//! limit before it is buffered (413), and held against a memory budget shared by every
//! submission in progress (503 with `Retry-After` past it), so that no burst of large posts can
//! exhaust the process.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default of `SUBMIT_MEMORY_BYTES`: bodies of submissions in progress, together.
pub const DEFAULT_SUBMIT_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

/// Seconds a client refused for want of memory is told to wait.
const RETRY_AFTER_SECONDS: u64 = 5;

/// What a submission holds per byte of its body: the text, and the compact copy stored with
/// the run (the objects read from it are slices of the text).
const BYTES_HELD_PER_BODY_BYTE: usize = 2;

/// The memory submissions may hold at once, in bytes.
#[derive(Debug, Clone)]
pub struct SubmitBudget {
    bytes: Arc<Semaphore>,
}

impl SubmitBudget {
    /// A budget of `bytes`, raised when needed so that a body of `largest_body` bytes (the
    /// input limit) always fits alone.
    pub fn new(bytes: u64, largest_body: u64) -> SubmitBudget {
        let floor = largest_body.saturating_mul(BYTES_HELD_PER_BODY_BYTE as u64);
        let bytes = usize::try_from(bytes.max(floor))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        SubmitBudget {
            bytes: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// Takes what `n` more bytes of body hold for `held`, or refuses at once.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> Result<(), BodyRefused> {
        if n == 0 {
            return Ok(());
        }
        let n = n.saturating_mul(BYTES_HELD_PER_BODY_BYTE);
        let n = u32::try_from(n).map_err(|_| BodyRefused::Busy)?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyRefused::Busy)?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// Why a body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyRefused {
    #[error("the body must be JSON: send Content-Type: application/json")]
    NotJson,
    #[error(
        "the body is larger than the input limit of {0} bytes (--max-input-bytes, MAX_INPUT_BYTES)"
    )]
    TooLarge(u64),
    #[error(
        "too many submissions in progress for the memory budget (SUBMIT_MEMORY_BYTES); try again later"
    )]
    Busy,
    #[error("reading the body: {0}")]
    Read(String),
    #[error("the body is not UTF-8 text: {0}")]
    NotUtf8(std::string::FromUtf8Error),
}

impl BodyRefused {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyRefused::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyRefused::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefused::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyRefused::Read(_) | BodyRefused::NotUtf8(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for BodyRefused {
    fn into_response(self) -> Response {
        let mut r = (
            self.status(),
            axum::Json(json!({ "error": self.to_string() })),
        )
            .into_response();
        if matches!(self, BodyRefused::Busy) {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        r
    }
}

/// A body read whole, and the share of the budget it holds until dropped.
pub struct BoundedBody {
    pub text: String,
    /// Its share of the budget: keep it while the text, or what is made of it, is held.
    pub held: Option<OwnedSemaphorePermit>,
}

/// Whether `headers` say JSON (or say nothing, as many clients do).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads `body` as UTF-8 JSON text within `limit` bytes, holding its size against `budget`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    budget: &SubmitBudget,
) -> Result<BoundedBody, BodyRefused> {
    if !is_json(headers) {
        return Err(BodyRefused::NotJson);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyRefused::TooLarge(limit));
    }
    let mut held = None;
    // A declared size is taken from the budget at once, before any of it is read.
    let declared = declared.and_then(|n| usize::try_from(n).ok());
    budget.take(&mut held, declared.unwrap_or(0))?;
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyRefused::Read(e.to_string()))?;
        let after = buf.len() + chunk.len();
        if after as u64 > limit {
            return Err(BodyRefused::TooLarge(limit));
        }
        // Past what was declared (or without a declaration), each chunk is taken as it comes.
        let over = after.saturating_sub(declared.unwrap_or(0).max(buf.len()));
        budget.take(&mut held, over)?;
        buf.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(buf).map_err(BodyRefused::NotUtf8)?;
    Ok(BoundedBody { text, held })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types_and_no_type_are_json() {
        let mut h = HeaderMap::new();
        assert!(is_json(&h));
        for (t, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/vnd.api+json", true),
            ("application/x-www-form-urlencoded", false),
            ("text/plain", false),
        ] {
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(t));
            assert_eq!(is_json(&h), ok, "{t}");
        }
    }

    #[tokio::test]
    async fn the_budget_refuses_what_it_cannot_hold_and_frees_what_is_dropped() {
        // 60 bytes of body hold 120: one at a time in 200.
        let budget = SubmitBudget::new(200, 0);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(60));
        let first = read_body(&headers, Body::from("x".repeat(60)), 1000, &budget).await;
        let first = first.map_err(|r| r.status()).map(|b| b.text.len());
        assert_eq!(first, Ok(60));
        // The first body was dropped: its bytes are back in the budget.
        let held = read_body(&headers, Body::from("x".repeat(60)), 1000, &budget).await;
        let held = held.unwrap_or_else(|r| panic!("{r}"));
        let refused = read_body(&headers, Body::from("x".repeat(60)), 1000, &budget).await;
        assert_eq!(
            refused.err().map(|r| r.status()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        drop(held);
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(2000));
        let large = read_body(&headers, Body::from("x"), 1000, &budget).await;
        assert_eq!(
            large.err().map(|r| r.status()),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let streamed = read_body(
            &HeaderMap::new(),
            Body::from("x".repeat(1001)),
            1000,
            &budget,
        )
        .await;
        assert_eq!(
            streamed.err().map(|r| r.status()),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }
}
