//! DeleteTopics, by name (all versions) or topic id (v6+).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use crate::context::{str_bytes, topic_name, Context};
use crate::security::RequestContext;
use spate_auth::acl::{Operation, ResourceType};

/// Needs DELETE on each topic; a topic named by id the client may not DESCRIBE stays nameless.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        responses.push({
            let name = name.or_else(|| ctx.registry.topic_by_id(id).map(|t| t.meta.name.clone()));
            let result = DeletableTopicResult::default()
                .with_topic_id(id)
                .with_name(name.clone().map(topic_name));
            let Some(name) = name else {
                responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
                continue;
            };
            if !ctx
                .authz
                .allows(rc, Operation::Delete, ResourceType::Topic, &name)
            {
                let described = !id.is_nil()
                    && ctx
                        .authz
                        .sees(rc, Operation::Describe, ResourceType::Topic, &name);
                let result = if id.is_nil() || described {
                    result
                } else {
                    result.with_name(None)
                };
                responses
                    .push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            match ctx.registry.admin_delete_topic(&name).await {
                Ok(id) => result.with_topic_id(id),
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
