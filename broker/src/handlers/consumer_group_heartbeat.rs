//! ConsumerGroupHeartbeat: the consumer rebalance protocol (KIP-848), used by the Java client
//! with `group.protocol=consumer`.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use spate_auth::acl::{Operation, ResourceType};
use uuid::Uuid;

use crate::context::{str_bytes, Context};
use crate::group::consumer_group::Heartbeat;
use crate::security::RequestContext;

/// Needs READ on the group (else GROUP_AUTHORIZATION_FAILED) and DESCRIBE on every subscribed
/// topic (else TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    client_id: &str,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let refused =
        |e: ResponseError| ConsumerGroupHeartbeatResponse::default().with_error_code(e.code());
    if !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return refused(ResponseError::GroupAuthorizationFailed);
    }
    let mut subscribed = req.subscribed_topic_names.iter().flatten();
    if !subscribed.all(|t| {
        ctx.authz
            .allows(rc, Operation::Describe, ResourceType::Topic, t.as_str())
    }) {
        return refused(ResponseError::TopicAuthorizationFailed);
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout: (req.rebalance_timeout_ms >= 0)
            .then(|| Duration::from_millis(req.rebalance_timeout_ms as u64)),
        subscribed_topics: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.map(|tps| {
            tps.into_iter()
                .flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic_id, p)))
                .collect()
        }),
        client_id: client_id.to_string(),
        client_host: format!("/{}", rc.peer.ip()),
    };
    let interval = ctx.groups.consumer_heartbeat_interval().as_millis() as i32;
    match ctx.groups.consumer_heartbeat(&req.group_id, hb) {
        Ok(out) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(out.member_id)))
            .with_member_epoch(out.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(
                out.assignment
                    .map(|a| Assignment::default().with_topic_partitions(by_topic(a))),
            ),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_member_id(Some(req.member_id))
            .with_member_epoch(req.member_epoch)
            .with_heartbeat_interval_ms(interval),
    }
}

fn by_topic(assignment: BTreeSet<(Uuid, i32)>) -> Vec<TopicPartitions> {
    let mut topics: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in assignment {
        topics.entry(t).or_default().push(p);
    }
    topics
        .into_iter()
        .map(|(t, ps)| {
            TopicPartitions::default()
                .with_topic_id(t)
                .with_partitions(ps)
        })
        .collect()
}
