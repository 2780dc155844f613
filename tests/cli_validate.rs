//! `orchestrator validate`, `plan`, `generate` and `config` as a user runs them: every problem listed with
//! exit 2, the old format's awkward cases read, deep chains handled without a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use common::{bin, fixture, orchestrator, text, tools};

fn validate(file: &str, extra: &[&str]) -> (i32, String, String) {
    let path = fixture(file);
    let mut args = vec!["validate", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = orchestrator(&args);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn the_layered_sample_validates_with_a_summary() {
    let (code, out, _) = validate("layered.json", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("objects: 9"), "{out}");
    assert!(
        out.contains("1-Raw 3, 2-Standardized 3, 3-Application 3"),
        "{out}"
    );
    assert!(out.contains("roots: 3   terminals: 3   depth: 3"), "{out}");
    assert!(out.contains("shared parents: 2"), "{out}");
}

#[test]
fn the_tools_sample_validates() {
    let path = tools("sample-objects.json");
    let out = orchestrator(&["validate", path.to_str().unwrap(), "--strict"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn broken_files_list_every_problem_and_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        (
            "broken/cycle.json",
            &[
                "object 2001 (index 1), IdObjet_Parent: cycle: 2001 -> 3001 -> 2001",
                "cycle: 2002 -> 2003 -> 2002",
            ],
        ),
        (
            "broken/missing_parent.json",
            &["object 2001 (index 1), IdObjet_Parent: parent 1999 does not exist"],
        ),
        (
            "broken/duplicate_id.json",
            &["object 1001 (index 1), IdObjet: duplicate id: also at index 0"],
        ),
        (
            "broken/wrong_types.json",
            &[
                "object at index 0, IdObjet: expected a number or a numeric string, got a boolean",
                "object 1002 (index 1), Zone: expected a string, got a number",
                "object 1003 (index 2), IdObjet_Parent: expected null, a number, a string or a list, got an object",
                "object 1004 (index 3), EtatObjet: expected a string, got a number",
                "object at index 4: expected an object, got a string",
            ],
        ),
        (
            "broken/malformed.json",
            &["malformed JSON at line 3, column 20"],
        ),
        (
            "broken/everything.json",
            &[
                "duplicate id",
                "names itself as a parent",
                "parent 4242 does not exist",
                "cycle: 3001 -> 2003 -> 3001",
                "\"x12\" is not a numeric id",
                "token \"abc\" has no digit",
                "6 error(s), 1 warning(s)",
            ],
        ),
    ];
    for (file, expected) in cases {
        let (code, _, err) = validate(file, &[]);
        assert_eq!(code, 2, "{file}: {err}");
        for e in *expected {
            assert!(err.contains(e), "{file}: missing {e:?} in\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn awkward_old_format_is_read_with_warnings() {
    // 9001 is not in the file: an error unless taken as external.
    let (code, _, err) = validate("awkward.json", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("object 3002 (index 8), IdObjet_Parent: parent 9001 does not exist"),
        "{err}"
    );
    let (code, out, err) = validate("awkward.json", &["--missing-parents=external"]);
    assert_eq!(code, 0, "{err}");
    for w in [
        "object 1002 (index 1), Zone: missing; 1-Raw derived from the numbering",
        "Criticité: unknown value \"urgent\"",
        "token \"garbage1002x\" has other characters around its digits; read as parent 1002",
        "parent 2002 is named more than once; counted once",
        "zone 2-Standardized contradicts the numbering",
    ] {
        assert!(err.contains(w), "missing warning {w:?} in\n{err}");
    }
    assert!(
        out.contains("disabled (not run, treated as loaded): 1003"),
        "{out}"
    );
    assert!(
        out.contains("external parents (treated as loaded): 1"),
        "{out}"
    );
    // --strict makes the warnings errors.
    let (code, _, _) = validate("awkward.json", &["--missing-parents=external", "--strict"]);
    assert_eq!(code, 2);
}

#[test]
fn oversized_input_is_refused() {
    let (code, _, err) = validate("layered.json", &["--max-input-bytes", "100"]);
    assert_eq!(code, 2);
    assert!(err.contains("more than --max-input-bytes (100)"), "{err}");
}

#[test]
fn a_chain_300k_deep_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.json");
    let n = 300_000u64;
    let mut s = String::with_capacity(n as usize * 64);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let parent = if i == 0 {
            "null".to_string()
        } else {
            format!("\"{}\"", 10_000_000 + i - 1)
        };
        s.push_str(&format!(
            "{{\"IdObjet\":{},\"IdObjet_Parent\":{parent},\"Zone\":\"2-Standardized\"}}",
            10_000_000 + i
        ));
    }
    s.push(']');
    std::fs::write(&path, s).unwrap();
    let out = orchestrator(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("depth: 300000"),
        "{}",
        text(&out.stdout)
    );
    let out = orchestrator(&["plan", path.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["critical_path"].as_array().map(|a| a.len()),
        Some(300_000)
    );
    // One terminal needing every object: sharing saves nothing.
    assert_eq!(plan["dedup_saved_executions"], 0);
    assert_eq!(plan["dedup_exact"], true);
}

#[test]
fn plan_formats_and_targets() {
    let path = fixture("layered.json");
    let p = path.to_str().unwrap();
    let out = orchestrator(&["plan", p]);
    let t = text(&out.stdout);
    assert!(t.contains("critical path (3 objects):"), "{t}");
    assert!(
        t.contains("shared parents run once: saves 6 executions"),
        "{t}"
    );
    let out = orchestrator(&["plan", p, "--target", "3005", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["objects"], 3);
    assert_eq!(v["critical_path"], serde_json::json!([1002, 2002, 3005]));
    let out = orchestrator(&["plan", p, "--zone", "standardized", "--format", "dot"]);
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph objects {"), "{dot}");
    assert!(dot.contains("\"1002\" -> \"2002\";"));
    assert!(
        !dot.contains("3000"),
        "application objects are not needed for the standardized zone"
    );
    let out = orchestrator(&["plan", p, "--target", "4242"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("target 4242 is not in the file"));
}

#[test]
fn generate_writes_a_valid_seeded_graph() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    for path in [&a, &b] {
        let out = orchestrator(&[
            "generate",
            "--objects",
            "2000",
            "--seed",
            "9",
            "--max-parents",
            "4",
            "--full",
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let out = orchestrator(&["validate", a.to_str().unwrap(), "--strict"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("objects: 2000"));
}

#[test]
fn past_a_hundred_problems_the_rest_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.json");
    let objects: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "{{\"IdObjet\":{},\"IdObjet_Parent\":{},\"Zone\":\"1-Raw\"}}",
                1000 + i,
                5000 + i
            )
        })
        .collect();
    std::fs::write(&path, format!("[{}]", objects.join(","))).unwrap();
    let out = orchestrator(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("error: object"))
            .count(),
        100,
        "{err}"
    );
    assert!(
        err.contains("... and 50 more problems (150 in all)"),
        "{err}"
    );
    assert!(err.contains("150 error(s), 0 warning(s)"), "{err}");
}

#[test]
fn config_shows_each_setting_from_its_layer_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orchestrator.yaml");
    std::fs::write(
        &file,
        "KAFKA_BOOTSTRAP: kafka:9092\nredis-url: redis://app:hunter2@cache:6379/0\nmax_retries: 7\nlease_seconds: 40\nkafka_properties:\n  - sasl.password=pw\n  - security.protocol=SASL_SSL\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "--config",
            file.to_str().unwrap(),
            "config",
            "--json",
            "--lease-seconds",
            "9",
        ])
        .env("MAX_RETRIES", "5")
        .env_remove("KAFKA_BOOTSTRAP")
        .env_remove("REDIS_URL")
        .env_remove("LEASE_SECONDS")
        .env_remove("KAFKA_PROPERTIES")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = |name: &str| -> (String, String) {
        let s = v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        (
            s["value"].as_str().unwrap().to_string(),
            s["source"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        setting("KAFKA_BOOTSTRAP"),
        ("kafka:9092".into(), "config file".into())
    );
    assert_eq!(setting("MAX_RETRIES"), ("5".into(), "environment".into()));
    assert_eq!(
        setting("LEASE_SECONDS"),
        ("9".into(), "command line".into())
    );
    assert_eq!(setting("REDIS_PREFIX"), ("orch".into(), "default".into()));
    assert_eq!(
        setting("REDIS_URL"),
        ("redis://app:***@cache:6379/0".into(), "config file".into())
    );
    assert_eq!(
        setting("KAFKA_PROPERTIES").0,
        "sasl.password=***,security.protocol=SASL_SSL"
    );
    assert!(!text(&out.stdout).contains("hunter2"));
    assert_eq!(v["valid"], true, "{v}");
    // Defaults serve works out are shown as defaults, never "unset".
    assert_eq!(setting("MAX_IN_FLIGHT"), ("1000".into(), "default".into()));
    assert_eq!(
        setting("START_TIMEOUT_SECONDS"),
        ("300".into(), "default".into())
    );
    assert_eq!(
        setting("HTTP_ADDR"),
        ("127.0.0.1:8080".into(), "default".into())
    );

    // Settings serve would refuse (no KAFKA_BOOTSTRAP): shown, then exit 2 with the reason.
    let out = std::process::Command::new(bin())
        .args(["config"])
        .env_remove("KAFKA_BOOTSTRAP")
        .env_remove("ORCH_CONFIG")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("KAFKA_BOOTSTRAP="));
    assert!(
        text(&out.stderr).contains("KAFKA_BOOTSTRAP (or --kafka-bootstrap) is not set"),
        "{}",
        text(&out.stderr)
    );

    // A setting no option knows is refused, naming it (exit 2).
    std::fs::write(&file, "max_wrokers: 3\n").unwrap();
    let out = orchestrator(&["--config", file.to_str().unwrap(), "config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_wrokers"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_refuses_a_kafka_property_librdkafka_does_not_know() {
    // Before any broker is reached: the settings themselves are wrong (exit code 2).
    let out = std::process::Command::new(bin())
        .args(["serve", "--http", "127.0.0.1:0", "--store", "memory://"])
        .env("KAFKA_BOOTSTRAP", "127.0.0.1:9")
        .env("KAFKA_PROPERTIES", "no.such.property=1")
        .env_remove("OBJECTS_PATH")
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no.such.property"),
        "{}",
        text(&out.stderr)
    );
}
