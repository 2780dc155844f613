//! What a `serve` process is doing now: starting, standing by for the writer lease, or writing.
//! Shared by the readiness probe and the runs API, which refuse work until it writes.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connecting to the broker and the store.
    Starting = 0,
    /// Another orchestrator holds the writer lease.
    Standby = 1,
    /// This orchestrator is the writer.
    Writer = 2,
}

/// The role, readable from any task.
#[derive(Debug, Default)]
pub struct SharedRole(AtomicU8);

impl SharedRole {
    pub fn get(&self) -> Role {
        match self.0.load(Ordering::Relaxed) {
            1 => Role::Standby,
            2 => Role::Writer,
            _ => Role::Starting,
        }
    }

    pub fn set(&self, role: Role) {
        self.0.store(role as u8, Ordering::Relaxed);
    }

    /// Why this process takes no work now (`None` when it is the writer).
    pub fn not_ready(&self) -> Option<&'static str> {
        match self.get() {
            Role::Starting => Some("starting: the broker or the state store is not reached yet"),
            Role::Standby => Some("standby: another orchestrator is the writer"),
            Role::Writer => None,
        }
    }
}
