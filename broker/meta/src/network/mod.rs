//! gRPC transport between metadata nodes (`proto/raft.proto`).
//!
//! Raft messages travel as JSON of openraft's own types inside protobuf envelopes; snapshot
//! chunks carry their bytes raw. `server.rs` serves a node's raft, forwarded proposals and
//! broker heartbeats; `client.rs` implements openraft's network over tonic clients and
//! forwards proposals and heartbeats. `trace.rs`: spans for both sides, and the trace
//! context they pass in gRPC metadata.

mod client;
mod server;
mod trace;

use serde::{Deserialize, Serialize};

pub use client::{Forwarder, NetworkFactory, PeerClient};
pub use server::RaftGrpc;
pub use trace::TRACE_TARGET;

use crate::requests::MetaResponse;
use crate::types::{NodeId, SnapshotMeta, Vote};

/// Generated from `proto/raft.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("spate.meta.v1");
}

/// The answer to a forwarded proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Committed and applied by the leader; here is the state machine's response.
    Applied(MetaResponse),
    /// The receiver is not the leader (any more); try `leader` if known.
    NotLeader { leader: Option<(NodeId, String)> },
    /// The receiver could not take the request (e.g. it is shutting down).
    Failed(String),
}

/// A snapshot chunk without its bytes (those go raw in `SnapshotChunk.data`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkHeader {
    vote: Vote,
    meta: SnapshotMeta,
    offset: u64,
    done: bool,
}

/// Mutual TLS for the raft gRPC between nodes: every node serves with `cert_pem`/`key_pem`,
/// presents them when dialling, and accepts only peers whose certificate `ca_pem` signed.
#[derive(Clone)]
pub struct RaftTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for RaftTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftTls([hidden])")
    }
}

impl RaftTls {
    pub(crate) fn server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&self.ca_pem))
    }

    pub(crate) fn client(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
    }
}
