//! A client of a running `serve`'s runs API, for the command line (`submit`, `runs`): one
//! blocking call per request, the token as a bearer header, the API's errors as they came.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The API answered with an error status and its message (`body`: the whole answer,
    /// e.g. every problem of refused objects).
    #[error("{status}: {message}")]
    Refused {
        status: u16,
        message: String,
        body: Value,
    },
    #[error("{url}: the answer is not the API's JSON: {source}")]
    Decode { url: String, source: reqwest::Error },
}

impl ClientError {
    /// The HTTP status of a refusal (401 without a token, 404 for an unknown run, …).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problems of refused objects, each as `validate` prints it.
    pub fn problems(&self) -> Vec<String> {
        let ClientError::Refused { body, .. } = self else {
            return Vec::new();
        };
        body["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect()
    }
}

/// The runs API of one server.
pub struct RunsClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl RunsClient {
    pub fn new(base: &str, token: Option<String>) -> Result<RunsClient, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: base.to_string(),
                source,
            })?;
        Ok(RunsClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// `POST /api/runs?QUERY` with the object definitions.
    pub fn submit(&self, body: Vec<u8>, query: &[(&str, String)]) -> Result<Value, ClientError> {
        let request = self
            .http
            .post(format!("{}/api/runs", self.base))
            .query(query)
            .header("content-type", "application/json")
            .body(body);
        self.send(request)
    }

    /// `GET /api/runs`, newest first, optionally of one status and one outcome.
    pub fn list(&self, filters: &[(&str, &str)]) -> Result<Value, ClientError> {
        let request = self
            .http
            .get(format!("{}/api/runs", self.base))
            .query(filters);
        self.send(request)
    }

    /// `GET /api/runs/{id}`: its header, outcome, counts and summary, and a page of its
    /// objects (only those in `state`, when given; each failed one with its reason).
    pub fn show(&self, run: &str, state: Option<&str>) -> Result<Value, ClientError> {
        let mut request = self.http.get(format!("{}/api/runs/{run}", self.base));
        if let Some(state) = state {
            request = request.query(&[("state", state), ("limit", "10000")]);
        }
        self.send(request)
    }

    /// `POST /api/runs/{id}/cancel`.
    pub fn cancel(&self, run: &str) -> Result<Value, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/runs/{run}/cancel", self.base)),
        )
    }

    /// `POST /api/runs/{id}/rerun`: every failure again.
    pub fn rerun(&self, run: &str) -> Result<Value, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/runs/{run}/rerun", self.base)),
        )
    }

    /// `POST /api/runs/{id}/objects/{oid}/retry`: one failed object and what it blocked.
    pub fn retry(&self, run: &str, object: u64) -> Result<Value, ClientError> {
        let url = format!("{}/api/runs/{run}/objects/{object}/retry", self.base);
        self.send(self.http.post(url))
    }

    /// `GET /api/runs/{id}/objects/{oid}`: its definition, state and attempts.
    pub fn object(&self, run: &str, object: u64) -> Result<Value, ClientError> {
        let url = format!("{}/api/runs/{run}/objects/{object}", self.base);
        self.send(self.http.get(url))
    }

    /// `GET /api/runs/{id}/objects/{oid}/attempts/{n}/output`, as text.
    pub fn output(&self, run: &str, object: u64, attempt: u32) -> Result<String, ClientError> {
        let url = format!(
            "{}/api/runs/{run}/objects/{object}/attempts/{attempt}/output",
            self.base
        );
        let answer = self.answer(self.http.get(url))?;
        answer.text().map_err(|source| ClientError::Decode {
            url: self.base.clone(),
            source,
        })
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Value, ClientError> {
        let answer = self.answer(request)?;
        answer.json().map_err(|source| ClientError::Decode {
            url: self.base.clone(),
            source,
        })
    }

    /// Sends with the token; a success as it came, an error status as its message.
    fn answer(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let url = self.base.clone();
        let answer = request.send().map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(answer);
        }
        let body: Value = answer
            .json()
            .map_err(|source| ClientError::Decode { url, source })?;
        let message = body["error"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_string);
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
            body,
        })
    }
}
