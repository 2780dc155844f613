//! `command:PROGRAM [ARGS...]`: runs a program per attempt with the object's JSON on stdin and
//! `ORCH_RUN_ID`, `ORCH_OBJECT_ID`, `ORCH_ZONE`, `ORCH_ATTEMPT` in a clean environment. Exit 0 is
//! loaded; exit 65 (EX_DATAERR) fails for good; any other failure is retried. Its output is read
//! in bounded memory.

use crate::bounded_output::{BoundedOutput, DEFAULT_KEPT_BYTES, read_bounded};
use crate::handler::{Handler, Outcome, tail};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Exit code a program uses to say "this object cannot load; do not retry".
pub const EXIT_NOT_RETRYABLE: i32 = 65;
const REASON_BYTES: usize = 800;

/// Variables a handler always gets from the process's environment, when set. Anything else
/// (`REDIS_URL`'s password, `KAFKA_PROPERTIES`' SASL secret, …) only when named in
/// `HANDLER_ENV`.
pub const PASSED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

#[derive(Clone, Debug)]
pub struct CommandHandler {
    pub program: String,
    pub args: Vec<String>,
    /// The environment the program starts with (before the `ORCH_*` variables of its attempt).
    pub environment: Arc<[(String, String)]>,
}

impl CommandHandler {
    /// A handler whose programs get [`PASSED_ENV`] and the names listed in `HANDLER_ENV`
    /// (comma or space separated), from this process's environment.
    pub fn new(program: String, args: Vec<String>) -> CommandHandler {
        let extra = std::env::var("HANDLER_ENV").unwrap_or_default();
        let names = PASSED_ENV.into_iter().chain(
            extra
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|n| !n.is_empty()),
        );
        let environment = names
            .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
            .collect();
        CommandHandler {
            program,
            args,
            environment,
        }
    }
}

#[async_trait]
impl Handler for CommandHandler {
    async fn handle(&self, task: &ReadyEvent) -> Outcome {
        let mut child = match Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
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
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (stdout, stderr, status) =
            tokio::join!(read_pipe(stdout), read_pipe(stderr), child.wait());
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("waiting for {:?}: {e}", self.program),
                    retryable: true,
                };
            }
        };
        // An output that could not be read is an empty one: the exit status decides.
        let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
        if status.success() {
            let info = stdout.last_line().unwrap_or_else(|| "exit 0".to_string());
            return Outcome::Loaded {
                info: tail(&info, 200),
            };
        }
        let stderr = stderr.text();
        let code = status.code();
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

/// A child's pipe read to its end in bounded memory (nothing when it was not captured).
async fn read_pipe(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
) -> std::io::Result<BoundedOutput> {
    match pipe {
        Some(p) => read_bounded(p, DEFAULT_KEPT_BYTES).await,
        None => Ok(BoundedOutput::default()),
    }
}
