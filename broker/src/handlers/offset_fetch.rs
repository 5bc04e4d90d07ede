//! OffsetFetch: a group's committed positions (v0-7 one group, v8+ several).
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
                let topics = fetched
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, v)| {
                                        let (offset, epoch, metadata) = unpack(v);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(metadata)))
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
    let topics = fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(t))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, v)| {
                            let (offset, epoch, metadata) = unpack(v);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// A partition with nothing committed reads as offset -1, as in Kafka.
fn unpack(v: Option<OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}
