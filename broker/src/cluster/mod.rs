//! Topics, partitions and their configs on this broker.
//!
//! A single node keeps its metadata in `topics.json` (`registry.rs`). In cluster mode
//! (`controller.quorum.voters` set) the metadata quorum is the source of truth: `quorum.rs`
//! is this broker's seat in it, and `applier.rs` mirrors the committed metadata into the
//! `Registry` and opens or removes local partition logs. With `replication.enable`,
//! `replication.rs` runs the follower fetchers and the leader's ISR upkeep; `liveness.rs` is
//! the controller's fencing of silent brokers, preferred leaders and controlled shutdown;
//! `reassignment.rs` finishes partition reassignments and `throttle.rs` limits the replication
//! traffic they cause. `session.rs` is this broker's own view of its controller session: a
//! leader that lost it and its followers steps down instead of answering as a deposed one.

pub mod admin;
pub mod applier;
pub mod broker_rpc;
pub mod liveness;
pub mod migrate;
pub mod names;
pub mod partition;
pub mod quorum;
pub mod reassignment;
pub mod registry;
pub mod replicated;
pub mod replication;
pub mod session;
pub mod throttle;
pub mod topic_config;

pub use partition::{AppendError, Appended, Partition};
pub use quorum::Quorum;
pub use registry::{AdminError, Registry, Topic, TopicMeta};
