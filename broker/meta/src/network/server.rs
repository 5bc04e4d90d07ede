//! The gRPC service a metadata node exposes to its peers: raft RPCs into the local openraft
//! instance, and proposals, membership changes and quorum descriptions forwarded by nodes that
//! are not the leader.
//!
//! Each call runs in a server span (`raft.serve`) continuing the caller's trace when the
//! request carries a `traceparent` (see `trace.rs`).

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};
use openraft::ServerState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::pb::raft_service_server::RaftService;
use super::pb::{Payload, SnapshotChunk};
use super::trace::{self, TRACE_TARGET};
use super::{ChunkHeader, ForwardReply};
use crate::liveness::{BrokerHeartbeat, HeartbeatAck, HeartbeatReply, Heartbeats};
use crate::membership::{self, MembershipChange};
use crate::requests::MetaRequest;
use crate::store::CommittedIndex;
use crate::types::{NodeId, Raft, TypeConfig};

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<Payload>, Status> {
    serde_json::to_vec(value)
        .map(|json| Response::new(Payload { json }))
        .map_err(|e| Status::internal(format!("cannot encode reply: {e}")))
}

/// Serves one node's raft to its peers, and records broker heartbeats while it leads.
#[derive(Clone)]
pub struct RaftGrpc {
    node_id: NodeId,
    raft: Raft,
    heartbeats: Heartbeats,
    committed: CommittedIndex,
    /// Bounds a forwarded membership change (a new voter catching up, the commit).
    membership_timeout: Duration,
}

impl RaftGrpc {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        heartbeats: Heartbeats,
        committed: CommittedIndex,
        membership_timeout: Duration,
    ) -> Self {
        RaftGrpc {
            node_id,
            raft,
            heartbeats,
            committed,
            membership_timeout,
        }
    }

    /// The server span of one call, a child of the caller's span if it sent its context.
    fn span(&self, method: &'static str, metadata: &MetadataMap) -> Span {
        let span = tracing::trace_span!(
            target: TRACE_TARGET,
            "raft.serve",
            otel.name = method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = trace::SERVICE,
            rpc.method = method,
            spate.node.id = self.node_id,
            raft.entries = Empty,
            meta.request = Empty,
            otel.status_code = Empty,
            error.message = Empty,
        );
        trace::continue_remote(&span, metadata);
        span
    }
}

/// Runs `handle` in `span`, marking the span failed if it answers with an error status.
async fn traced<F>(span: Span, handle: F) -> Result<Response<Payload>, Status>
where
    F: std::future::Future<Output = Result<Response<Payload>, Status>>,
{
    let result = handle.instrument(span.clone()).await;
    if let Err(status) = &result {
        trace::fail(&span, status.message());
    }
    result
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let span = self.span("AppendEntries", req.metadata());
        traced(span.clone(), async {
            let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.get_ref().json)?;
            span.record("raft.entries", rpc.entries.len());
            encode(&self.raft.append_entries(rpc).await)
        })
        .await
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        traced(self.span("Vote", req.metadata()), async {
            let rpc = decode(&req.get_ref().json)?;
            encode(&self.raft.vote(rpc).await)
        })
        .await
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<Payload>, Status> {
        let span = self.span("InstallSnapshot", req.metadata());
        traced(span, async {
            let chunk = req.into_inner();
            let header: ChunkHeader = decode(&chunk.header_json)?;
            let rpc = InstallSnapshotRequest::<TypeConfig> {
                vote: header.vote,
                meta: header.meta,
                offset: header.offset,
                data: chunk.data,
                done: header.done,
            };
            encode(&self.raft.install_snapshot(rpc).await)
        })
        .await
    }

    async fn client_write(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let span = self.span("ClientWrite", req.metadata());
        traced(span.clone(), async {
            let request: MetaRequest = decode(&req.get_ref().json)?;
            span.record("meta.request", request.kind());
            let reply = match self.raft.client_write(request).await {
                Ok(written) => ForwardReply::Applied(written.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                    ForwardReply::NotLeader {
                        leader: to.leader_id.zip(to.leader_node.map(|n| n.addr)),
                    }
                }
                Err(e) => {
                    trace::fail(&span, &e.to_string());
                    ForwardReply::Failed(e.to_string())
                }
            };
            encode(&reply)
        })
        .await
    }

    async fn broker_heartbeat(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        traced(self.span("BrokerHeartbeat", req.metadata()), async {
            let heartbeat: BrokerHeartbeat = decode(&req.get_ref().json)?;
            let reply = {
                let m = self.raft.metrics();
                let m = m.borrow();
                if m.state == ServerState::Leader && m.current_leader == Some(m.id) {
                    self.heartbeats.record(heartbeat);
                    HeartbeatReply::Recorded(HeartbeatAck::from_metrics(&m))
                } else {
                    HeartbeatReply::NotLeader {
                        leader: membership::leader_hint(&m),
                    }
                }
            };
            encode(&reply)
        })
        .await
    }

    async fn change_membership(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        traced(self.span("ChangeMembership", req.metadata()), async {
            let change: MembershipChange = decode(&req.get_ref().json)?;
            encode(&membership::apply_on_leader(&self.raft, change, self.membership_timeout).await)
        })
        .await
    }

    async fn describe_quorum(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        traced(self.span("DescribeQuorum", req.metadata()), async {
            let committed = self.committed.get().map(|l| l.index);
            encode(&membership::quorum_view(&self.raft, committed))
        })
        .await
    }
}
