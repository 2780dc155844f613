//! Recovery after `kill -9` of `serve`, printing its figures: a 10,000-object run (`simulate:0`)
//! on a real Tansu broker (SQLite) and redis-server, undisturbed and with `serve` killed and
//! restarted at once five times, with the production timeouts (lease 30 s, start timeout 300 s).
//! The time a kill adds is (disturbed - undisturbed) / kills, each run timed from its record
//! (created to finished). Build the release binaries first, then run:
//! `cargo build --release --workspace --bins && cargo bench -p orchestrator --bench recovery`
//! (`BENCH_ROUNDS=N` pairs of runs, default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/common/cluster.rs"]
mod cluster;
#[path = "../../../tests/common/mod.rs"]
mod common;
#[path = "../../../tests/common/services.rs"]
mod services;

use cluster::{Cluster, Proc};
use common::*;
use std::time::Duration;

const OBJECTS: usize = 10_000;
const KILLS: usize = 5;
const TIMEOUTS: [&str; 4] = ["--lease-seconds", "30", "--start-timeout-seconds", "300"];

/// Seconds from the run's creation to its end, as its record says; and its retries.
fn run(kills: usize) -> (f64, u64) {
    let cluster = Cluster::new("recovery");
    let file = generated(cluster.dir(), OBJECTS, 11);
    let _workers: Vec<Proc> = ["ingestion", "standardization", "application"]
        .iter()
        .map(|z| cluster.worker(z, "simulate:0", &format!("{z}.log")))
        .collect();
    let mut serve = cluster.serve(Some(&file), &TIMEOUTS, "serve-0.log");
    for k in 1..=kills {
        cluster.wait_loaded(k * OBJECTS / (kills + 2));
        serve.0.kill().unwrap();
        serve.0.wait().unwrap();
        serve = cluster.serve(Some(&file), &TIMEOUTS, &format!("serve-{k}.log"));
    }
    let status = cluster.wait_finished(Duration::from_secs(900));
    let run = &status["run"];
    assert_eq!(run["summary"]["loaded"], OBJECTS, "{run}");
    let ms = run["updated_ms"].as_u64().unwrap() - run["created_ms"].as_u64().unwrap();
    (
        ms as f64 / 1000.0,
        run["summary"]["retries"].as_u64().unwrap_or(0),
    )
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    println!("== recovery after kill -9 of serve: {OBJECTS} objects, {KILLS} kills, simulate:0");
    for round in 1..=rounds {
        let (calm, _) = run(0);
        let (killed, retries) = run(KILLS);
        println!(
            "round {round}: undisturbed {calm:.2} s; {KILLS} kills {killed:.2} s; added per kill {:.2} s; retries {retries}",
            (killed - calm) / KILLS as f64
        );
    }
}
