//! The controller's duties, run by whichever node is the metadata quorum's leader (a combined
//! broker+controller node, or a controller-only node):
//!
//! - `liveness.rs` — fencing brokers whose heartbeats stop, unfencing them when they catch up,
//!   preferred leader elections, and a broker's own controlled shutdown;
//! - `reassignment.rs` — completing partition reassignments once the new replicas are in sync;
//! - `node.rs` — [`Controller`], a controller-only node (`process.roles=controller`).

pub mod liveness;
mod node;
pub mod reassignment;

pub use node::Controller;
