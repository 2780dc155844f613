//! `orchestrator run FILE --schedule --state-dir DIR` as a real process on real minute ticks:
//! a tick's run starts, the process is killed with -9 just as the next tick's run starts, and
//! the restarted process continues that run: the tick is neither started again nor lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Raw 1001 and application 3001 every minute; 2001 follows 1001.
const CATALOG: &str = r#"[
 {"IdObjet":1001,"Zone":"1-Raw","Fréquence":"* * * * *"},
 {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":1001},
 {"IdObjet":3001,"Zone":"3-Application","IdObjet_Parent":2001,"Fréquence":"* * * * *"}]"#;

/// (run, object, attempt, start|end) lines of the handler's log.
fn lines(log: &Path) -> Vec<(String, u64, u32, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            Some((
                p.first()?.to_string(),
                p.get(1)?.parse().ok()?,
                p.get(2)?.parse().ok()?,
                p.get(3)?.to_string(),
            ))
        })
        .collect()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ended(log: &Path, run: &str) -> HashSet<u64> {
    lines(log)
        .into_iter()
        .filter(|l| l.0 == run && l.3 == "end")
        .map(|l| l.1)
        .collect()
}

#[test]
fn a_kill_at_a_tick_neither_loses_nor_doubles_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.json");
    std::fs::write(&file, CATALOG).unwrap();
    let log = dir.path().join("handler.log");
    let handler = script(
        dir.path(),
        "log.sh",
        &format!(
            "echo \"$ORCH_RUN_ID $ORCH_OBJECT_ID $ORCH_ATTEMPT start\" >> '{log}'\ncat > /dev/null\nsleep 0.5\necho \"$ORCH_RUN_ID $ORCH_OBJECT_ID $ORCH_ATTEMPT end\" >> '{log}'",
            log = log.display()
        ),
    );
    let state = dir.path().join("state");
    let handler = format!("command:{}", handler.display());
    let args = [
        "run",
        file.to_str().unwrap(),
        "--schedule",
        "--state-dir",
        state.to_str().unwrap(),
        "--handler",
        &handler,
    ];
    let start = |name: &str| -> Child {
        let err = std::fs::File::create(dir.path().join(name)).unwrap();
        Command::new(bin())
            .args(args)
            .env_remove("LOG_LEVEL")
            .env_remove("SCHEDULE_CATCHUP")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    };
    let mut first = start("first.log");
    // Never loaded: the current minute's tick runs at once (catch-up), all three objects. (Its
    // ends are waited for by run: near a minute's end the next tick's run starts meanwhile, and
    // its lines come between.)
    wait_until("the catch-up run to start", Duration::from_secs(30), || {
        !lines(&log).is_empty()
    });
    let caught_up = lines(&log)[0].0.clone();
    assert!(caught_up.starts_with("tick-"), "{caught_up}");
    wait_until("the catch-up run", Duration::from_secs(30), || {
        ended(&log, &caught_up).len() == 3
    });
    // The next minute's run: killed as soon as its first object starts (its batch is stored
    // before the Ready event goes out).
    wait_until("the next tick", Duration::from_secs(75), || {
        lines(&log).iter().any(|l| l.0 != caught_up)
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let next = lines(&log)
        .into_iter()
        .find(|l| l.0 != caught_up)
        .unwrap()
        .0;

    let mut second = start("second.log");
    wait_until(
        "the killed tick's run to end",
        Duration::from_secs(30),
        || ended(&log, &next).len() == 3,
    );
    // Its records stored, then a clean stop (SIGINT), so that the state can be read.
    std::thread::sleep(Duration::from_secs(2));
    interrupt(&second);
    assert!(second.wait().unwrap().success());
    let second_log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(
        second_log.contains(&format!("continuing run {next}")),
        "{second_log}"
    );
    assert!(
        !second_log.contains(&format!("schedule starts a run run={next}")),
        "the killed tick started again: {second_log}"
    );

    let status = status(&state);
    let runs: BTreeMap<String, String> = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(runs.get(&caught_up).map(String::as_str), Some("finished"));
    assert_eq!(runs.get(&next).map(String::as_str), Some("finished"));
    // Nothing that loaded ran again: in the killed run only 1001 (in flight at the kill) may
    // have started twice, and the other two once each; the catch-up run's objects once each.
    let starts = |run: &str, id: u64| {
        lines(&log)
            .iter()
            .filter(|l| l.0 == run && l.1 == id && l.3 == "start")
            .count()
    };
    for id in [1001, 2001, 3001] {
        assert_eq!(starts(&caught_up, id), 1, "{id} in {caught_up}");
    }
    assert!(starts(&next, 1001) <= 2);
    assert_eq!(starts(&next, 2001), 1);
    assert_eq!(starts(&next, 3001), 1);
}

/// SIGINT to a child, by the `kill` program (no unsafe code in the tests).
fn interrupt(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
