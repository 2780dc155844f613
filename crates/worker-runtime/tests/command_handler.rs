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
        .await;
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
async fn huge_output_is_read_in_bounded_memory_and_the_last_line_is_the_info() {
    // 20 MB on stdout and on stderr, then a last line.
    let outcome = sh("head -c 20000000 /dev/zero | tr '\\0' x; head -c 20000000 /dev/zero >&2; echo; echo all-done")
        .handle(&task())
        .await;
    assert_eq!(
        outcome,
        Outcome::Loaded {
            info: "all-done".into()
        }
    );
    let outcome =
        sh("head -c 20000000 /dev/zero | tr '\\0' y >&2; echo; echo the-real-reason >&2; exit 1")
            .handle(&task())
            .await;
    let Outcome::Failed { reason, retryable } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(retryable);
    assert!(
        reason.len() < 1000 && reason.ends_with("the-real-reason"),
        "{}",
        &reason[reason.len().saturating_sub(100)..]
    );
}
