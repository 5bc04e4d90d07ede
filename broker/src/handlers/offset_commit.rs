//! OffsetCommit: store a group's consumed positions durably.
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::context::{now_ms, Context};
use crate::group::codec::OffsetValue;

pub async fn handle(ctx: &Context, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = now_ms();
    let mut flat = Vec::new();
    let mut shape: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)> = Vec::new();
    for t in &req.topics {
        let mut parts = Vec::new();
        for p in &t.partitions {
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
            parts.push(p.partition_index);
        }
        shape.push((t.name.clone(), parts));
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    // Acknowledged only once replicated: a commit must survive the coordinator's failover.
    let results = ctx
        .groups
        .commit(
            &req.group_id,
            req.generation_id_or_member_epoch,
            &req.member_id,
            instance.as_deref(),
            flat,
        )
        .await;
    let mut results = results.into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|index| {
                    let code = results.next().and_then(|r| r.err()).map_or(0, |e| e.code());
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
