//! CreatePartitions: grow a topic's partition count.
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;
use kafka_protocol::error::ResponseError;
use spate_auth::acl::{Operation, ResourceType};

/// Needs ALTER on each topic.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx
            .authz
            .allows(rc, Operation::Alter, ResourceType::Topic, t.name.as_str())
        {
            results.push(
                result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Authorization failed."))),
            );
            continue;
        }
        results.push(
            match ctx
                .registry
                .admin_create_partitions(&t.name, t.count, req.validate_only)
                .await
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
