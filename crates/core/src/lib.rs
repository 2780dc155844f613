//! The pure core of the orchestrator: object definitions and their validation, the graph, the
//! plan, the seeded generator and the scheduler. No I/O, no clock, no async runtime.

pub mod compact;
mod cycles;
pub mod diagnostics;
pub mod generate;
pub mod graph;
mod graph_build;
mod object_fields;
pub mod objects;
pub mod parents;
pub mod plan;
pub mod run_graph;
pub mod schedule;
pub mod scheduler;
mod selection;

pub use diagnostics::{Problem, Report, Severity};
pub use graph::{Graph, LoadOptions, MissingParents, load_graph};
pub use objects::{Criticality, ObjectDef};
pub use plan::{Plan, Selection};
pub use run_graph::RunGraph;
