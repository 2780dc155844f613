//! `http:URL`: POSTs the Ready event's JSON to a service. 2xx is loaded, 4xx fails for good,
//! 5xx and network errors are retried. The response body is read in bounded memory.

use crate::bounded_output::{BoundedOutput, DEFAULT_KEPT_BYTES};
use crate::handler::{Handler, Outcome, Ran, tail};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;

#[derive(Clone, Debug)]
pub struct HttpHandler {
    pub url: String,
    client: reqwest::Client,
    /// Bytes of a response's body kept (head and tail).
    kept_bytes: usize,
}

impl HttpHandler {
    pub fn new(url: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(HttpHandler {
            url,
            client,
            kept_bytes: DEFAULT_KEPT_BYTES,
        })
    }

    /// Keeps `bytes` of each response's body (head and tail).
    pub fn keeping(mut self, bytes: usize) -> Self {
        self.kept_bytes = bytes;
        self
    }
}

#[async_trait]
impl Handler for HttpHandler {
    async fn handle(&self, task: &ReadyEvent) -> Ran {
        let body = match serde_json::to_vec(task) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot encode the task: {e}"),
                    retryable: false,
                }
                .into();
            }
        };
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", task.idempotency_key())
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("POST {}: {e}", self.url),
                    retryable: true,
                }
                .into();
            }
        };
        let status = response.status();
        let text = read_bounded(response, self.kept_bytes).await.text();
        let outcome = if status.is_success() {
            Outcome::Loaded {
                info: tail(&text, 200),
            }
        } else {
            let reason = format!("POST {} answered {status}: {}", self.url, tail(&text, 500));
            Outcome::Failed {
                reason,
                retryable: !status.is_client_error(),
            }
        };
        Ran {
            outcome,
            output: text,
        }
    }

    fn describe(&self) -> String {
        format!("http:{}", self.url)
    }
}

/// A response body, its first and last bytes kept however long it is; what cannot be read
/// (the connection dropped mid-body) ends it.
async fn read_bounded(mut response: reqwest::Response, kept_bytes: usize) -> BoundedOutput {
    let mut out = BoundedOutput::new(kept_bytes);
    while let Ok(Some(chunk)) = response.chunk().await {
        out.push(&chunk);
    }
    out
}
