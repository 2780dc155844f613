//! `orchestrator plan FILE`: levels, critical path and savings, as text, JSON or DOT.

use super::load_or_report;
use crate::{EXIT_INVALID, EXIT_OK};
use orchestrator::cli::{PlanArgs, PlanFormat};
use orchestrator_core::plan::{Plan, Selection};

pub fn plan(args: PlanArgs) -> i32 {
    let (graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return code,
    };
    eprint!("{warnings}");
    let selection =
        match Selection::for_targets(&graph, &args.select.target_ids(), args.select.zone) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INVALID;
            }
        };
    let plan = Plan::new(&graph, &selection);
    match args.format {
        PlanFormat::Text => print!("{}", plan.to_text()),
        PlanFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        ),
        PlanFormat::Dot => print!("{}", plan.to_dot(&graph)),
    }
    EXIT_OK
}
