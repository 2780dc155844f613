//! `orchestrator status --state-dir DIR` (or `--store URL`): the runs a store keeps, and one
//! run's objects.

use super::object_report::print_object;
use crate::{EXIT_OK, EXIT_STATE};
use anyhow::Context;
use orchestrator::cli::StatusArgs;
use orchestrator_core::scheduler::{InFlightOnRestore, SchedulerConfig};
use orchestrator_engine::object_view::ObjectDetail;
use orchestrator_engine::open::open_stored;
use orchestrator_engine::run_view::RunReport;
use orchestrator_protocol::ObjectId;
use orchestrator_store::{RunHeader, StateStore, StoreSettings, state_dir_url};

pub fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let url = match (&args.store, &args.state_dir) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) if dir.join("state.redb").exists() => state_dir_url(dir),
        (None, Some(dir)) => {
            eprintln!("error: {} holds no state (no state.redb)", dir.display());
            return Ok(EXIT_STATE);
        }
        (None, None) => {
            eprintln!("error: give --state-dir DIR or --store URL");
            return Ok(EXIT_STATE);
        }
    };
    let store_settings = StoreSettings {
        prefix: args.redis_prefix.clone(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        match super::open_or_report(&url, &store_settings).await {
            Ok(store) => show(&*store, args).await,
            Err(code) => Ok(code),
        }
    })
}

async fn show(store: &dyn StateStore, args: StatusArgs) -> anyhow::Result<i32> {
    let mut runs = store.runs().await?;
    // A run stored as running with no writer alive was interrupted: its process died.
    let writer_alive = store.writer().await?.is_some();
    for r in &mut runs {
        r.status = r.status.seen_by_reader(writer_alive);
    }
    let chosen = match &args.run {
        Some(id) => runs.iter().find(|r| r.run_id.as_str() == id),
        None => runs.last(),
    };
    let Some(meta) = chosen else {
        eprintln!(
            "error: no such run in {}",
            orchestrator_store::redact_url(args.store.as_deref().unwrap_or("the state directory"))
        );
        return Ok(EXIT_STATE);
    };
    if let Some(object) = args.object {
        return show_object(store, meta.clone(), ObjectId(object), args.json).await;
    }
    let objects = store.objects(&meta.run_id).await?;
    let dead = store.dead_letters(&meta.run_id).await?;
    if args.json {
        let v = serde_json::json!({
            "runs": runs.iter().map(|r| serde_json::json!({"run_id": r.run_id, "status": r.status, "outcome": r.outcome(), "created_ms": r.created_ms})).collect::<Vec<_>>(),
            "run": RunReport::from(meta.clone()),
            "objects": objects.iter().map(|(id, r)| serde_json::json!({"id": id, "state": r.state, "attempt": r.attempt, "failures": r.failures, "retries": r.retries})).collect::<Vec<_>>(),
            "dead_letters": dead,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    for r in &runs {
        print_listed(&RunReport::from(r.clone()), r.run_id == meta.run_id);
    }
    print_run(&RunReport::from(meta.clone()));
    for d in dead {
        outln!(
            "dead letter: object {} (attempt {}): {}",
            d.id,
            d.attempt,
            d.reason
        );
    }
    Ok(EXIT_OK)
}

/// One object of a stored run and its attempts, as `runs logs` prints them (`--json`: the API's
/// answer, each attempt with its output).
async fn show_object(
    store: &dyn StateStore,
    header: RunHeader,
    object: ObjectId,
    json: bool,
) -> anyhow::Result<i32> {
    let run_id = header.run_id.clone();
    let run = open_stored(
        store,
        header,
        &SchedulerConfig::default(),
        InFlightOnRestore::Rearm,
    )
    .await?;
    let Some(detail) = ObjectDetail::of(&run, object) else {
        eprintln!("error: run {run_id} has no object {object}");
        return Ok(EXIT_STATE);
    };
    let attempts = store.attempts(&run_id, object).await?;
    let detail = detail.with_attempts(&attempts);
    let mut value = serde_json::to_value(&detail)?;
    if json {
        for (v, a) in value["attempts"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&attempts)
        {
            v["output"] = serde_json::Value::String(a.output().to_string());
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(EXIT_OK);
    }
    print_object(&value, None, |n| {
        attempts
            .iter()
            .find(|a| a.attempt == n)
            .map(|a| a.output().to_string())
            .ok_or_else(|| format!("no attempt {n}"))
    });
    Ok(EXIT_OK)
}

/// One line of a listing of runs (`*` marks the one shown); `runs list` prints the same.
pub fn print_listed(r: &RunReport, chosen: bool) {
    let marker = if chosen { "*" } else { " " };
    let h = &r.header;
    outln!(
        "{marker} {}  {}  graph {}  {} objects  {}",
        h.run_id,
        r.outcome.as_str(),
        h.graph_version,
        h.objects,
        h.source
    );
}

/// A run's outcome and counts; `runs show` prints the same.
pub fn print_run(r: &RunReport) {
    let s = &r.summary;
    outln!(
        "run {} ({}): loaded {}, failed {}, upstream_failed {}, cancelled {}, pending {}, retries {}",
        r.header.run_id,
        r.outcome.as_str(),
        s.loaded,
        s.failed,
        s.upstream_failed,
        s.cancelled,
        s.pending,
        s.retries
    );
}
