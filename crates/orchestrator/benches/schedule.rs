//! Evaluating one schedule tick over a large graph: 1,000,000 objects (by default; the first
//! argument changes it) with mixed frequencies, a tick where most are due and one where nothing
//! is, with the memory the evaluation takes beyond the loaded graph.
//!
//! `cargo bench -p orchestrator --bench schedule [-- OBJECTS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_core::generate::{GenerateOptions, generate};
use orchestrator_core::graph::{LoadOptions, load_graph};
use orchestrator_core::schedule::{Catalog, evaluate, parse_frequency, parse_zone};
use std::time::Instant;

/// The process's resident memory now and at its peak, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let objects: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut text = Vec::new();
    generate(
        GenerateOptions {
            objects,
            seed: 1,
            max_parents: 3,
            full: false,
        },
        &mut text,
    )
    .unwrap();
    let graph = load_graph(String::from_utf8(text).unwrap(), LoadOptions::default())
        .graph
        .unwrap();
    let zone = parse_zone("Europe/Paris").unwrap();
    // 2026-11-30 06:10 UTC.
    let now: u64 = 1_796_019_000_000;
    let (mut catalog, _) = Catalog::from_graph(&graph, zone, now);
    // Mixed frequencies: raw every 15 minutes or hourly, standardized daily or following its
    // parents, application at 06:00 or on weekdays at 09:00.
    let texts = [
        "*/15 * * * *",
        "0 * * * *",
        "@daily",
        "0 6 * * *",
        "0 9 * * 1-5",
    ];
    catalog.frequencies = texts.iter().map(|t| parse_frequency(t).unwrap()).collect();
    for (i, o) in graph.objects.iter().enumerate() {
        catalog.frequency[i] = match (o.zone.index(), i % 2) {
            (0, k) => Some(k as u32),
            (1, 0) => Some(2),
            (1, _) => None,
            (_, k) => Some(3 + k as u32),
        };
    }
    let half_hour_ago = now - 30 * 60_000;
    catalog.loaded = vec![Some(half_hour_ago); graph.len()];
    // Reset the peak to now (Linux: `5` in clear_refs), so that the load's own peak does not
    // hide the evaluation's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = memory();
    let mut best = f64::MAX;
    let mut plan = Default::default();
    for _ in 0..5 {
        let start = Instant::now();
        plan = evaluate(&graph, &catalog, now, zone);
        best = best.min(start.elapsed().as_secs_f64());
    }
    let (_, peak) = memory();
    println!(
        "schedule: {objects} objects, a tick where {} run ({} fresh ancestors): {:.1} ms (best of 5); {:.0} MiB beyond the loaded graph at the peak",
        plan.run.len(),
        plan.fresh.len(),
        best * 1000.0,
        (peak - before).max(0.0)
    );
    // Nothing due: everything loaded now.
    catalog.loaded = vec![Some(now); graph.len()];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let plan = evaluate(&graph, &catalog, now, zone);
        assert!(plan.is_empty());
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "schedule: {objects} objects, a tick where nothing is due: {:.2} ms (best of 5), {:.3} ms per 10,000 objects",
        best * 1000.0,
        best * 1000.0 * 10_000.0 / objects as f64
    );
}
