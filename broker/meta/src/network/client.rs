//! openraft's network over tonic clients, and forwarding of proposals to the leader.
//!
//! Every call has a deadline (openraft's per-RPC TTL, or the forwarding timeout). A peer that
//! cannot be connected to is reported as `Unreachable`, which makes openraft back off instead of
//! hammering it; nothing here panics on a bad address or a dead peer.
//!
//! Addresses are `host:port` with host a name or an IP. A name is resolved on every connect,
//! never cached: on Kubernetes a restarted voter keeps its DNS name but gets a new IP. To
//! notice that the old IP is gone (no RST comes back from a vanished pod), channels send
//! HTTP/2 keep-alive pings, and a call that times out drops its channel so the next call
//! connects (and resolves) afresh.
//!
//! Each call runs in a client span (`raft.rpc`, `raft.forward`) whose context goes to the peer
//! in the `traceparent` metadata entry (see `trace.rs`).

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
use tonic::{Code, Request, Status};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::pb::raft_service_client::RaftServiceClient;
use super::pb::{Payload, SnapshotChunk};
use super::trace::{self, TRACE_TARGET};
use super::{ChunkHeader, ForwardReply};
use crate::liveness::{BrokerHeartbeat, HeartbeatReply};
use crate::membership::{MembershipChange, MembershipReply, QuorumReply};
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
    tls: Option<Arc<super::RaftTls>>,
}

impl Channels {
    fn new(connect_timeout: Duration, tls: Option<Arc<super::RaftTls>>) -> Self {
        Channels {
            connect_timeout,
            by_addr: Arc::default(),
            tls,
        }
    }

    fn get(&self, addr: &str) -> Result<RaftServiceClient<Channel>, Message> {
        let mut by_addr = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = by_addr.get(addr) {
            return Ok(RaftServiceClient::new(channel.clone()));
        }
        // A dead connection is noticed within interval + timeout; then tonic reconnects,
        // resolving the name again.
        let ping = self.connect_timeout.max(Duration::from_secs(1));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| Message(format!("bad peer address {addr:?}: {e}")))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client())
                .map_err(|e| Message(format!("TLS to {addr:?}: {e}")))?;
        }
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(ping)
            .keep_alive_timeout(ping)
            .keep_alive_while_idle(true)
            .connect_lazy();
        by_addr.insert(addr.to_string(), channel.clone());
        Ok(RaftServiceClient::new(channel))
    }

    /// Forgets the channel to `addr` after a call on it timed out, so that the next call opens
    /// a new connection (resolving the name again) instead of waiting on one that may lead to
    /// an address nobody answers at any more.
    fn forget(&self, addr: &str) {
        self.by_addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
    }
}

/// Builds a [`PeerClient`] per replication target.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    node_id: NodeId,
    channels: Channels,
}

impl NetworkFactory {
    pub fn new(
        node_id: NodeId,
        connect_timeout: Duration,
        tls: Option<Arc<super::RaftTls>>,
    ) -> Self {
        NetworkFactory {
            node_id,
            channels: Channels::new(connect_timeout, tls),
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
            channels: self.channels.clone(),
        }
    }
}

/// openraft's connection to one peer.
pub struct PeerClient {
    node_id: NodeId,
    target: NodeId,
    node: Node,
    /// Looked up per call (not kept) so that a channel dropped after a timeout is replaced.
    /// An invalid address is reported as `Unreachable` on every call, not at construction,
    /// because openraft's factory cannot fail.
    channels: Channels,
}

impl PeerClient {
    /// The client span of one raft RPC to this peer.
    fn span(&self, action: RPCTypes) -> Span {
        let method = match action {
            RPCTypes::Vote => "Vote",
            RPCTypes::AppendEntries => "AppendEntries",
            RPCTypes::InstallSnapshot => "InstallSnapshot",
        };
        tracing::trace_span!(
            target: TRACE_TARGET,
            "raft.rpc",
            otel.name = method,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = trace::SERVICE,
            rpc.method = method,
            spate.node.id = self.node_id,
            raft.target = self.target,
            net.peer = %self.node.addr,
            raft.entries = Empty,
            otel.status_code = Empty,
            error.message = Empty,
        )
    }

    /// Runs one RPC under openraft's deadline, in `span`, and decodes the peer's `Result<T, E>`
    /// reply.
    async fn call<M, T, E, F>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        span: Span,
        message: M,
        rpc: impl FnOnce(RaftServiceClient<Channel>, Request<M>) -> F,
    ) -> Result<T, RPCError<NodeId, Node, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: Future<Output = Result<tonic::Response<Payload>, Status>>,
    {
        let result = self
            .call_in(action, option, &span, message, rpc)
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            trace::fail(&span, &e.to_string());
        }
        result
    }

    async fn call_in<M, T, E, F>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        span: &Span,
        message: M,
        rpc: impl FnOnce(RaftServiceClient<Channel>, Request<M>) -> F,
    ) -> Result<T, RPCError<NodeId, Node, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: Future<Output = Result<tonic::Response<Payload>, Status>>,
    {
        let client = match self.channels.get(&self.node.addr) {
            Ok(c) => c,
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        };
        let mut request = Request::new(message);
        trace::inject(span, request.metadata_mut());
        let ttl = option.hard_ttl();
        let reply = match tokio::time::timeout(ttl, rpc(client, request)).await {
            Err(_) => {
                self.channels.forget(&self.node.addr);
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.node_id,
                    target: self.target,
                    timeout: ttl,
                }));
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
        let span = self.span(RPCTypes::AppendEntries);
        span.record("raft.entries", rpc.entries.len());
        let payload = Payload {
            json: json(&rpc).map_err(encode_error)?,
        };
        self.call(
            RPCTypes::AppendEntries,
            &option,
            span,
            payload,
            |mut c, r| async move { c.append_entries(r).await },
        )
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
        self.call(
            RPCTypes::InstallSnapshot,
            &option,
            self.span(RPCTypes::InstallSnapshot),
            chunk,
            |mut c, r| async move { c.install_snapshot(r).await },
        )
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
        self.call(
            RPCTypes::Vote,
            &option,
            self.span(RPCTypes::Vote),
            payload,
            |mut c, r| async move { c.vote(r).await },
        )
        .await
    }
}

/// Sends proposals to the leader on behalf of a node that is not the leader.
#[derive(Debug, Clone)]
pub struct Forwarder {
    node_id: NodeId,
    channels: Channels,
}

impl Forwarder {
    pub fn new(
        node_id: NodeId,
        connect_timeout: Duration,
        tls: Option<Arc<super::RaftTls>>,
    ) -> Self {
        Forwarder {
            node_id,
            channels: Channels::new(connect_timeout, tls),
        }
    }

    /// One unary call to the node at `addr` with `request` as JSON, decoding the JSON reply,
    /// in a client span named `method`. A timeout drops the channel (see
    /// [`Channels::forget`]).
    async fn unary<Req, Rep, F>(
        &self,
        method: &'static str,
        what: &str,
        addr: &str,
        request: &Req,
        timeout: Duration,
        rpc: impl FnOnce(RaftServiceClient<Channel>, Request<Payload>) -> F,
    ) -> Result<Rep, String>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
        F: Future<Output = Result<tonic::Response<Payload>, Status>>,
    {
        let span = tracing::trace_span!(
            target: TRACE_TARGET,
            "raft.forward",
            otel.name = method,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = trace::SERVICE,
            rpc.method = method,
            spate.node.id = self.node_id,
            net.peer = addr,
            otel.status_code = Empty,
            error.message = Empty,
        );
        let result = self
            .unary_in(&span, what, addr, request, timeout, rpc)
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            trace::fail(&span, e);
        }
        result
    }

    async fn unary_in<Req, Rep, F>(
        &self,
        span: &Span,
        what: &str,
        addr: &str,
        request: &Req,
        timeout: Duration,
        rpc: impl FnOnce(RaftServiceClient<Channel>, Request<Payload>) -> F,
    ) -> Result<Rep, String>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
        F: Future<Output = Result<tonic::Response<Payload>, Status>>,
    {
        let client = self.channels.get(addr).map_err(|e| e.0)?;
        let json = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let mut message = Request::new(Payload { json });
        trace::inject(span, message.metadata_mut());
        let reply = match tokio::time::timeout(timeout, rpc(client, message)).await {
            Err(_) => {
                self.channels.forget(addr);
                return Err(format!("{what} to {addr} timed out after {timeout:?}"));
            }
            Ok(reply) => {
                reply.map_err(|s| format!("{what} to {addr}: {}: {}", s.code(), s.message()))?
            }
        };
        serde_json::from_slice(&reply.into_inner().json)
            .map_err(|e| format!("bad reply from {addr}: {e}"))
    }

    /// Proposes `request` at the node at `addr`. An `Err` means the outcome is unknown (the
    /// request may or may not have been applied).
    pub async fn client_write(
        &self,
        addr: &str,
        request: &MetaRequest,
        timeout: Duration,
    ) -> Result<ForwardReply, String> {
        self.unary(
            "ClientWrite",
            "forwarding",
            addr,
            request,
            timeout,
            |mut c, p| async move { c.client_write(p).await },
        )
        .await
    }

    /// Sends a broker heartbeat to the node at `addr`.
    pub async fn heartbeat(
        &self,
        addr: &str,
        heartbeat: &BrokerHeartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatReply, String> {
        self.unary(
            "BrokerHeartbeat",
            "heartbeat",
            addr,
            heartbeat,
            timeout,
            |mut c, p| async move { c.broker_heartbeat(p).await },
        )
        .await
    }

    /// Asks the node at `addr` to make a membership change (it must lead).
    pub async fn change_membership(
        &self,
        addr: &str,
        change: &MembershipChange,
        timeout: Duration,
    ) -> Result<MembershipReply, String> {
        self.unary(
            "ChangeMembership",
            "membership change",
            addr,
            change,
            timeout,
            |mut c, p| async move { c.change_membership(p).await },
        )
        .await
    }

    /// Asks the node at `addr` for its view of the quorum (it must lead).
    pub async fn describe_quorum(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<QuorumReply, String> {
        self.unary(
            "DescribeQuorum",
            "describe quorum",
            addr,
            &(),
            timeout,
            |mut c, p| async move { c.describe_quorum(p).await },
        )
        .await
    }
}
