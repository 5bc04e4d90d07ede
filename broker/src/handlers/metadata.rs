//! Metadata: brokers, topics, partitions and leaders; creates topics on demand when
//! `auto.create.topics.enable` is on and the client allows it.
//!
//! With an authorizer (as Kafka's `KafkaApis.handleTopicMetadataRequest`): a request for all
//! topics lists only those the client may DESCRIBE; a named topic it may not describe gets
//! TOPIC_AUTHORIZATION_FAILED and no id; auto-creation needs CREATE on the cluster or the topic.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;

/// "Not requested" marker for authorized operations.
pub const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;

/// The cluster's authorized operations when asked for: 0 without DESCRIBE on the cluster.
pub fn cluster_operations(ctx: &Context, rc: &RequestContext) -> i32 {
    let authz = &ctx.authz;
    if authz.sees(rc, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        authz.operations(rc, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        0
    }
}

/// The request arrived on `rc.listener`: brokers are described by its addresses.
pub async fn handle(
    ctx: &Context,
    version: i16,
    req: MetadataRequest,
    rc: &RequestContext,
) -> MetadataResponse {
    let listener = &*rc.listener;
    let registry = &ctx.registry;
    // v0 used an empty list for "all topics"; later versions use null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let allow_create =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let cluster_ops = if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
        cluster_operations(ctx, rc)
    } else {
        NO_AUTHORIZED_OPERATIONS
    };
    let q = registry.quorum();
    let authz = &ctx.authz;
    let name_of = |t: &MetadataRequestTopic| -> Option<String> {
        match (&t.name, t.topic_id.is_nil()) {
            (Some(n), _) => Some(n.to_string()),
            (None, false) => q
                .metadata()
                .topics
                .iter()
                .find(|(_, m)| m.id == t.topic_id)
                .map(|(n, _)| n.clone()),
            (None, true) => None,
        }
    };
    // Named topics the client may not describe are answered here, without looking them up.
    let mut refused = Vec::new();
    let mut creatable = Vec::new();
    let mut rest = Vec::new();
    for t in req.topics.clone().unwrap_or_default() {
        let Some(name) = name_of(&t) else {
            rest.push(t);
            continue;
        };
        if !authz.allows(rc, Operation::Describe, ResourceType::Topic, &name) {
            refused.push(
                MetadataResponseTopic::default()
                    .with_name(Some(crate::context::topic_name(name)))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            );
        } else if !allow_create
            || authz.sees(rc, Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
            || authz.sees(rc, Operation::Create, ResourceType::Topic, &name)
        {
            creatable.push(t);
        } else {
            rest.push(t);
        }
    }
    let (brokers, mut topics) = if all {
        super::cluster_view::metadata(ctx, q, listener, None, true, false).await
    } else {
        super::cluster_view::metadata(ctx, q, listener, Some(creatable), false, allow_create).await
    };
    if !rest.is_empty() {
        let (_, more) =
            super::cluster_view::metadata(ctx, q, listener, Some(rest), false, false).await;
        // Unknown topics the client asked to create but may not: Kafka's answer is 29.
        topics.extend(more.into_iter().map(|t| {
            if allow_create && t.error_code == ResponseError::UnknownTopicOrPartition.code() {
                t.with_error_code(ResponseError::TopicAuthorizationFailed.code())
            } else {
                t
            }
        }));
    }
    if all {
        topics.retain(|t| {
            t.name.as_ref().is_none_or(|n| {
                authz.sees(rc, Operation::Describe, ResourceType::Topic, n.as_str())
            })
        });
    }
    let topics = topics
        .into_iter()
        .map(|t| {
            let ops = match (&t.name, req.include_topic_authorized_operations) {
                // As Kafka: every described topic, unknown ones too (kafka-python decodes the
                // field of each); only refused topics keep "not requested".
                (Some(n), true)
                    if t.error_code != ResponseError::TopicAuthorizationFailed.code() =>
                {
                    authz.operations(rc, ResourceType::Topic, n.as_str())
                }
                _ => NO_AUTHORIZED_OPERATIONS,
            };
            t.with_topic_authorized_operations(ops)
        })
        .chain(refused)
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(registry.cluster_id.clone())))
        .with_controller_id(super::cluster_view::reported_controller(q))
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}
