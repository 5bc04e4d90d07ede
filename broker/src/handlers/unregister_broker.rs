//! UnregisterBroker (API 64, `kafka-cluster.sh unregister --id N`): a decommissioned broker
//! leaves the cluster for good.
//!
//! Its registration is removed (it leaves every ISR and leadership; its replica assignments
//! stay until reassigned, as in Kafka) and, if it is a broker-only node, it is removed from the
//! metadata quorum's learners so the leader stops replicating to it. A voter stays a voter:
//! remove it with RemoveRaftVoter first. Unregistering a broker that still runs is allowed but
//! pointless: it registers and joins again when it restarts.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use spate_meta::{MembershipChange, MetaRequest};

use crate::context::{str_bytes, Context};

pub async fn handle(ctx: &Context, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    let fail = |code: ResponseError, message: String| {
        UnregisterBrokerResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let Some(quorum) = ctx.registry.quorum() else {
        return fail(
            ResponseError::UnsupportedVersion,
            "this broker runs without a metadata quorum".into(),
        );
    };
    let id = req.broker_id.0;
    let Ok(node_id) = u64::try_from(id) else {
        return fail(
            ResponseError::BrokerIdNotRegistered,
            format!("no broker {id}"),
        );
    };
    let was_learner = quorum.raft_metrics().learners.contains(&node_id);
    if was_learner {
        if let Err(e) = quorum
            .change_membership(MembershipChange::RemoveLearner { node_id })
            .await
        {
            return fail(ResponseError::RequestTimedOut, e.to_string());
        }
    }
    match quorum.propose(MetaRequest::UnregisterBroker { id }).await {
        Ok(_) => UnregisterBrokerResponse::default(),
        // A learner that never registered (or was unregistered before): removing it was all.
        Err(e) if was_learner && e.code == ResponseError::BrokerIdNotRegistered => {
            UnregisterBrokerResponse::default()
        }
        Err(e) => fail(e.code, e.message),
    }
}
