//! The `command:` handler as a program sees it: a clean environment (never the worker's own
//! variables, so never its secrets), and output read in bounded memory however much it writes.

use orchestrator_protocol::{ObjectId, RawJson, ReadyEvent, RunId, SCHEMA_VERSION, Zone};
use worker_runtime::command::CommandHandler;
use worker_runtime::{Handler, Outcome};

fn task() -> ReadyEvent {
    ReadyEvent {
        event: "ObjectReady".into(),
        id: ObjectId(1001),
        zone: Zone::Raw,
        name: "o".into(),
        run_id: RunId::new("run-env"),
        ts: 0,
        preflight_fail: false,
        attempt: 1,
        graph_version: "g".into(),
        object: RawJson::from_string(r#"{"IdObjet":1001}"#.into()),
        schema_version: SCHEMA_VERSION,
    }
}

fn sh(script: &str) -> CommandHandler {
    CommandHandler::new("sh".into(), vec!["-c".into(), script.into()])
}

#[tokio::test]
async fn a_handler_sees_only_path_home_lang_tz_and_its_attempt() {
    // Cargo runs this test with CARGO_* variables: a handler must not see them.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let outcome = sh("env | cut -d= -f1 | sort | tr '\\n' ' ' >&2; exit 3")
        .handle(&task())
        .await
        .outcome;
    let Outcome::Failed { reason, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        reason.contains("ORCH_RUN_ID") && reason.contains("ORCH_IDEMPOTENCY_KEY"),
        "{reason}"
    );
    assert!(reason.contains("PATH"), "{reason}");
    assert!(
        !reason.contains("CARGO"),
        "the worker's environment leaked: {reason}"
    );
}

#[tokio::test]
async fn huge_output_keeps_its_head_and_tail_and_the_last_line_is_the_info() {
    // 10 MiB on stderr and then on stdout, between a first and a last line. (stderr goes first:
    // the two pipes are read at once, and the end of a stderr block written just before the
    // last line could be read after it.)
    let ran = sh("echo first-line; sleep 0.05; head -c 10485760 /dev/zero >&2; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo all-done")
        .handle(&task())
        .await;
    assert_eq!(
        ran.outcome,
        Outcome::Loaded {
            info: "all-done".into()
        }
    );
    let output = &ran.output;
    assert!(output.len() <= 64 * 1024 + 100, "{}", output.len());
    assert!(
        output.starts_with("first-line\n\0\0\0"),
        "{:?}",
        &output[..20]
    );
    assert!(
        output.ends_with("xxx\nall-done\n"),
        "{:?}",
        &output[output.len() - 20..]
    );
    assert!(
        output.ends_with("\nall-done\n"),
        "{}",
        &output[output.len() - 20..]
    );
    assert!(
        output.contains(" bytes left out …]"),
        "the marker between head and tail"
    );
    let ran =
        sh("head -c 20000000 /dev/zero | tr '\\0' y >&2; echo; echo the-real-reason >&2; exit 1")
            .handle(&task())
            .await;
    let Outcome::Failed { reason, retryable } = ran.outcome else {
        panic!("{:?}", ran.outcome);
    };
    assert!(retryable);
    assert!(
        reason.len() < 1000 && reason.ends_with("the-real-reason"),
        "{}",
        &reason[reason.len().saturating_sub(100)..]
    );
}

#[tokio::test]
async fn stdout_and_stderr_are_one_output_in_the_order_written() {
    let ran = sh("echo out-1; sleep 0.05; echo err-1 >&2; sleep 0.05; echo out-2; exit 1")
        .handle(&task())
        .await;
    assert_eq!(ran.output, "out-1\nerr-1\nout-2\n");
    let Outcome::Failed { reason, .. } = ran.outcome else {
        panic!("{:?}", ran.outcome);
    };
    assert_eq!(reason, "exit 1: err-1", "the reason is stderr's alone");
    // A smaller budget keeps less.
    let small = CommandHandler {
        kept_bytes: 100,
        ..sh("seq 1 10000")
    };
    let ran = small.handle(&task()).await;
    assert!(ran.output.starts_with("1\n2\n"), "{}", ran.output);
    assert!(ran.output.ends_with("9999\n10000\n"), "{}", ran.output);
    assert!(ran.output.len() < 200, "{}", ran.output);
}

/// Whether any process of process group `group` is still alive (from /proc).
fn group_alive(group: u32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid pgrp …: fields after the command's closing parenthesis.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.get(2).and_then(|p| p.parse::<u32>().ok()) == Some(group)
                && !matches!(fields.first(), Some(&"Z" | &"X"))
        })
}

#[tokio::test]
async fn exit_means_done_even_when_a_child_holds_the_output_open() {
    // The program exits at once; the child it leaves in the background holds stdout for 25 s.
    let started = std::time::Instant::now();
    let ran = sh("sleep 25 & echo parent-done").handle(&task()).await;
    let took = started.elapsed();
    assert_eq!(
        ran.outcome,
        Outcome::Loaded {
            info: "parent-done".into()
        }
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "the attempt waited for the child: {took:?}"
    );
}

#[tokio::test]
async fn the_children_a_program_leaves_are_killed_with_its_group() {
    let dir = std::env::temp_dir().join(format!("orch-group-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    // The program leads its own process group: its pid is the group's id.
    let group_file = dir.join("group");
    let script = format!(
        "sleep 30 >/dev/null 2>&1 & echo $$ > '{}'; echo started",
        group_file.display()
    );
    let ran = sh(&script).handle(&task()).await;
    assert!(matches!(ran.outcome, Outcome::Loaded { .. }), "{ran:?}");
    let group: u32 = std::fs::read_to_string(&group_file)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_default();
    assert!(group > 1, "no process group read");
    // SIGKILL is queued before the attempt returns, but a killed process leaves the process
    // table only once the kernel has torn it down: allow it that moment, not the 30 s sleep.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while group_alive(group) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !group_alive(group),
        "the program's child outlived its attempt"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
