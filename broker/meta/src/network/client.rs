//! openraft's network over tonic clients, and forwarding of proposals to the leader.
//!
//! Every call has a deadline (openraft's per-RPC TTL, or the forwarding timeout). A peer that
//! cannot be connected to is reported as `Unreachable`, which makes openraft back off instead of
//! hammering it; nothing here panics on a bad address or a dead peer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::pb::raft_service_client::RaftServiceClient;
use super::pb::{Payload, SnapshotChunk};
use super::{ChunkHeader, ForwardReply};
use crate::liveness::{BrokerHeartbeat, HeartbeatReply};
use crate::requests::MetaRequest;
use crate::types::{Node, NodeId, TypeConfig};

/// An error message as an `std::error::Error`, for openraft's error constructors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// Lazily connecting channels by address, shared so that all callers reuse one connection per
/// peer (tonic reconnects a channel by itself after the peer comes back).
#[derive(Debug, Clone)]
struct Channels {
    connect_timeout: Duration,
    by_addr: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    fn new(connect_timeout: Duration) -> Self {
        Channels {
            connect_timeout,
            by_addr: Arc::default(),
        }
    }

    fn get(&self, addr: &str) -> Result<RaftServiceClient<Channel>, Message> {
        let mut by_addr = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = by_addr.get(addr) {
            return Ok(RaftServiceClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Message(format!("bad peer address {addr:?}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        by_addr.insert(addr.to_string(), channel.clone());
        Ok(RaftServiceClient::new(channel))
    }
}

/// Builds a [`PeerClient`] per replication target.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    node_id: NodeId,
    channels: Channels,
}

impl NetworkFactory {
    pub fn new(node_id: NodeId, connect_timeout: Duration) -> Self {
        NetworkFactory {
            node_id,
            channels: Channels::new(connect_timeout),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            node_id: self.node_id,
            target,
            node: node.clone(),
            client: self.channels.get(&node.addr),
        }
    }
}

/// openraft's connection to one peer.
pub struct PeerClient {
    node_id: NodeId,
    target: NodeId,
    node: Node,
    /// An invalid address is reported as `Unreachable` on every call, not at construction,
    /// because openraft's factory cannot fail.
    client: Result<RaftServiceClient<Channel>, Message>,
}

impl PeerClient {
    /// Runs one RPC under openraft's deadline and decodes the peer's `Result<T, E>` reply.
    async fn call<T, E, F>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        rpc: impl FnOnce(RaftServiceClient<Channel>) -> F,
    ) -> Result<T, RPCError<NodeId, Node, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: Future<Output = Result<tonic::Response<Payload>, Status>>,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(e))),
        };
        let ttl = option.hard_ttl();
        let reply = match tokio::time::timeout(ttl, rpc(client)).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.node_id,
                    target: self.target,
                    timeout: ttl,
                }))
            }
            Ok(Err(status)) => return Err(status_error(&status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let decoded: Result<T, E> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

/// Connection failures are `Unreachable` (openraft backs off); anything else is a network
/// error (retried at once).
fn status_error<E: std::error::Error>(status: &Status) -> RPCError<NodeId, Node, E> {
    let err = Message(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => {
            RPCError::Unreachable(Unreachable::new(&err))
        }
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

fn json<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(value)
}

fn encode_error<E: std::error::Error>(e: serde_json::Error) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let payload = Payload {
            json: json(&rpc).map_err(encode_error)?,
        };
        self.call(RPCTypes::AppendEntries, &option, |mut c| async move {
            c.append_entries(payload).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let header = ChunkHeader {
            vote: rpc.vote,
            meta: rpc.meta,
            offset: rpc.offset,
            done: rpc.done,
        };
        let chunk = SnapshotChunk {
            header_json: json(&header).map_err(encode_error)?,
            data: rpc.data,
        };
        self.call(RPCTypes::InstallSnapshot, &option, |mut c| async move {
            c.install_snapshot(chunk).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let payload = Payload {
            json: json(&rpc).map_err(encode_error)?,
        };
        self.call(RPCTypes::Vote, &option, |mut c| async move {
            c.vote(payload).await
        })
        .await
    }
}

/// Sends proposals to the leader on behalf of a node that is not the leader.
#[derive(Debug, Clone)]
pub struct Forwarder {
    channels: Channels,
}

impl Forwarder {
    pub fn new(connect_timeout: Duration) -> Self {
        Forwarder {
            channels: Channels::new(connect_timeout),
        }
    }

    /// Proposes `request` at the node at `addr`. An `Err` means the outcome is unknown (the
    /// request may or may not have been applied).
    pub async fn client_write(
        &self,
        addr: &str,
        request: &MetaRequest,
        timeout: Duration,
    ) -> Result<ForwardReply, String> {
        let mut client = self.channels.get(addr).map_err(|e| e.0)?;
        let json = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(timeout, client.client_write(Payload { json }))
            .await
            .map_err(|_| format!("forwarding to {addr} timed out after {timeout:?}"))?
            .map_err(|s| format!("forwarding to {addr}: {}: {}", s.code(), s.message()))?;
        serde_json::from_slice(&reply.into_inner().json)
            .map_err(|e| format!("bad reply from {addr}: {e}"))
    }

    /// Sends a broker heartbeat to the node at `addr`.
    pub async fn heartbeat(
        &self,
        addr: &str,
        heartbeat: &BrokerHeartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatReply, String> {
        let mut client = self.channels.get(addr).map_err(|e| e.0)?;
        let json = serde_json::to_vec(heartbeat).map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(timeout, client.broker_heartbeat(Payload { json }))
            .await
            .map_err(|_| format!("heartbeat to {addr} timed out after {timeout:?}"))?
            .map_err(|s| format!("heartbeat to {addr}: {}: {}", s.code(), s.message()))?;
        serde_json::from_slice(&reply.into_inner().json)
            .map_err(|e| format!("bad reply from {addr}: {e}"))
    }
}
