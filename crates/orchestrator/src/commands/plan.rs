//! `orchestrator plan FILE`: levels, critical path and savings, as text, JSON or DOT.

use super::load_or_report;
use crate::EXIT_OK;
use orchestrator::cli::{PlanArgs, PlanFormat};
use orchestrator_core::plan::Plan;

pub fn plan(args: PlanArgs) -> i32 {
    let (graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return code,
    };
    eprint!("{warnings}");
    let selection = match super::select_or_report(&graph, &args.select) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let plan = Plan::new(&graph, &selection);
    match args.format {
        PlanFormat::Text => out!("{}", plan.to_text()),
        PlanFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        ),
        PlanFormat::Dot => out!("{}", plan.to_dot(&graph)),
    }
    EXIT_OK
}
