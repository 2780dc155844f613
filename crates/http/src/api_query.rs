//! The API's query strings: read like axum's `Query`, but a malformed one is refused with the
//! documented JSON error body (`{"error": …}`, naming the parameter and the values it takes),
//! never axum's plain-text 400.

use crate::api::ApiError;
use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A query string deserialized into `T`; a refusal is a JSON 400.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                rejection.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use orchestrator_core::scheduler::RunStatus;

    #[derive(Debug, serde::Deserialize)]
    struct Q {
        #[allow(dead_code)]
        status: Option<RunStatus>,
    }

    #[tokio::test]
    async fn a_bad_value_is_a_json_refusal_naming_the_valid_values() {
        let request = Request::get("/api/runs?status=bogus")
            .body(())
            .unwrap_or_default();
        let (mut parts, ()) = request.into_parts();
        let refused = ApiQuery::<Q>::from_request_parts(&mut parts, &())
            .await
            .err()
            .map(|e| (e.status, e.message));
        let (status, message) = refused.unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("bogus"), "{message}");
        assert!(message.contains("finished"), "{message}");
    }
}
