//! `orchestrator run FILE`: the embedded run (see `orchestrator::embedded`). This command reads
//! and checks the file and the options, prints the summary and maps the outcome to an exit code.

use super::load_or_report;
use crate::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK};
use anyhow::Context;
use orchestrator::cli::RunArgs;
use orchestrator::embedded::{EmbeddedOutcome, EmbeddedRun, run_embedded};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::RunOptions;
use orchestrator_protocol::{ObjectId, Zone};
use orchestrator_store::{AttemptRecord, StoreSettings};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let (mut graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    eprint!("{warnings}");
    let selection = match super::select_or_report(&graph, &args.select) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // A run kept in a store keeps its objects too (compact, and the run's graph reads them
    // there), so that another process (`serve` on the same Redis) can take it over.
    let objects =
        (args.state_dir.is_some() || args.store.is_some()).then(|| graph.rebase_on_compact());
    let run_graph = Arc::new(RunGraph::from_graph(graph, &selection));
    let (workers, config) = match super::run_setup::workers_and_config(&args) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    // A new run without handlers is refused before anything is opened: nothing is simulated
    // unless asked for (a resumed run has the handlers it was started with).
    if !args.resume && workers.handlers.is_none() {
        eprintln!("error: {}", worker_runtime::SpecError::no_handler());
        return Ok(EXIT_INVALID);
    }
    if workers.handlers.as_ref().is_some_and(|h| h.simulates()) {
        eprintln!(
            "note: simulate only pretends: what it \"loads\" is no data, is marked simulated, and makes no object fresh"
        );
    }
    let store_url = super::run_setup::store_url(&args).unwrap_or_else(|| "memory://".to_string());
    if args.resume && store_url.starts_with("memory") {
        eprintln!("error: --resume needs a state directory (--state-dir DIR) to resume from");
        return Ok(EXIT_INVALID);
    }
    let embedded = EmbeddedRun {
        source: args.input.file.display().to_string(),
        graph: run_graph,
        objects,
        options: RunOptions {
            targets: args.select.target_ids(),
            zone: args.select.zone,
            missing_parents: args.input.missing_parents.into(),
            handlers: None,
        },
        seed: args.seed,
        workers,
        config,
        store_url,
        store_settings: StoreSettings::new(&args.redis_prefix, args.retry_ttl_seconds),
        store_name: args.state_dir.as_ref().map(|d| d.display().to_string()),
        resume: args.resume,
        rerun_failed: args.rerun_failed,
        http: args.http.clone(),
        progress: args.progress,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let interrupt = CancellationToken::new();
    runtime.spawn(watch_signals(interrupt.clone()));
    let ended = runtime.block_on(run_embedded(embedded, interrupt.clone()));
    let outcome = match ended {
        Ok(o) => o,
        Err(e) => return Ok(super::report_app_error(&e)),
    };
    if outcome.already_finished {
        eprintln!(
            "run {} already finished; add --rerun-failed to run its failures again",
            outcome.header.run_id
        );
    }
    print_summary(&outcome, args.json)?;
    Ok(if interrupt.is_cancelled() {
        EXIT_INTERRUPTED
    } else if outcome.summary.all_loaded() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

async fn watch_signals(interrupt: CancellationToken) {
    let mut count = 0;
    loop {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        count += 1;
        if count == 1 {
            eprintln!(
                "interrupted: finishing the attempts in flight (interrupt again to quit now)"
            );
            interrupt.cancel();
        } else {
            eprintln!(
                "interrupted twice: quitting now; resume with --resume if a state directory is set"
            );
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
}

fn print_summary(outcome: &EmbeddedOutcome, json: bool) -> anyhow::Result<()> {
    let (meta, s, dead) = (&outcome.header, &outcome.summary, &outcome.dead_letters);
    let elapsed = outcome.elapsed;
    if json {
        let failures: Vec<_> = outcome
            .failures
            .iter()
            .map(|(id, attempts)| serde_json::json!({ "id": id, "attempts": attempts }))
            .collect();
        let v = serde_json::json!({ "run_id": meta.run_id, "graph_version": meta.graph_version, "outcome": meta.outcome(), "summary": s, "dead_letters": dead, "failures": failures, "seconds": elapsed.as_secs_f64() });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "run {} (graph {}) in {:.2} s: {}",
        meta.run_id,
        meta.graph_version,
        elapsed.as_secs_f64(),
        meta.outcome().as_str()
    );
    outln!(
        "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8} {:>10}",
        "zone",
        "objects",
        "loaded",
        "failed",
        "upstream_failed",
        "cancelled",
        "retries",
        "duration"
    );
    for z in Zone::ALL {
        let zs = &s.zones[z.index()];
        outln!(
            "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8} {:>9.2}s",
            z.as_str(),
            zs.objects,
            zs.loaded,
            zs.failed,
            zs.upstream_failed,
            zs.cancelled,
            zs.retries,
            zs.duration_ms as f64 / 1000.0
        );
    }
    outln!(
        "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8}",
        "total",
        s.objects,
        s.loaded,
        s.failed,
        s.upstream_failed,
        s.cancelled,
        s.retries
    );
    for d in dead.iter().take(20) {
        outln!(
            "dead letter: object {} (attempt {}): {}",
            d.id,
            d.attempt,
            d.reason
        );
    }
    if dead.len() > 20 {
        outln!(
            "... and {} more dead letters (orchestrator status --json)",
            dead.len() - 20
        );
    }
    for (id, attempts) in &outcome.failures {
        print_failure(*id, attempts);
    }
    Ok(())
}

/// Lines of each attempt's output shown at the end of a run.
const SHOWN_OUTPUT_LINES: usize = 10;

/// The attempts of an object that failed for good: each one's worker, outcome and reason,
/// and the end of its output (`status --state-dir DIR --object ID` shows all of it).
fn print_failure(id: ObjectId, attempts: &[AttemptRecord]) {
    outln!("object {id}:");
    for a in attempts {
        outln!(
            "  attempt {} {} on {} after {} ms: {}",
            a.attempt,
            a.outcome.as_str(),
            if a.worker().is_empty() {
                "-"
            } else {
                a.worker()
            },
            a.duration_ms,
            a.reason()
        );
        let lines: Vec<&str> = a.output().lines().collect();
        let from = lines.len().saturating_sub(SHOWN_OUTPUT_LINES);
        if from > 0 {
            outln!("    … {from} lines before");
        }
        for line in &lines[from..] {
            outln!("    | {line}");
        }
    }
}
