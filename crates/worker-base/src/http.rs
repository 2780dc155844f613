//! `http:URL`: POSTs the Ready event's JSON to a service. 2xx is loaded, 4xx fails for good,
//! 5xx and network errors are retried.

use crate::handler::{Handler, Outcome, tail};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;

#[derive(Clone, Debug)]
pub struct HttpHandler {
    pub url: String,
    client: reqwest::Client,
}

impl HttpHandler {
    pub fn new(url: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(HttpHandler { url, client })
    }
}

#[async_trait]
impl Handler for HttpHandler {
    async fn handle(&self, task: &ReadyEvent) -> Outcome {
        let body = match serde_json::to_vec(task) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot encode the task: {e}"),
                    retryable: false,
                };
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
                };
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Outcome::Loaded {
                info: tail(&text, 200),
            }
        } else {
            let reason = format!("POST {} answered {status}: {}", self.url, tail(&text, 500));
            Outcome::Failed {
                reason,
                retryable: !status.is_client_error(),
            }
        }
    }

    fn describe(&self) -> String {
        format!("http:{}", self.url)
    }
}
