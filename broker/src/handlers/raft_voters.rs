//! AddRaftVoter (API 80) and RemoveRaftVoter (API 81), KIP-853's dynamic voters, as
//! `kafka-metadata-quorum add-controller / remove-controller` send them.
//!
//! Raft ids are broker ids. A new voter is normally a running broker-only node (a learner):
//! the leader waits until it has caught up, then makes it a voter. Its address is the first
//! listener of the request, or, without one, the address it joined with. A removed voter stays
//! a learner, so a running broker keeps receiving metadata (Kafka: it becomes an observer).
//! Directory ids are not used. Both run on the raft leader, forwarded if needed; the request's
//! `timeout_ms` is not used (the quorum's own propose timeout bounds the wait).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_meta::{MembershipChange, MetaError};

use crate::cluster::Quorum;
use crate::context::{str_bytes, Context};

pub async fn add(ctx: &Context, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let addr = req.listeners.first().map(|l| {
        if l.host.contains(':') {
            format!("[{}]:{}", l.host, l.port)
        } else {
            format!("{}:{}", l.host, l.port)
        }
    });
    let (code, message) = change(ctx, req.cluster_id.as_ref(), req.voter_id, |node_id| {
        MembershipChange::AddVoter { node_id, addr }
    })
    .await;
    AddRaftVoterResponse::default()
        .with_error_code(code.map_or(0, |c| c.code()))
        .with_error_message(message.map(str_bytes))
}

pub async fn remove(ctx: &Context, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let (code, message) = change(ctx, req.cluster_id.as_ref(), req.voter_id, |node_id| {
        MembershipChange::RemoveVoter { node_id }
    })
    .await;
    RemoveRaftVoterResponse::default()
        .with_error_code(code.map_or(0, |c| c.code()))
        .with_error_message(message.map(str_bytes))
}

/// Checks the request and runs the change; the error to answer, if any.
async fn change(
    ctx: &Context,
    cluster_id: Option<&StrBytes>,
    voter_id: i32,
    make: impl FnOnce(u64) -> MembershipChange,
) -> (Option<ResponseError>, Option<String>) {
    let quorum = ctx.registry.quorum();
    if let Some(error) = check_cluster_id(quorum, cluster_id) {
        return error;
    }
    let Ok(node_id) = u64::try_from(voter_id) else {
        return (
            Some(ResponseError::InvalidRequest),
            Some(format!("bad voter id {voter_id}")),
        );
    };
    match quorum.change_membership(make(node_id)).await {
        Ok(()) => (None, None),
        Err(e @ MetaError::MembershipRefused(_)) => {
            (Some(ResponseError::InvalidRequest), Some(e.to_string()))
        }
        Err(e @ (MetaError::NoLeader(_) | MetaError::NotLeader { .. })) => {
            (Some(ResponseError::RequestTimedOut), Some(e.to_string()))
        }
        Err(e) => (Some(ResponseError::UnknownServerError), Some(e.to_string())),
    }
}

fn check_cluster_id(
    quorum: &Quorum,
    cluster_id: Option<&StrBytes>,
) -> Option<(Option<ResponseError>, Option<String>)> {
    let ours = quorum.metadata().cluster_id.clone();
    match cluster_id {
        // Null or empty: the client did not say (the default of the request struct is "").
        Some(theirs) if !theirs.is_empty() && theirs.as_str() != ours => Some((
            Some(ResponseError::InconsistentClusterId),
            Some(format!("this cluster is {ours}, not {theirs}")),
        )),
        _ => None,
    }
}
