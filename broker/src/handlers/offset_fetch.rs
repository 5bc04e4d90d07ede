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
use spate_auth::acl::{Operation, ResourceType};

use crate::context::{str_bytes, topic_name, Context};
use crate::group::codec::OffsetValue;
use crate::security::RequestContext;

/// The first version with a top-level error code; before it a group's error goes on each
/// requested partition.
const TOP_LEVEL_ERROR_VERSION: i16 = 2;

/// A topic's answer: (partition, offset, leader epoch, metadata, error code) per partition.
type TopicRows = (String, Vec<(i32, i64, i32, String, i16)>);

/// Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED) and on each requested topic
/// (else its partitions TOPIC_AUTHORIZATION_FAILED); asked for all topics, leaves out those
/// the client may not DESCRIBE, as Kafka does.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
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
                let rows = match group_rows(ctx, rc, &g.group_id, wanted, req.require_stable) {
                    Ok(rows) => rows,
                    Err(e) => {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(e.code())
                    }
                };
                let topics = rows
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, offset, epoch, metadata, code)| {
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
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && req.require_stable;
    let rows = match group_rows(ctx, rc, &req.group_id, wanted.clone(), require_stable) {
        Ok(rows) => rows,
        // Before v2 only a refused group's partitions say why, as in Kafka.
        Err(e @ ResponseError::GroupAuthorizationFailed) if version < TOP_LEVEL_ERROR_VERSION => {
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, parts)| (t, failed(parts, e)))
                .collect()
        }
        // v0 has no error field; the client sees no offsets and asks again.
        Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
    };
    let topics = rows
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(t))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, offset, epoch, metadata, code)| {
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

/// One group's offsets as far as the client may see them: `wanted` topics it may not
/// DESCRIBE answer TOPIC_AUTHORIZATION_FAILED (after the others); all topics (`None`) means
/// only those it may DESCRIBE.
fn group_rows(
    ctx: &Context,
    rc: &RequestContext,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<TopicRows>, ResponseError> {
    if !ctx
        .authz
        .allows(rc, Operation::Describe, ResourceType::Group, group)
    {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let all_topics = wanted.is_none();
    let (wanted, refused): (Option<Vec<_>>, Vec<_>) = match wanted {
        Some(ts) => {
            let (allowed, refused) = ts.into_iter().partition(|(t, _)| {
                ctx.authz
                    .allows(rc, Operation::Describe, ResourceType::Topic, t)
            });
            (Some(allowed), refused)
        }
        None => (None, Vec::new()),
    };
    let mut fetched = ctx.groups.fetch_offsets(group, wanted)?;
    if all_topics {
        fetched.retain(|(t, _)| {
            ctx.authz
                .sees(rc, Operation::Describe, ResourceType::Topic, t)
        });
    }
    let unstable = unstable(ctx, group, require_stable);
    let mut rows: Vec<TopicRows> = fetched
        .into_iter()
        .map(|(t, parts)| {
            let parts = parts
                .into_iter()
                .map(|(p, v)| {
                    let (offset, epoch, metadata, code) = answer(&unstable, &t, p, v);
                    (p, offset, epoch, metadata, code)
                })
                .collect();
            (t, parts)
        })
        .collect();
    rows.extend(refused.into_iter().map(|(t, parts)| {
        let parts = failed(parts, ResponseError::TopicAuthorizationFailed);
        (t, parts)
    }));
    Ok(rows)
}

/// Partitions that all answer `e`, with nothing committed.
fn failed(parts: Vec<i32>, e: ResponseError) -> Vec<(i32, i64, i32, String, i16)> {
    parts
        .into_iter()
        .map(|p| {
            let (offset, epoch, metadata) = unpack(None);
            (p, offset, epoch, metadata, e.code())
        })
        .collect()
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
