//! ListOffsets: earliest, latest, max-timestamp and by-timestamp offset lookups.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::cluster::partition::log_error_code;
use crate::cluster::Partition;
use crate::context::Context;
use crate::security::RequestContext;
use spate_auth::acl::{Operation, ResourceType};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: earliest offset on local storage; all storage is local here.
const EARLIEST_LOCAL: i64 = -4;
/// `isolation_level` 1: "latest" is the last stable offset.
const READ_COMMITTED: i8 = 1;

/// Needs DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED per partition otherwise).
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|lt| {
            let topic = ctx.registry.topic(&lt.name);
            let allowed = ctx.authz.allows(
                rc,
                Operation::Describe,
                ResourceType::Topic,
                lt.name.as_str(),
            );
            let partitions = lt
                .partitions
                .into_iter()
                .map(|lp| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        // Leader epochs are in the response from v4 on; this log is epoch 0.
                        .with_leader_epoch(if version >= 4 { 0 } else { -1 });
                    if !allowed {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    if let Err(code) = ctx.registry.leader_check(&lt.name, lp.partition_index) {
                        return resp.with_error_code(code.code());
                    }
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(lp.partition_index))
                    else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let resp = if version >= 4 {
                        resp.with_leader_epoch(p.leader_epoch())
                    } else {
                        resp
                    };
                    match lookup(p, lp.timestamp, req.isolation_level == READ_COMMITTED) {
                        Ok((offset, timestamp)) => {
                            resp.with_offset(offset).with_timestamp(timestamp)
                        }
                        Err(code) => resp.with_error_code(code.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(lt.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query; (-1, -1) when no record qualifies.
fn lookup(
    p: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let code = |e: spate_log::LogError| log_error_code(&e);
    let (start, hw) = p.offsets().map_err(code)?;
    Ok(match timestamp {
        LATEST if read_committed => (p.last_stable_offset().map_err(code)?, -1),
        LATEST => (hw, -1),
        EARLIEST | EARLIEST_LOCAL => (start, -1),
        MAX_TIMESTAMP => p
            .max_timestamp()
            .map_err(code)?
            .map_or((-1, -1), |t| (t.offset, t.timestamp)),
        ts if ts < 0 => return Err(ResponseError::InvalidRequest),
        ts => p
            .offset_for_timestamp(ts)
            .map_err(code)?
            .map_or((-1, -1), |t| (t.offset, t.timestamp)),
    })
}
