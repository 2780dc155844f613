//! The HTTP surface of the orchestrator: the runs API of `serve` (with its tokens and bounded
//! bodies), the health and metrics of an embedded run, and the role a server plays.

pub mod api;
pub mod api_body;
mod api_live;
mod api_objects;
mod api_query;
mod api_schedule;
pub mod auth;
pub mod console;
pub mod embedded;
pub mod openapi;
pub mod role;
