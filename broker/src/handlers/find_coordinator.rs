//! FindCoordinator. A group's coordinator is the leader of the group's `__consumer_offsets`
//! partition (created through the quorum on first use, replicated), as in Kafka; see
//! `group/coordinator/`. Transactional
//! ids (key type 1) work the same way with `__transaction_state` (`txn/coordinator.rs`).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use spate_auth::acl::{Operation, ResourceType};

use crate::context::{str_bytes, Context};
use crate::coordinator::partition_for;
use crate::group::coordinator::{offsets_topic_configs, OFFSETS_TOPIC};
use crate::handlers::cluster_view::client_endpoint;
use crate::security::RequestContext;
use crate::txn::{txn_topic_configs, TXN_TOPIC};

const KEY_GROUP: i8 = 0;
/// A transactional id: its coordinator leads its `__transaction_state` partition.
const KEY_TRANSACTION: i8 = 1;

/// Needs DESCRIBE on each key's group (else GROUP_AUTHORIZATION_FAILED) or transactional id
/// (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        coordinators.push(match refused(ctx, rc, req.key_type, key.as_str()) {
            Some(e) => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(e.code()),
            None => answer(ctx, req.key_type, key, &rc.listener).await,
        });
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

/// The authorization error for looking up `key`'s coordinator, if the client may not.
fn refused(ctx: &Context, rc: &RequestContext, key_type: i8, key: &str) -> Option<ResponseError> {
    let (rt, error) = match key_type {
        KEY_GROUP => (ResourceType::Group, ResponseError::GroupAuthorizationFailed),
        KEY_TRANSACTION => (
            ResourceType::TransactionalId,
            ResponseError::TransactionalIdAuthorizationFailed,
        ),
        _ => return None,
    };
    (!ctx.authz.allows(rc, Operation::Describe, rt, key)).then_some(error)
}

async fn answer(ctx: &Context, key_type: i8, key: StrBytes, listener: &str) -> Coordinator {
    let c = Coordinator::default().with_key(key.clone());
    let unavailable = |c: Coordinator, why: String| {
        c.with_node_id(BrokerId(-1))
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_error_message(Some(str_bytes(why)))
    };
    let (topic_name, partitions, replication_factor, configs) = match key_type {
        KEY_GROUP => (
            OFFSETS_TOPIC,
            ctx.config.group.offsets_partitions,
            ctx.config.group.offsets_replication_factor,
            offsets_topic_configs(),
        ),
        KEY_TRANSACTION => (
            TXN_TOPIC,
            ctx.config.txn.state_partitions,
            ctx.config.txn.replication_factor,
            txn_topic_configs(),
        ),
        other => {
            return c
                .with_node_id(BrokerId(-1))
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!("unknown key type {other}"))))
        }
    };
    let q = ctx.registry.quorum();
    // Replicated like Kafka's (offsets.topic.replication.factor and
    // transaction.state.log.replication.factor, 3), so coordinator state survives a broker;
    // capped at the brokers there are, so small clusters start.
    let brokers = i16::try_from(q.metadata().brokers.len()).unwrap_or(i16::MAX);
    let replicas = replication_factor.min(brokers).max(1);
    if let Err(e) = ctx
        .registry
        .admin_ensure_internal_topic(topic_name, partitions, replicas, configs)
        .await
    {
        return unavailable(c, format!("creating {topic_name}: {}", e.message));
    }
    let md = q.metadata();
    let Some(topic) = md.topics.get(topic_name) else {
        return unavailable(c, format!("{topic_name} is not created yet"));
    };
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    let partition = partition_for(key.as_str(), count);
    let leader = usize::try_from(partition)
        .ok()
        .and_then(|p| topic.partitions.get(p))
        .map_or(-1, |p| p.leader);
    if leader == q.broker_id && ctx.registry.stepped_down(topic_name, partition) {
        return unavailable(
            c,
            format!("this broker lost its controller session and stepped down as leader of {topic_name}-{partition}"),
        );
    }
    match client_endpoint(&md, leader, listener) {
        Some((host, port)) => c
            .with_node_id(BrokerId(leader))
            .with_host(str_bytes(host))
            .with_port(i32::from(port)),
        None => unavailable(
            c,
            format!("{topic_name}-{partition} has no available leader"),
        ),
    }
}
