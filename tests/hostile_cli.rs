//! The command line under hostile or careless use: values that name no id are errors (never a
//! dropped dependency), a closed pipe or a full output ends cleanly with its documented code, a
//! damaged state file is a state error (3), and a worker refuses to start without a handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use common::{bin, hostile_parents, orchestrator, text, with_parent};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn unreadable_parents_are_errors_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    for parent in &hostile_parents() {
        let file = write(dir.path(), "objects.json", &with_parent(parent));
        let out = orchestrator(&["validate", &file]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{parent}: {stderr}");
        assert!(
            stderr.contains("object 2001 (index 1), IdObjet_Parent:"),
            "{parent}: {stderr}"
        );
        let out = orchestrator(&[
            "run",
            &file,
            "--handler",
            "simulate:0",
            "--progress",
            "none",
        ]);
        assert_eq!(out.status.code(), Some(2), "{parent}: run accepted it");
        assert!(text(&out.stderr).contains("nothing was run"));
    }
    let file = write(
        dir.path(),
        "id.json",
        r#"[{"IdObjet":1e400,"Zone":"1-Raw"}]"#,
    );
    let stderr = text(&orchestrator(&["validate", &file]).stderr);
    assert!(stderr.contains("number out of range"), "{stderr}");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bom.json",
        &format!("\u{feff}{}", with_parent("1001")),
    );
    let out = orchestrator(&["validate", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("objects: 2 (1 edges)"));
}

#[test]
fn an_object_over_the_size_limit_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(3000);
    let body = format!(
        r#"[{{"IdObjet":1001,"Zone":"1-Raw","NomObjet":"{big}"}},{{"IdObjet":1002,"Zone":"1-Raw"}}]"#
    );
    let file = write(dir.path(), "big.json", &body);
    let out = orchestrator(&["validate", &file, "--max-object-bytes", "2048"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "object 1001 (index 0): the object is 3045 bytes, more than the limit of 2048"
        ),
        "{stderr}"
    );
}

/// Runs `args`, reads the first `read` bytes of its output, then closes the pipe.
fn with_closed_pipe(args: &[&str], read: usize) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = vec![0u8; read];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_device_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    let out = orchestrator(&[
        "generate",
        "--objects",
        "20000",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let file = file.to_str().unwrap();
    // Outputs far larger than a pipe's buffer, so that the writes after the close fail.
    for args in [
        &["plan", file, "--format", "dot"][..],
        &["generate", "--objects", "20000"][..],
    ] {
        let (code, stderr) = with_closed_pipe(args, 16);
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A short output, its reader gone before the command writes (it reads 20,000 objects
    // first): `validate FILE | head -0`.
    let (code, stderr) = with_closed_pipe(&["validate", file], 0);
    assert_eq!(code, Some(141), "validate: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for args in [
        &["validate", file][..],
        &["plan", file, "--format", "dot"][..],
    ] {
        let out = Command::new(bin())
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_truncated_state_file_is_a_state_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_with_state(&common::tools("sample-objects.json"), &state);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = state.join("state.redb");
    let whole = std::fs::read(&db).unwrap();
    for keep in [100, 5000, 20_000] {
        std::fs::write(&db, &whole[..keep.min(whole.len())]).unwrap();
        let out = orchestrator(&["status", "--state-dir", state.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{keep} bytes: {stderr}");
        assert!(stderr.contains("state.redb"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_worker_without_a_handler_refuses_to_start() {
    let out = Command::new(common::workspace_bin("ingestion-worker"))
        .env_clear()
        .env("KAFKA_BOOTSTRAP", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no handler: set HANDLER"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_full_state_disk_is_a_state_error() {
    // A 256 KiB file system for the state directory: mounting one needs root, as CI is.
    if text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() != "0" {
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(mounted.success(), "mount of a tmpfs failed");
    let file = common::generated(dir.path(), 3000, 1);
    let out = run_with_state(&file, &small.join("state"));
    let _ = Command::new("umount").arg(&small).status();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `orchestrator run FILE` with no work per object, its state kept in `state`.
fn run_with_state(file: &Path, state: &Path) -> std::process::Output {
    orchestrator(&[
        "run",
        file.to_str().unwrap(),
        "--handler",
        "simulate:0",
        "--progress",
        "none",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}
