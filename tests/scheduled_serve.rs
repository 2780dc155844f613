//! `orchestrator serve --schedule` on the real broker and Redis, with real workers, on real
//! minute ticks: the schedule API (objects, trigger, pauses, all stored), its metrics, and the
//! writer killed with -9 as a tick's run starts: the standby takes over and neither starts that
//! tick again nor loses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, http, http_status};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Raw 1001 and application 3001 every minute; 2001 follows 1001; 1002 is never due (a
/// yearly tick) and 3002 inactive.
const CATALOG: &str = r#"[
 {"IdObjet":1001,"Zone":"1-Raw","Fréquence":"* * * * *"},
 {"IdObjet":1002,"Zone":"1-Raw","Fréquence":"0 0 1 1 *","Lastrun":"2026-01-01T00:00:00Z"},
 {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":"1001,1002"},
 {"IdObjet":3001,"Zone":"3-Application","IdObjet_Parent":2001,"Fréquence":"* * * * *"},
 {"IdObjet":3002,"Zone":"3-Application","IdObjet_Parent":2001,"EtatObjet":"inactif"}]"#;

fn run_ids(cluster: &Cluster) -> Vec<(String, String)> {
    cluster.status()["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    (
                        r["run_id"].as_str().unwrap_or_default().to_string(),
                        r["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn post(url: &str) -> (u16, Value) {
    let r = http().post(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn scheduled_ticks_survive_a_kill_at_a_tick_and_a_standby_takeover() {
    let cluster = Cluster::new("schedule");
    let file = cluster.dir().join("catalog.json");
    std::fs::write(&file, CATALOG).unwrap();
    let flags = ["--schedule", "--writer-lease-seconds", "2"];
    let mut first = cluster.serve(Some(&file), &flags, "serve-1.log");
    let base = cluster.http_base("serve-1.log");
    cluster.wait_ready(&base);
    let _standby = cluster.serve(Some(&file), &flags, "serve-2.log");
    assert!(cluster.wait_for_line("serve-2.log", "standing by"));
    // A real (if trivial) load: a simulated one would make nothing fresh.
    let _workers = cluster.workers("command:sh -c 'cat > /dev/null; sleep 0.3'");

    // Caught up at start-up: 1001 and 3001 are due, 2001 runs between them, 1002 is fresh.
    let deadline = Instant::now() + Duration::from_secs(60);
    let caught_up = loop {
        let runs = run_ids(&cluster);
        if let Some((id, _)) = runs.iter().find(|(_, s)| s == "finished") {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no run finished: {runs:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(caught_up.starts_with("tick-"), "{caught_up}");
    let objects: Value = http()
        .get(format!("{base}/api/objects"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(objects["total"], 5, "{objects}");
    let by_id = |v: &Value, id: u64| -> Value {
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&objects, 1002)["freshness"], "fresh", "{objects}");
    assert_eq!(by_id(&objects, 3002)["freshness"], "inactive");
    assert!(by_id(&objects, 1001)["next_tick_ms"].is_u64());
    assert!(by_id(&objects, 1001)["loaded_ms"].is_u64(), "{objects}");
    let raw: Value = http()
        .get(format!("{base}/api/objects?zone=raw&limit=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (
            raw["total"].as_u64(),
            raw["objects"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        http_status(&format!("{base}/api/objects?freshness=sleepy")).0,
        400
    );

    // A trigger of an unknown object is 404, of an inactive one 409; 1002's runs now.
    assert_eq!(post(&format!("{base}/api/objects/4242/trigger")).0, 404);
    assert_eq!(post(&format!("{base}/api/objects/3002/trigger")).0, 409);
    let (code, body) = post(&format!("{base}/api/objects/1002/trigger"));
    assert_eq!(code, 202, "{body}");
    let triggered = body["run_id"].as_str().unwrap().to_string();
    assert!(triggered.starts_with("trigger-"), "{triggered}");
    // Pauses are stored and shown: 3001 paused, then resumed.
    assert_eq!(post(&format!("{base}/api/objects/3001/pause")).0, 200);
    let objects: Value = http()
        .get(format!("{base}/api/objects?freshness=paused"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(objects["total"], 1, "{objects}");
    assert_eq!(post(&format!("{base}/api/objects/3001/resume")).0, 200);
    assert_eq!(post(&format!("{base}/api/objects/9/pause")).0, 404);
    // A catalog with a cycle is refused with every problem; the old one stays.
    let put = |body: &str| {
        let r = http()
            .put(format!("{base}/api/objects"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let cyclic = r#"[{"IdObjet":1001,"IdObjet_Parent":2001},{"IdObjet":2001,"IdObjet_Parent":1001},
        {"IdObjet":1005,"Fréquence":"every day"}]"#;
    let (code, body) = put(cyclic);
    assert_eq!(code, 400, "{body}");
    let text = body.to_string();
    assert!(text.contains("cycle"), "{text}");
    let count = |base: &str| -> Value {
        let v: Value = http()
            .get(format!("{base}/api/objects"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["total"].clone()
    };
    assert_eq!(count(&base), 5);
    let bad_frequency = r#"[{"IdObjet":1005,"Fréquence":"every day"}]"#;
    let (code, body) = put(bad_frequency);
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("Fréquence"), "{body}");
    // A valid one (1003 added, yearly, loaded) is scheduled and stored.
    let replaced = CATALOG.replacen(
        "[",
        r#"[{"IdObjet":1003,"Zone":"1-Raw","Fréquence":"0 0 1 1 *","Lastrun":"2026-01-01T00:00:00Z"},"#,
        1,
    );
    let (code, body) = put(&replaced);
    assert_eq!((code, body["objects"].as_u64()), (200, Some(6)), "{body}");
    assert_eq!(count(&base), 6);
    let metrics = http_status(&format!("{base}/metrics")).1;
    for name in [
        "orchestrator_schedule_ticks_total 1",
        "orchestrator_schedule_runs_started_total{cause=\"tick\"} 1",
        "orchestrator_schedule_runs_started_total{cause=\"trigger\"} 1",
        "orchestrator_schedule_stale_objects{zone=\"1-Raw\"}",
        "orchestrator_schedule_freshness_lag_seconds{zone=\"3-Application\"}",
        "orchestrator_schedule_tick_evaluation_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} not in:\n{metrics}");
    }

    // The next minute's tick: the writer is killed as soon as its run is stored.
    let deadline = Instant::now() + Duration::from_secs(75);
    let next = loop {
        let runs = run_ids(&cluster);
        if let Some((id, _)) = runs
            .iter()
            .find(|(id, _)| id.starts_with("tick-") && *id != caught_up)
        {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no second tick: {runs:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    // The standby takes over, continues that run and finishes it; no other run of its tick.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = run_ids(&cluster);
        if runs.iter().any(|(id, s)| *id == next && s == "finished") {
            break;
        }
        assert!(Instant::now() < deadline, "{next} never finished: {runs:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The standby schedules the catalog replaced through the API (OBJECTS_PATH unchanged).
    let standby = cluster.http_base("serve-2.log");
    assert_eq!(count(&standby), 6);
    let standby_log = std::fs::read_to_string(cluster.dir().join("serve-2.log")).unwrap();
    assert!(
        standby_log.contains("this orchestrator is the writer"),
        "{standby_log}"
    );
    assert!(
        !standby_log.contains(&format!("schedule starts a run run={next}")),
        "the standby started {next} again: {standby_log}"
    );
    let runs = run_ids(&cluster);
    let ticks: Vec<&String> = runs
        .iter()
        .map(|(id, _)| id)
        .filter(|id| id.starts_with("tick-"))
        .collect();
    assert!(ticks.len() <= 3, "{runs:?}");
    assert!(
        runs.iter()
            .any(|(id, s)| *id == triggered && s == "finished"),
        "{runs:?}"
    );
    let done = cluster.status_of(&["--run", &next, "--json"]);
    let done: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(done["run"]["summary"]["loaded"], 3, "{done}");
}
