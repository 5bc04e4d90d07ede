//! DeleteRecords: move a partition's log start offset forward.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::cluster::partition::log_error_code;
use crate::context::Context;
use crate::security::RequestContext;
use spate_auth::acl::{Operation, ResourceType};

/// Needs DELETE on each topic.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.registry.topic(&t.name);
            let allowed =
                ctx.authz
                    .allows(rc, Operation::Delete, ResourceType::Topic, t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !allowed {
                        return result
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    if let Err(code) = ctx.registry.leader_check(&t.name, p.partition_index) {
                        return result.with_error_code(code.code());
                    }
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    match partition.delete_records_before(p.offset) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result.with_error_code(log_error_code(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
