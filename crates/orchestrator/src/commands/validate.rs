//! `orchestrator validate FILE`: every problem at once, or a summary of the graph.

use super::load_or_report;
use crate::{EXIT_INVALID, EXIT_OK};
use orchestrator::cli::ValidateArgs;
use orchestrator_core::plan::{Plan, Selection};

pub fn validate(args: ValidateArgs) -> i32 {
    let (graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return code,
    };
    // The schedule's fields too: an invalid `Fréquence` is an error, a bad `Lastrun` a warning.
    let utc = orchestrator_core::schedule::parse_zone("UTC").ok();
    if let Some(zone) = utc {
        let now = orchestrator_engine::clock::now_ms();
        let (_, schedule) = orchestrator_core::schedule::Catalog::from_graph(&graph, zone, now);
        if schedule.error_count() > 0 {
            eprint!("{}", schedule.render(None));
            eprintln!(
                "{}: {} error(s) in the schedule's fields; nothing was run",
                args.input.file.display(),
                schedule.error_count()
            );
            return EXIT_INVALID;
        }
        eprint!("{}", schedule.render(None));
    }
    let plan = Plan::new(&graph, &Selection::all(&graph));
    if args.json {
        let v = serde_json::json!({
            "valid": true,
            "objects": graph.len(),
            "plan": plan,
            "warnings": warnings.lines().collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return EXIT_OK;
    }
    eprint!("{warnings}");
    outln!("{}: valid", args.input.file.display());
    outln!("objects: {} ({} edges)", graph.len(), graph.edge_count());
    outln!(
        "per zone (run): 1-Raw {}, 2-Standardized {}, 3-Application {}",
        plan.per_zone.raw,
        plan.per_zone.standardized,
        plan.per_zone.application
    );
    outln!(
        "roots: {}   terminals: {}   depth: {}",
        plan.roots,
        plan.terminals,
        plan.depth
    );
    outln!(
        "widest level: {} ({} objects)   shared parents: {}",
        plan.widest_level,
        plan.widest_level_size,
        plan.shared_parents
    );
    if !plan.disabled.is_empty() {
        let ids: Vec<String> = plan.disabled.iter().map(|i| i.to_string()).collect();
        outln!("disabled (not run, treated as loaded): {}", ids.join(", "));
    }
    if !graph.external_parents.is_empty() {
        outln!(
            "external parents (treated as loaded): {}",
            graph.external_parents.len()
        );
    }
    let warning_count = warnings.lines().count();
    if warning_count > 0 {
        outln!("warnings: {warning_count} (see stderr)");
    }
    EXIT_OK
}
