//! Pure planning, unit- and property-tested, no I/O.
//!
//! - `membership.rs`: which broker ids to keep, add and remove for `spec.replicas`.
//! - `reassign.rs`: where every partition's replicas should live after brokers join or
//!   drain (replica counts and preferred leaders balanced, minimal moves).
//! - `safety.rs`: whether a scale-down or a broker restart would lose data or availability.
//! - `step.rs`: which step a Cluster pass takes next (scale-down, rebalance, roll, leaders).

pub mod membership;
pub mod reassign;
pub mod safety;
pub mod step;

use std::collections::BTreeMap;

/// Replica lists by `(topic, partition)`; the first replica is the preferred leader.
pub type Assignment = BTreeMap<(String, i32), Vec<i32>>;

pub use membership::{plan_membership, Membership};
pub use reassign::{plan_reassignment, PlanError};
pub use safety::{restart_blockers, scale_down_blockers};
