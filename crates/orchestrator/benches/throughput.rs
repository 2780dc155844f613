//! Benchmarks that print their figures (run with `cargo bench -p orchestrator --bench throughput
//! -- MODE`): `load` (read + validate + plan of a generated graph, with peak RSS), `core` (the
//! scheduler alone, completions per second) and `embedded` (the whole embedded run with
//! `simulate:0`, objects per second, with and without a state directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_core::generate::{GenerateOptions, generate};
use orchestrator_core::graph::{LoadOptions, load_graph};
use orchestrator_core::plan::{Plan, Selection};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{Action, Event, Run, RunHeader, SchedulerConfig};
use orchestrator_protocol::RunId;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn generated(objects: usize, max_parents: usize) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("orchestrator-bench-{objects}-{max_parents}.json"));
    if !path.exists() {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        generate(
            GenerateOptions {
                objects,
                seed: 1,
                max_parents,
                full: false,
            },
            &mut f,
        )
        .unwrap();
    }
    path
}

/// Read + validate + plan, in this fresh process so the peak RSS is the load's own.
fn load(objects: usize) {
    let path = generated(objects, 10);
    let size = std::fs::metadata(&path).unwrap().len();
    let start = Instant::now();
    let text = std::fs::read_to_string(&path).unwrap();
    let read = start.elapsed();
    let loaded = load_graph(text, LoadOptions::default());
    let validated = start.elapsed();
    let graph = loaded.graph.expect("valid");
    let plan = Plan::new(&graph, &Selection::all(&graph));
    let total = start.elapsed();
    println!(
        "load: {} objects, {} edges, {:.0} MiB file: read {:.2} s, validated {:.2} s, planned {:.2} s (total {:.2} s), peak RSS {:.0} MiB",
        graph.len(),
        plan.edges,
        size as f64 / 1048576.0,
        read.as_secs_f64(),
        validated.as_secs_f64(),
        (total - validated).as_secs_f64(),
        total.as_secs_f64(),
        peak_rss_mib()
    );
}

/// The scheduler alone: every dispatch answered by Started and Loaded at once.
fn core(objects: usize) {
    let text = std::fs::read_to_string(generated(objects, 3)).unwrap();
    let graph = load_graph(text, LoadOptions::default())
        .graph
        .expect("valid");
    let run_graph = Arc::new(RunGraph::new(&graph, &Selection::all(&graph)));
    drop(graph);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let header = RunHeader::new(RunId::new("bench"), 1);
        let mut run = Run::new(run_graph.clone(), SchedulerConfig::default(), header);
        let mut out = Vec::new();
        let mut queue = Vec::new();
        let start = Instant::now();
        run.start(0, &mut out);
        let mut completions = 0usize;
        while !run.is_finished() {
            queue.extend(out.drain(..).filter_map(|a| match a {
                Action::Dispatch { index, attempt } => Some((run_graph.id(index), attempt)),
                _ => None,
            }));
            for (id, attempt) in queue.drain(..) {
                run.handle(Event::Started { id, attempt }, 1, &mut out);
                run.handle(
                    Event::Loaded {
                        id,
                        attempt: Some(attempt),
                        report: Default::default(),
                    },
                    2,
                    &mut out,
                );
                completions += 1;
            }
            let _ = run.take_delta();
        }
        assert_eq!(completions, run_graph.len());
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "core: {} objects completed in {:.3} s (best of 3): {:.0} completions/s",
        run_graph.len(),
        best,
        run_graph.len() as f64 / best
    );
}

/// The whole embedded run through the real binary.
fn embedded(objects: usize, state: bool) {
    let path = generated(objects, 3);
    let bin = std::env::var("ORCHESTRATOR_BIN").unwrap_or_else(|_| {
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("orchestrator")
            .display()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run".to_string(),
        path.display().to_string(),
        "--handler".into(),
        "simulate:0".into(),
        "--progress".into(),
        "none".into(),
        "--json".into(),
        "--seed".into(),
        "1".into(),
    ];
    if state {
        args.push("--state-dir".into());
        args.push(dir.path().display().to_string());
    }
    let out = Command::new(&bin)
        .args(&args)
        .output()
        .expect("run the orchestrator binary (cargo build --release first)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secs = v["seconds"].as_f64().unwrap();
    println!(
        "embedded{}: {} objects loaded in {:.3} s: {:.0} objects/s",
        if state { " --state-dir" } else { "" },
        v["summary"]["loaded"],
        secs,
        objects as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map(String::as_str).unwrap_or("all");
    let n = |default: usize| args.get(1).and_then(|a| a.parse().ok()).unwrap_or(default);
    match mode {
        "load" => load(n(1_000_000)),
        "core" => core(n(1_000_000)),
        "embedded" => {
            embedded(n(100_000), false);
            embedded(n(100_000), true);
        }
        _ => {
            // Each figure in a process of its own, so that peak RSS is not shared.
            let exe = std::env::current_exe().unwrap();
            for m in ["load", "core", "embedded"] {
                let status = Command::new(&exe).arg(m).status().unwrap();
                assert!(status.success());
            }
        }
    }
}
