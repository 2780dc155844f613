//! `orchestrator validate FILE`: every problem at once, or a summary of the graph.

use super::load_or_report;
use crate::EXIT_OK;
use orchestrator::cli::ValidateArgs;
use orchestrator_core::plan::{Plan, Selection};

pub fn validate(args: ValidateArgs) -> i32 {
    let (graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return code,
    };
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
