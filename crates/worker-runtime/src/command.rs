//! `command:PROGRAM [ARGS...]`: runs a program per attempt with the object's JSON on stdin and
//! `ORCH_RUN_ID`, `ORCH_OBJECT_ID`, `ORCH_ZONE`, `ORCH_ATTEMPT` in a clean environment. Exit 0 is
//! loaded (the last line of stdout its info); exit 65 (EX_DATAERR) fails for good; any other
//! failure is retried (the tail of stderr its reason). Stdout and stderr are captured together,
//! in the order they come, in bounded memory: the attempt's output.

use crate::bounded_output::{BoundedOutput, DEFAULT_KEPT_BYTES};
use crate::handler::{Handler, Outcome, Ran, tail};
use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Exit code a program uses to say "this object cannot load; do not retry".
pub const EXIT_NOT_RETRYABLE: i32 = 65;
/// Once a program has exited, how long what its children still hold open (its output pipes)
/// is read before they are killed with its process group: the attempt's result is the
/// program's, never its leftovers'.
pub const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
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
    /// Bytes of output kept per attempt (head and tail), `ATTEMPT_OUTPUT_BYTES`.
    pub kept_bytes: usize,
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
            kept_bytes: DEFAULT_KEPT_BYTES,
        }
    }
}

#[async_trait]
impl Handler for CommandHandler {
    async fn handle(&self, task: &ReadyEvent) -> Ran {
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
            // A timed-out or cancelled attempt drops this future: the child is killed with it,
            // and the programs it started with it (its process group, see `KillGroup`).
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot start {:?}: {e}", self.program),
                    retryable: false,
                }
                .into();
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let body = task.object.get().as_bytes().to_vec();
            // A program that does not read its input closes the pipe: that is not a failure.
            tokio::spawn(async move {
                let _ = stdin.write_all(&body).await;
            });
        }
        let group = KillGroup(child.id());
        let pipes = (child.stdout.take(), child.stderr.take());
        let mut captured = Captured::new(self.kept_bytes);
        let status = {
            let reading = capture(pipes, &mut captured);
            tokio::pin!(reading);
            let mut read_all = false;
            let status = loop {
                tokio::select! {
                    () = &mut reading, if !read_all => read_all = true,
                    status = child.wait() => break status,
                }
            };
            // Exit means done: what children it left still write is read for a moment, then
            // they go with its process group.
            if !read_all
                && tokio::time::timeout(OUTPUT_GRACE, &mut reading)
                    .await
                    .is_err()
            {
                tracing::debug!(program = %self.program, "the program exited; its children still held its output: killed");
            }
            status
        };
        // Whatever is left of its group (children that outlived it) goes now, before the
        // attempt's result does.
        drop(group);
        let output = captured.output.text();
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return Ran {
                    outcome: Outcome::Failed {
                        reason: format!("waiting for {:?}: {e}", self.program),
                        retryable: true,
                    },
                    output,
                };
            }
        };
        if status.success() {
            let info = captured
                .stdout_end
                .last_line()
                .unwrap_or_else(|| "exit 0".to_string());
            let info = tail(&info, 200);
            return Ran {
                outcome: Outcome::Loaded { info },
                output,
            };
        }
        let stderr = captured.stderr_end.text();
        let code = status.code();
        let status = code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
        let detail = if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", tail(&stderr, REASON_BYTES))
        };
        Ran {
            outcome: Outcome::Failed {
                reason: format!("{status}{detail}"),
                retryable: code != Some(EXIT_NOT_RETRYABLE),
            },
            output,
        }
    }

    fn describe(&self) -> String {
        format!("command:{} {}", self.program, self.args.join(" "))
            .trim_end()
            .to_string()
    }
}

/// Kills a program's process group when its attempt ends: dropped before the program ended
/// (a timeout, a cancelled run), or after it, for the children it left behind. `sh -c 'a | b'`
/// leaves no `a` or `b` running. The signal is sent by the `kill` system call itself before the
/// drop returns, so a worker or `run` that exits right after leaves nothing behind.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let pid = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .filter(|&p| p > 1);
        if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
            // ESRCH (nothing left of the group) is the common case.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// What a program wrote: both streams together in the order they came, and the ends of each
/// (stdout's last line is a loaded attempt's info, stderr's tail a failure's reason).
struct Captured {
    output: BoundedOutput,
    stdout_end: BoundedOutput,
    stderr_end: BoundedOutput,
}

impl Captured {
    fn new(kept_bytes: usize) -> Captured {
        Captured {
            output: BoundedOutput::new(kept_bytes),
            stdout_end: BoundedOutput::new(8 * 1024),
            stderr_end: BoundedOutput::new(4 * REASON_BYTES),
        }
    }
}

/// Reads both pipes to their ends into `captured` (what was read stays there if this is
/// dropped before), keeping its bound. A pipe that cannot be read (or was not captured) ends:
/// the exit status decides.
async fn capture<O, E>(pipes: (Option<O>, Option<E>), captured: &mut Captured)
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (mut stdout, mut stderr) = pipes;
    let (mut out_buf, mut err_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    while stdout.is_some() || stderr.is_some() {
        // Both ready: stdout first, as a program that writes one then the other usually did.
        tokio::select! {
            biased;
            read = read_some(&mut stdout, &mut out_buf), if stdout.is_some() => match read {
                Some(n) => {
                    captured.output.push(&out_buf[..n]);
                    captured.stdout_end.push(&out_buf[..n]);
                }
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf), if stderr.is_some() => match read {
                Some(n) => {
                    captured.output.push(&err_buf[..n]);
                    captured.stderr_end.push(&err_buf[..n]);
                }
                None => stderr = None,
            },
        }
    }
}

/// The next bytes of a pipe; `None` at its end (or when it cannot be read).
async fn read_some(pipe: &mut Option<impl AsyncRead + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match pipe.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}
