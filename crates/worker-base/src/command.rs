//! `command:PROGRAM [ARGS...]`: runs a program per attempt with the object's JSON on stdin and
//! `ORCH_RUN_ID`, `ORCH_OBJECT_ID`, `ORCH_ZONE`, `ORCH_ATTEMPT` in its environment. Exit 0 is
//! loaded; exit 65 (EX_DATAERR) fails for good; any other failure is retried.

use crate::handler::{Handler, Outcome, tail};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Exit code a program uses to say "this object cannot load; do not retry".
pub const EXIT_NOT_RETRYABLE: i32 = 65;
const REASON_BYTES: usize = 800;

#[derive(Clone, Debug)]
pub struct CommandHandler {
    pub program: String,
    pub args: Vec<String>,
}

#[async_trait]
impl Handler for CommandHandler {
    async fn handle(&self, task: &ReadyEvent) -> Outcome {
        let mut child = match Command::new(&self.program)
            .args(&self.args)
            .env("ORCH_RUN_ID", task.run_id.as_str())
            .env("ORCH_OBJECT_ID", task.id.to_string())
            .env("ORCH_ZONE", task.zone.as_str())
            .env("ORCH_ATTEMPT", task.attempt.to_string())
            .env("ORCH_IDEMPOTENCY_KEY", task.idempotency_key())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out attempt drops this future: the child is killed with it.
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot start {:?}: {e}", self.program),
                    retryable: false,
                };
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let body = task.object.get().as_bytes().to_vec();
            // A program that does not read its input closes the pipe: that is not a failure.
            tokio::spawn(async move {
                let _ = stdin.write_all(&body).await;
            });
        }
        let output = match child.wait_with_output().await {
            Ok(o) => o,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("waiting for {:?}: {e}", self.program),
                    retryable: true,
                };
            }
        };
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let info = stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("exit 0");
            return Outcome::Loaded {
                info: tail(info, 200),
            };
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        let status = code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
        let detail = if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", tail(&stderr, REASON_BYTES))
        };
        Outcome::Failed {
            reason: format!("{status}{detail}"),
            retryable: code != Some(EXIT_NOT_RETRYABLE),
        }
    }

    fn describe(&self) -> String {
        format!("command:{} {}", self.program, self.args.join(" "))
            .trim_end()
            .to_string()
    }
}
