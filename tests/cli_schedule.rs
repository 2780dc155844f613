//! `orchestrator schedule FILE --at TIME`, the schedule's dry run, as a user runs it: what would
//! run and why, what is skipped as fresh, in a time zone; bad frequencies, times and zones are
//! refused with the object and field named (exit 2), bad `Lastrun` values are warnings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use common::*;

/// raw 1001 hourly (loaded 05:30: due at 06:00), raw 1002 hourly (loaded 06:05: fresh), std
/// 2001 following its parents (loaded 05:40), app 3001 daily at 07:00 Paris (06:00 UTC),
/// app 3002 inactive.
const OBJECTS: &str = r#"[
  {"IdObjet":1001,"NomObjet":"Customers","Fréquence":"0 * * * *","Lastrun":"2026-11-30T05:30:00Z"},
  {"IdObjet":1002,"NomObjet":"Tasks","Fréquence":"0 * * * *","Lastrun":1796018700},
  {"IdObjet":2001,"NomObjet":"Customers","IdObjet_Parent":"1001,1002","Lastrun":"2026-11-30 06:40:00"},
  {"IdObjet":3001,"NomObjet":"Report","IdObjet_Parent":2001,"Fréquence":"0 7 * * *","Lastrun":"2026-11-29T07:00:00+01:00"},
  {"IdObjet":3002,"NomObjet":"Old","IdObjet_Parent":2001,"EtatObjet":"inactif","Fréquence":"@hourly"}
]"#;

fn schedule(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["schedule", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    orchestrator(&args)
}

#[test]
fn the_dry_run_says_what_would_run_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    std::fs::write(&file, OBJECTS).unwrap();
    // 06:10 UTC; 2001's Lastrun has no offset: read in Paris (05:40 UTC).
    let out = schedule(
        &file,
        &["--at", "2026-11-30T06:10:00Z", "--timezone", "Europe/Paris"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "3 objects would run, 1 ancestors skipped as fresh",
        "run   1001 Customers (1-Raw): due: 0 * * * * ticked at 2026-11-30T07:00:00+01:00",
        "run   2001 Customers (2-Standardized): follows parent 1002, which loaded newer data",
        "run   3001 Report (3-Application): due: 0 7 * * * ticked at 2026-11-30T07:00:00+01:00",
        "fresh 1002 Tasks (1-Raw): loaded since its latest tick",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    assert!(
        !shown.contains("3002"),
        "an inactive object is never due:\n{shown}"
    );
    let out = schedule(&file, &["--at", "1796019000", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"][0]["id"], 1001);
    assert_eq!(v["run"][0]["reason"]["why"], "due");
    assert_eq!(v["fresh"], serde_json::json!([1002]));
    // An hour later with nothing loaded since: the same objects, for the next tick.
    let out = schedule(&file, &["--at", "2026-11-30T07:10:00Z", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"][0]["reason"]["tick_ms"], 1_796_022_000_000_u64);
}

#[test]
fn bad_frequencies_zones_and_times_are_refused_and_bad_last_runs_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    std::fs::write(
        &file,
        r#"[{"IdObjet":1001,"Fréquence":"every hour"},
            {"IdObjet":1002,"Fréquence":"0 * * * *","Lastrun":"last tuesday"},
            {"IdObjet":1003,"Fréquence":"0 * * * *","Lastrun":"2099-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let out = schedule(&file, &["--at", "2026-11-30T06:10:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for expected in [
        "1001",
        "Fréquence",
        "\"every hour\"",
        "1002",
        "Lastrun",
        "never loaded",
        "1003",
        "in the future",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    // `validate` refuses the same file for the same reason.
    let out = orchestrator(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("object 1001 (index 0), Fréquence: \"every hour\""),
        "{err}"
    );
    std::fs::write(&file, r#"[{"IdObjet":1001,"Fréquence":"@daily"}]"#).unwrap();
    let out = schedule(
        &file,
        &["--at", "2026-11-30T06:10:00Z", "--timezone", "Mars/Olympus"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown time zone"),
        "{}",
        text(&out.stderr)
    );
    for at in ["soon", "1e300"] {
        let out = schedule(&file, &["--at", at]);
        assert_eq!(out.status.code(), Some(2), "{at}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("--at {at:?}")), "{err}");
    }
    // Never loaded: due at its latest tick.
    let out = schedule(&file, &["--at", "2026-11-30T06:10:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("due: @daily ticked at 2026-11-30T00:00:00+00:00"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_readme_example_on_the_sample_holds() {
    let sample = tools("sample-objects.json");
    let out = schedule(
        &sample,
        &["--at", "2026-11-30T09:10:00Z", "--timezone", "Europe/Paris"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "at 2026-11-30T10:10:00+01:00: 25 objects would run, 1 ancestors skipped as fresh",
        "run   1002 Tasks (1-Raw): due: */30 * * * * ticked at 2026-11-30T10:00:00+01:00",
        "run   2001 Customers (2-Standardized): follows parent 1001, which loaded newer data",
        "run   2002 Tasks (2-Standardized): follows parent 1002, which runs",
        "fresh 1001 Customers (1-Raw): loaded since its latest tick",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    assert!(!shown.contains("(3-Application)"), "{shown}");
}

#[test]
fn a_run_writes_the_catalog_the_schedule_reads() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sample = tools("sample-objects.json");
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let started = unix();
    // A real (if trivial) handler: a pretend load would make nothing fresh.
    let out = orchestrator(&[
        "run",
        sample.to_str().unwrap(),
        "--handler",
        "command:sh -c 'cat > /dev/null'",
        "--state-dir",
        state.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let now = unix() + 1;
    let at = |secs: u64| {
        let out = schedule(
            &sample,
            &[
                "--at",
                &secs.to_string(),
                "--state-dir",
                state.to_str().unwrap(),
                "--json",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["run"].as_array().unwrap().len()
    };
    // Everything just loaded: nothing is due (the sample's Lastrun alone says otherwise),
    // unless a half hour struck while the run ran.
    if started / 1800 == now / 1800 {
        assert_eq!(at(now), 0);
    }
    // Two hours on, every raw source has ticked since: they run, their followers with them.
    assert!(at(now + 2 * 3600) >= 12);
    // A store that cannot be read: exit 3.
    let out = schedule(
        &sample,
        &["--at", "1796019000", "--store", "redis://127.0.0.1:9"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // The catalog exported with the loads as Lastrun: every field kept, and it says on its
    // own (no store) what the store said.
    let out = schedule(
        &sample,
        &["--export", "--state-dir", state.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let (exported, original) = (exported.as_array().unwrap(), original.as_array().unwrap());
    assert_eq!(exported.len(), original.len());
    for (e, o) in exported.iter().zip(original) {
        let (e, o) = (e.as_object().unwrap(), o.as_object().unwrap());
        assert_eq!(e.len(), o.len(), "{e:?}");
        for (k, v) in o {
            if k != "Lastrun" {
                assert_eq!(&e[k], v, "{k}");
            }
        }
        if o.get("EtatObjet").is_none_or(|s| s == "actif") {
            let last = e["Lastrun"].as_str().unwrap();
            let secs = chrono::DateTime::parse_from_rfc3339(last)
                .unwrap()
                .timestamp() as u64;
            assert!(secs + 1 >= started && secs <= now, "{last}");
        }
    }
    let file = dir.path().join("exported.json");
    std::fs::write(&file, &out.stdout).unwrap();
    if started / 1800 == now / 1800 {
        let out = schedule(&file, &["--at", &now.to_string(), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["run"].as_array().map(Vec::len), Some(0), "{v}");
    }
    // --export and --at are one or the other.
    assert_eq!(
        schedule(&sample, &["--export", "--at", "0"]).status.code(),
        Some(2)
    );
}

#[test]
fn the_scheduled_modes_refuse_what_they_cannot_keep_running_with() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    std::fs::write(&file, r#"[{"IdObjet":1001,"Fréquence":"@daily"}]"#).unwrap();
    let state = dir.path().join("state");
    let (f, s) = (file.to_str().unwrap(), state.to_str().unwrap());
    let refused = |args: &[&str], env: &[(&str, &str)], expected: &str| {
        let out = std::process::Command::new(bin())
            .args(args)
            .env_remove("SCHEDULE_TIMEZONE")
            .env_remove("SCHEDULE_CATCHUP")
            .env_remove("OBJECTS_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    };
    let run = [
        "run",
        f,
        "--schedule",
        "--state-dir",
        s,
        "--handler",
        "simulate",
    ];
    refused(
        &["run", f, "--schedule", "--state-dir", s],
        &[],
        "no handler for 1-Raw, 2-Standardized, 3-Application",
    );
    refused(
        &["run", f, "--schedule"],
        &[],
        "--schedule needs --state-dir",
    );
    refused(
        &run,
        &[("SCHEDULE_TIMEZONE", "Mars/Olympus")],
        "unknown time zone",
    );
    refused(
        &run,
        &[("SCHEDULE_CATCHUP", "sometimes")],
        "SCHEDULE_CATCHUP \"sometimes\"",
    );
    refused(
        &[&run[..], &["--resume"]].concat(),
        &[],
        "leave out --resume",
    );
    refused(
        &[&run[..], &["--target", "1001"]].concat(),
        &[],
        "leave out --target",
    );
    // An invalid frequency: the object and the field named, nothing scheduled.
    std::fs::write(&file, r#"[{"IdObjet":1001,"Fréquence":"every day"}]"#).unwrap();
    refused(&run, &[], "Fréquence");
    // serve: a schedule needs its catalog.
    refused(
        &[
            "serve",
            "--schedule",
            "--kafka-bootstrap",
            "127.0.0.1:9",
            "--state-dir",
            s,
        ],
        &[],
        "needs OBJECTS_PATH",
    );
}
