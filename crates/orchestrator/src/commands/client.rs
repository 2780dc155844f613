//! `orchestrator submit` and `orchestrator runs`: a running `serve`'s runs API from the command
//! line, printed as `status` prints. Exit codes: 0 done (with `--wait`, every object loaded), 1
//! the run did not load everything, 2 the input was refused (invalid objects or query), 3 the
//! server could not be used for it (unreachable, the token refused, no such run, object or
//! attempt, or the run not in a state to do it), 4 the server failed.

use super::object_report::print_object;
use super::status::{print_listed, print_run};
use crate::{EXIT_ERROR, EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_STATE};
use orchestrator::cli::{MissingParentsArg, RunsArgs, RunsCommand, SubmitArgs};
use orchestrator::client::{ClientError, RunsClient};
use orchestrator::input::read_limited;
use orchestrator_engine::run_view::RunReport;
use orchestrator_store::RunOutcome;
use serde_json::Value;
use std::time::Duration;

/// How often `submit --wait` asks how the run stands.
const POLL: Duration = Duration::from_millis(500);

pub fn submit(args: SubmitArgs) -> anyhow::Result<i32> {
    let body = match read_limited(&args.file, u64::MAX) {
        Ok(text) => text.into_bytes(),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let client = RunsClient::new(&args.server.server, args.server.token.clone())?;
    let mut query = vec![("source", args.file.display().to_string())];
    if !args.targets.is_empty() {
        let ids: Vec<String> = args.targets.iter().map(u64::to_string).collect();
        query.push(("targets", ids.join(",")));
    }
    if args.missing_parents == MissingParentsArg::External {
        query.push(("missing_parents", "external".to_string()));
    }
    let submitted = match client.submit(body, &query) {
        Ok(v) => v,
        Err(e) => return Ok(refused(&e)),
    };
    let run = submitted["run_id"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&submitted)?);
        } else {
            outln!("submitted run {run} ({} objects)", submitted["objects"]);
        }
        return Ok(EXIT_OK);
    }
    eprintln!("submitted run {run}; waiting for it to finish");
    wait(&client, &run, args.json)
}

/// Follows `run` to its end and prints it with its failed objects: exit 0 if every object
/// loaded, else 1.
fn wait(client: &RunsClient, run: &str, json: bool) -> anyhow::Result<i32> {
    loop {
        let view = match client.show(run, None) {
            Ok(v) => v,
            Err(e) => return Ok(refused(&e)),
        };
        let status = view["run"]["status"].as_str().unwrap_or_default();
        if status == "finished" || status == "interrupted" {
            let view = match client.show(run, Some("failed")) {
                Ok(v) => v,
                Err(e) => return Ok(refused(&e)),
            };
            let report: RunReport = serde_json::from_value(view["run"].clone())?;
            print_view(&view, &report, "failed", json)?;
            let all = report.outcome == RunOutcome::Succeeded;
            return Ok(if all { EXIT_OK } else { EXIT_FAILED });
        }
        std::thread::sleep(POLL);
    }
}

pub fn runs(args: RunsArgs) -> anyhow::Result<i32> {
    let client = RunsClient::new(&args.server.server, args.server.token.clone())?;
    let answer = match &args.command {
        RunsCommand::List { status, outcome } => {
            let mut filters = Vec::new();
            if let Some(s) = status {
                filters.push(("status", s.as_str()));
            }
            if let Some(o) = outcome {
                filters.push(("outcome", o.as_str()));
            }
            client.list(&filters)
        }
        RunsCommand::Show { run, state } => client.show(run, Some(state)),
        RunsCommand::Cancel { run } => client.cancel(run),
        RunsCommand::Rerun { run, .. } => client.rerun(run),
        RunsCommand::Retry { run, object, .. } => client.retry(run, *object),
        RunsCommand::Logs { run, object, .. } => client.object(run, *object),
    };
    let answer = match answer {
        Ok(v) => v,
        Err(e) => return Ok(refused(&e)),
    };
    match &args.command {
        RunsCommand::Rerun {
            run, wait: true, ..
        }
        | RunsCommand::Retry {
            run, wait: true, ..
        } => {
            eprintln!("run {run}: {} objects run again; waiting", answer["reset"]);
            return wait(&client, run, args.json);
        }
        _ => {}
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(EXIT_OK);
    }
    match &args.command {
        RunsCommand::List { .. } => {
            let runs: Vec<RunReport> = serde_json::from_value(answer["runs"].clone())?;
            for r in &runs {
                print_listed(r, false);
            }
        }
        RunsCommand::Show { state, .. } => {
            let report: RunReport = serde_json::from_value(answer["run"].clone())?;
            print_view(&answer, &report, state, false)?;
        }
        RunsCommand::Cancel { run } => outln!("run {run}: cancelling"),
        RunsCommand::Rerun { run, .. } | RunsCommand::Retry { run, .. } => {
            outln!("run {run}: {} objects run again", answer["reset"]);
        }
        RunsCommand::Logs {
            run,
            object,
            attempt,
        } => print_object(&answer, *attempt, |n| {
            client.output(run, *object, n).map_err(|e| e.to_string())
        }),
    }
    Ok(EXIT_OK)
}

/// Prints a run (its outcome and counts) and the objects of `view` (those in `state`), each
/// failed one with the first line of its reason.
fn print_view(view: &Value, report: &RunReport, state: &str, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(view)?);
        return Ok(());
    }
    print_run(report);
    let objects = view["objects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let matching = view["matching"].as_u64().unwrap_or_default();
    if matching == 0 {
        return Ok(());
    }
    outln!("{state} objects ({matching}):");
    for o in objects {
        let reason = o["reason"].as_str().unwrap_or_default();
        let first_line = reason.lines().next().unwrap_or_default();
        if first_line.is_empty() {
            outln!("  {} (attempt {})", o["id"], o["attempt"]);
        } else {
            outln!("  {} (attempt {}): {first_line}", o["id"], o["attempt"]);
        }
    }
    if (objects.len() as u64) < matching {
        outln!("  … and {} more", matching - objects.len() as u64);
    }
    Ok(())
}

/// Says why the API refused and gives the exit code.
fn refused(e: &ClientError) -> i32 {
    for problem in e.problems() {
        eprintln!("{problem}");
    }
    eprintln!("error: {e}");
    match (e, e.status()) {
        (_, Some(400 | 413 | 415)) => EXIT_INVALID,
        (ClientError::Unreachable { .. }, _) | (_, Some(401 | 403 | 404 | 409)) => EXIT_STATE,
        _ => EXIT_ERROR,
    }
}
