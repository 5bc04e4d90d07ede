//! The gRPC service a metadata node exposes to its peers: raft RPCs into the local openraft
//! instance, and proposals, membership changes and quorum descriptions forwarded by nodes that
//! are not the leader.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::InstallSnapshotRequest;
use openraft::ServerState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::pb::raft_service_server::RaftService;
use super::pb::{Payload, SnapshotChunk};
use super::{ChunkHeader, ForwardReply};
use crate::liveness::{BrokerHeartbeat, HeartbeatReply, Heartbeats};
use crate::membership::{self, MembershipChange};
use crate::requests::MetaRequest;
use crate::store::CommittedIndex;
use crate::types::{Raft, TypeConfig};

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
    raft: Raft,
    heartbeats: Heartbeats,
    committed: CommittedIndex,
    /// Bounds a forwarded membership change (a new voter catching up, the commit).
    membership_timeout: Duration,
}

impl RaftGrpc {
    pub fn new(
        raft: Raft,
        heartbeats: Heartbeats,
        committed: CommittedIndex,
        membership_timeout: Duration,
    ) -> Self {
        RaftGrpc {
            raft,
            heartbeats,
            committed,
            membership_timeout,
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(&req.get_ref().json)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(&req.get_ref().json)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<Payload>, Status> {
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
    }

    async fn client_write(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let request: MetaRequest = decode(&req.get_ref().json)?;
        let reply = match self.raft.client_write(request).await {
            Ok(written) => ForwardReply::Applied(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                ForwardReply::NotLeader {
                    leader: to.leader_id.zip(to.leader_node.map(|n| n.addr)),
                }
            }
            Err(e) => ForwardReply::Failed(e.to_string()),
        };
        encode(&reply)
    }

    async fn broker_heartbeat(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let heartbeat: BrokerHeartbeat = decode(&req.get_ref().json)?;
        let reply = {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader && m.current_leader == Some(m.id) {
                self.heartbeats.record(heartbeat);
                HeartbeatReply::Recorded
            } else {
                HeartbeatReply::NotLeader {
                    leader: membership::leader_hint(&m),
                }
            }
        };
        encode(&reply)
    }

    async fn change_membership(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let change: MembershipChange = decode(&req.get_ref().json)?;
        encode(&membership::apply_on_leader(&self.raft, change, self.membership_timeout).await)
    }

    async fn describe_quorum(&self, _req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let committed = self.committed.get().map(|l| l.index);
        encode(&membership::quorum_view(&self.raft, committed))
    }
}
