//! The crate's error type.

use std::time::Duration;

use crate::requests::RequestError;
use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The state machine rejected the request; nothing changed. Map to a Kafka error code with
    /// [`RequestError::kafka_error_code`].
    #[error("request rejected: {0}")]
    Rejected(#[from] RequestError),
    /// No leader could take the request before the deadline (no quorum, or elections keep
    /// failing). The request may or may not have been applied if it reached a leader that lost
    /// its leadership before answering.
    #[error("no leader accepted the request within {0:?}")]
    NoLeader(Duration),
    /// A membership change was sent to a node that is not the leader.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The leader refused a membership change (e.g. removing the last voter).
    #[error("membership change refused: {0}")]
    MembershipRefused(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the metadata node is shut down")]
    Shutdown,
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;
