//! Spate's metadata quorum: cluster metadata replicated with openraft, like Kafka's KRaft.
//!
//! Brokers propose [`MetaRequest`]s through a [`MetaNode`]; once a majority has stored an
//! entry, every node applies it to its [`ClusterMetadata`] in log order and publishes the
//! result on a watch channel ([`MetaNode::metadata`]).
//!
//! # Layout
//!
//! - `state_machine.rs` — [`ClusterMetadata`]: brokers, topics, partitions; shared Kafka rules
//!   (leader eligibility, ISR shrinking on fencing).
//! - `requests/` — [`MetaRequest`] (the log's commands), [`MetaResponse`], [`RequestError`];
//!   `apply` per group: `broker.rs`, `topic.rs`, `partition.rs`, `producer_ids.rs`, `scram.rs`.
//! - `placement.rs` — deterministic replica placement for new partitions.
//! - `types.rs` — openraft's type configuration.
//! - `store/` — durable storage for openraft: `log.rs` (log entries, fsynced before they are
//!   acknowledged), `vote.rs` (vote file, replaced atomically), `snapshot.rs` (snapshot file),
//!   `machine.rs` (openraft's state machine over `ClusterMetadata`).
//! - `network/` — gRPC transport (`proto/raft.proto`): `server.rs` serves raft RPCs and
//!   forwarded proposals, `client.rs` is openraft's network over tonic clients, `trace.rs`
//!   their spans and the W3C trace context passed in gRPC metadata.
//! - `liveness.rs` — [`BrokerHeartbeat`]: brokers' liveness reports, kept in the leader's
//!   memory (not replicated).
//! - `membership.rs` — [`MembershipChange`]: learners joining and leaving, voters added and
//!   removed, run on the leader; [`QuorumView`]: the leader's view for DescribeQuorum.
//! - `node.rs` — [`MetaNode`]: start (as a voter, or as a learner that asks the leader to add
//!   it), bootstrap, propose (forwarding to the leader), metadata, metrics, membership
//!   changes, shutdown.
//! - `error.rs` — [`MetaError`].

mod error;
mod liveness;
mod membership;
pub mod network;
mod node;
pub mod placement;
mod requests;
mod state_machine;
pub mod store;
pub mod types;

pub use error::{MetaError, Result};
pub use liveness::{BrokerHeartbeat, HeartbeatAck, HeartbeatReply, Heartbeats};
pub use membership::{MembershipChange, MembershipReply, QuorumReply, QuorumView, ReplicaView};
pub use node::{MetaConfig, MetaMetrics, MetaNode, ServerRole};
pub use requests::{
    ElectionResult, ElectionScope, MetaRequest, MetaResponse, RequestError, ScramUserChange,
    MAX_PRODUCER_ID_BLOCK,
};
pub use state_machine::{
    BrokerRegistration, ClusterMetadata, ListenerEndpoint, PartitionState, TopicMetadata, NO_LEADER,
};
