//! Topics, partitions and their configs on this broker, and its seat in the metadata quorum.
//!
//! The quorum is the source of truth, for one node as for many (a single node is its only
//! voter): `quorum.rs` is this broker's seat in it, `applier.rs` mirrors the committed
//! metadata into the `Registry` (the local catalog of replicas) and opens or removes local
//! partition logs, and `admin/` is the one way to change it. `migrate.rs` carries an older
//! single-node data directory (`topics.json`) into the quorum. `session.rs` is this broker's
//! own view of its controller session: a leader that lost it and its followers steps down
//! instead of answering as a deposed one. `broker_rpc.rs` calls other brokers' Kafka
//! listeners, over connections `broker_conn.rs` opens (TLS and SASL as the inter-broker
//! listener requires). Replication between brokers is `crate::replication`, the controller's duties
//! `crate::controller`.

pub mod admin;
pub mod applier;
pub mod broker_conn;
pub mod broker_rpc;
pub mod migrate;
pub mod names;
pub mod partition;
pub mod quorum;
pub mod registry;
pub mod session;
pub mod topic_config;

pub use partition::{AppendError, Appended, Partition};
pub use quorum::Quorum;
pub use registry::{AdminError, Registry, Topic, TopicMeta};
