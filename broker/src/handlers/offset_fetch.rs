//! OffsetFetch: a group's committed positions (v0-7 one group, v8+ several).
//!
//! With `require_stable` (v7+, KIP-447) a partition whose offsets a still-open transaction
//! commits answers UNSTABLE_OFFSET_COMMIT, which clients retry: a consumer that takes over
//! from a failed transactional producer must start from the offsets that transaction's outcome
//! leaves, not from older ones (that would process its inputs twice).
use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use crate::context::{str_bytes, topic_name, Context};
use crate::group::codec::OffsetValue;
use crate::group::coordinator::FetchedOffsets;

pub fn handle(ctx: &Context, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let fetched = match ctx.groups.fetch_offsets(&g.group_id, wanted) {
                    Ok(f) => f,
                    Err(e) => {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(e.code())
                    }
                };
                let unstable = unstable(ctx, &g.group_id, req.require_stable);
                let topics = fetched
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(t.clone()))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, v)| {
                                        let (offset, epoch, metadata, code) =
                                            answer(&unstable, &t, p, v);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(metadata)))
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched: FetchedOffsets = match ctx.groups.fetch_offsets(&req.group_id, wanted) {
        Ok(f) => f,
        // v0 has no error field; the client sees no offsets and asks again.
        Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
    };
    let unstable = unstable(ctx, &req.group_id, version >= 7 && req.require_stable);
    let topics = fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(t.clone()))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, v)| {
                            let (offset, epoch, metadata, code) = answer(&unstable, &t, p, v);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(metadata)))
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Partitions with pending transactional commits, when the request wants stable offsets.
fn unstable(ctx: &Context, group: &str, require_stable: bool) -> BTreeSet<(String, i32)> {
    if require_stable {
        ctx.groups.unstable_offsets(group)
    } else {
        BTreeSet::new()
    }
}

/// (offset, leader epoch, metadata, error code) of one partition.
fn answer(
    unstable: &BTreeSet<(String, i32)>,
    topic: &str,
    partition: i32,
    v: Option<OffsetValue>,
) -> (i64, i32, String, i16) {
    if !unstable.is_empty() && unstable.contains(&(topic.to_string(), partition)) {
        let (offset, epoch, metadata) = unpack(None);
        return (
            offset,
            epoch,
            metadata,
            ResponseError::UnstableOffsetCommit.code(),
        );
    }
    let (offset, epoch, metadata) = unpack(v);
    (offset, epoch, metadata, 0)
}

/// A partition with nothing committed reads as offset -1, as in Kafka.
fn unpack(v: Option<OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}
