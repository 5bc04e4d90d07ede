//! Consumer groups: the classic rebalance protocol and committed offsets.

pub mod assignor;
pub mod codec;
pub mod consumer_group;
pub mod consumer_protocol;
pub mod coordinator;
#[allow(clippy::module_inception)]
pub mod group;

pub use coordinator::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
pub use group::{GroupState, JoinOutcome, JoinRequest, SyncOutcome};
