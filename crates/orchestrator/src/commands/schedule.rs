//! `orchestrator schedule FILE --at TIME`: a dry run of the schedule. Prints which objects would
//! run at TIME and why, and which ancestors are skipped as fresh, from each object's `Lastrun`
//! and, given a store, its catalog of loads. With `--export`, the file with each `Lastrun`
//! brought up to the store's latest load instead. Exit 0, 2 for an invalid file, frequency, time or
//! time zone, 3 for a store that cannot be read.

use super::load_or_report;
use crate::{EXIT_ERROR, EXIT_INVALID, EXIT_OK, EXIT_STATE};
use orchestrator::cli::ScheduleArgs;
use orchestrator_core::graph::Graph;
use orchestrator_core::schedule::{
    Catalog, Why, evaluate, export_with_last_runs, parse_last_run, parse_zone,
};
use orchestrator_store::{StoreSettings, state_dir_url};

/// Each object's latest load from the store's catalog, where newer than its `Lastrun`.
fn loads_from_store(args: &ScheduleArgs, graph: &Graph, catalog: &mut Catalog) -> Result<(), i32> {
    let url = match (&args.store, &args.state_dir) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => state_dir_url(dir),
        (None, None) => return Ok(()),
    };
    let settings = StoreSettings {
        prefix: args.redis_prefix.clone(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: starting the runtime: {e}");
            EXIT_ERROR
        })?;
    let loads = runtime.block_on(async {
        let store = super::open_or_report(&url, &settings).await?;
        store.latest_loads().await.map_err(|e| {
            eprintln!("error: {e}");
            EXIT_STATE
        })
    })?;
    for (id, load) in loads {
        if let Some(&i) = graph.index.get(&id) {
            let known = &mut catalog.loaded[i as usize];
            if known.is_none_or(|at| at < load.at_ms) {
                *known = Some(load.at_ms);
            }
        }
    }
    Ok(())
}

pub fn schedule(args: ScheduleArgs) -> i32 {
    let zone = match parse_zone(&args.timezone) {
        Ok(z) => z,
        Err(why) => {
            eprintln!("error: --timezone: {why}");
            return EXIT_INVALID;
        }
    };
    // The moment reads as a `Lastrun` does (with no clamp); an export is of now.
    let at = args.at.as_deref().unwrap_or_default();
    let now = match parse_last_run(at, zone, u64::MAX) {
        _ if args.export => orchestrator_engine::clock::now_ms(),
        Ok((Some(ms), _)) => ms,
        Ok((None, _)) | Err(_) => {
            eprintln!(
                "error: --at {at:?}: expected an ISO 8601 time (2026-11-30T06:10:00Z) or Unix seconds"
            );
            return EXIT_INVALID;
        }
    };
    let (graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return code,
    };
    eprint!("{warnings}");
    let (mut catalog, report) = Catalog::from_graph(&graph, zone, now);
    eprint!("{}", report.render(None));
    if report.error_count() > 0 {
        eprintln!(
            "{}: {} error(s) in the schedule; nothing would run",
            args.input.file.display(),
            report.error_count()
        );
        return EXIT_INVALID;
    }
    let from_file = catalog.loaded.clone();
    if let Err(code) = loads_from_store(&args, &graph, &mut catalog) {
        return code;
    }
    if args.export {
        // Only the loads the store knows of and the file does not.
        let newer: Vec<Option<u64>> = catalog
            .loaded
            .iter()
            .zip(&from_file)
            .map(|(now, before)| now.filter(|_| now != before))
            .collect();
        return match export_with_last_runs(&graph, &newer) {
            Ok(text) => {
                out!("{text}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ERROR
            }
        };
    }
    let plan = evaluate(&graph, &catalog, now, zone);
    print_plan(&graph, &plan, (now, zone), &args);
    EXIT_OK
}

/// What a tick at `now` would run and why, and what it skips as fresh (`--json`: as JSON).
fn print_plan(
    graph: &Graph,
    plan: &orchestrator_core::schedule::TickPlan,
    (now, zone): (u64, orchestrator_core::schedule::ScheduleZone),
    args: &ScheduleArgs,
) {
    let id = |i: u32| graph.objects[i as usize].id;
    if args.json {
        let run: Vec<_> = plan
            .run
            .iter()
            .map(|&(i, why)| serde_json::json!({ "id": id(i), "reason": why }))
            .collect();
        let fresh: Vec<_> = plan.fresh.iter().map(|&i| id(i)).collect();
        let v = serde_json::json!({ "at_ms": now, "timezone": args.timezone, "run": run, "fresh": fresh });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    let time = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|t| t.with_timezone(&zone).to_rfc3339())
            .unwrap_or_else(|| ms.to_string())
    };
    outln!(
        "at {}: {} objects would run, {} ancestors skipped as fresh",
        time(now),
        plan.run.len(),
        plan.fresh.len()
    );
    for &(i, why) in &plan.run {
        let o = &graph.objects[i as usize];
        let reason = match why {
            Why::Due { tick_ms } => format!(
                "due: {} ticked at {}",
                o.frequency.as_deref().unwrap_or_default(),
                time(tick_ms)
            ),
            Why::FollowsParent { parent } => {
                format!("follows parent {parent}, which loaded newer data")
            }
            Why::StaleAncestor { of } => format!("stale ancestor of {of}"),
            Why::FollowsRun { parent } => format!("follows parent {parent}, which runs"),
            Why::Triggered => "triggered".to_string(),
        };
        outln!("run   {} {} ({}): {reason}", o.id, o.name, o.zone);
    }
    for &i in &plan.fresh {
        let o = &graph.objects[i as usize];
        outln!(
            "fresh {} {} ({}): loaded since its latest tick",
            o.id,
            o.name,
            o.zone
        );
    }
}
