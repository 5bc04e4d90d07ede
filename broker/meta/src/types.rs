//! The openraft type configuration and short aliases for the generic openraft types.

use std::io::Cursor;

use crate::requests::{MetaRequest, MetaResponse};

/// Raft node id of a metadata quorum member (a controller), not a Kafka broker id.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Spate's metadata quorum: log entries carry [`MetaRequest`]s and apply to
    /// [`MetaResponse`]s; nodes are addressed by their gRPC `host:port`.
    pub TypeConfig:
        D = MetaRequest,
        R = MetaResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Node = openraft::BasicNode;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StorageIOError = openraft::StorageIOError<NodeId>;
