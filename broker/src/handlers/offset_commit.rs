//! OffsetCommit: store a group's consumed positions durably.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::{now_ms, Context};
use crate::group::codec::OffsetValue;
use crate::security::RequestContext;

/// Needs READ on the group (else every partition GROUP_AUTHORIZATION_FAILED) and on each
/// topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_refused = !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    );
    let now = now_ms();
    let mut flat = Vec::new();
    // Each topic's partitions, and the error they all get when the topic is refused.
    let mut shape: Vec<(TopicName, Vec<i32>, Option<ResponseError>)> = Vec::new();
    for t in &req.topics {
        let refused = if group_refused {
            Some(ResponseError::GroupAuthorizationFailed)
        } else if !ctx
            .authz
            .allows(rc, Operation::Read, ResourceType::Topic, t.name.as_str())
        {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        let mut parts = Vec::new();
        for p in &t.partitions {
            if refused.is_none() {
                flat.push((
                    t.name.to_string(),
                    p.partition_index,
                    OffsetValue::committed(
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_deref(),
                        now,
                    ),
                ));
            }
            parts.push(p.partition_index);
        }
        shape.push((t.name.clone(), parts, refused));
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    // Kafka commits nothing (not even to check the member) when every topic is refused.
    let results = if flat.is_empty() && shape.iter().any(|(_, _, r)| r.is_some()) {
        Vec::new()
    } else {
        // Acknowledged only once replicated: a commit must survive the coordinator's failover.
        ctx.groups
            .commit(
                &req.group_id,
                req.generation_id_or_member_epoch,
                &req.member_id,
                instance.as_deref(),
                flat,
            )
            .await
    };
    let mut results = results.into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, parts, refused)| {
            let partitions = parts
                .into_iter()
                .map(|index| {
                    let code = match refused {
                        Some(e) => e.code(),
                        None => results.next().and_then(|r| r.err()).map_or(0, |e| e.code()),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
