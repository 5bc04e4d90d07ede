//! Metadata: brokers, topics, partitions and leaders; creates topics on demand when
//! `auto.create.topics.enable` is on and the client allows it.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

use crate::cluster::names::invalid_topic_name;
use crate::cluster::Topic;
use crate::context::{str_bytes, topic_name, Context};

/// "Not requested" marker for authorized operations.
pub const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;
/// With no authorizer everything is allowed; these are the bit sets Kafka reports then.
/// Topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;
/// Cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: i32 = 0b1_1111_1010_0000;

/// `listener` is the one the request arrived on: brokers are described by its addresses.
pub async fn handle(
    ctx: &Context,
    version: i16,
    req: MetadataRequest,
    listener: &str,
) -> MetadataResponse {
    let registry = &ctx.registry;
    // v0 used an empty list for "all topics"; later versions use null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let allow_create =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let topic_ops = if req.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        NO_AUTHORIZED_OPERATIONS
    };
    let cluster_ops = if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
        CLUSTER_OPERATIONS
    } else {
        NO_AUTHORIZED_OPERATIONS
    };
    if let Some(q) = registry.quorum() {
        let (brokers, topics) =
            super::cluster_view::metadata(ctx, q, listener, req.topics, all, allow_create).await;
        let topics = topics
            .into_iter()
            .map(|t| t.with_topic_authorized_operations(topic_ops))
            .collect();
        return MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str_bytes(registry.cluster_id.clone())))
            .with_controller_id(super::cluster_view::reported_controller(q))
            .with_cluster_authorized_operations(cluster_ops)
            .with_topics(topics);
    }
    let topics: Vec<MetadataResponseTopic> = if all {
        registry.topics().iter().map(|t| describe(ctx, t)).collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| {
                let by_id = (!wanted.topic_id.is_nil())
                    .then(|| registry.topic_by_id(wanted.topic_id))
                    .flatten();
                let name = wanted.name.map(|n| n.to_string());
                match (by_id, name) {
                    (Some(t), _) => describe(ctx, &t),
                    (None, Some(name)) => lookup_or_create(ctx, &name, allow_create),
                    (None, None) => MetadataResponseTopic::default()
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                }
            })
            .collect()
    };
    let topics = topics
        .into_iter()
        .map(|t| t.with_topic_authorized_operations(topic_ops))
        .collect();
    let (host, port) = ctx.advertised(listener);
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(ctx.node_id())
            .with_host(host)
            .with_port(port)])
        .with_cluster_id(Some(str_bytes(registry.cluster_id.clone())))
        .with_controller_id(ctx.node_id())
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}

fn lookup_or_create(ctx: &Context, name: &str, allow_create: bool) -> MetadataResponseTopic {
    if let Some(t) = ctx.registry.topic(name) {
        return describe(ctx, &t);
    }
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code.code())
    };
    if invalid_topic_name(name).is_some() {
        return error(ResponseError::InvalidTopicException);
    }
    if !allow_create {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    match ctx.registry.create_topic(name, -1, -1, BTreeMap::new()) {
        Ok(t) => describe(ctx, &t),
        // Another request created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => match ctx.registry.topic(name) {
            Some(t) => describe(ctx, &t),
            None => error(ResponseError::LeaderNotAvailable),
        },
        Err(e) => error(e.code),
    }
}

fn describe(ctx: &Context, topic: &Topic) -> MetadataResponseTopic {
    let node = ctx.node_id();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.meta.name.clone())))
        .with_topic_id(topic.meta.id)
        .with_is_internal(crate::cluster::registry::is_internal(&topic.meta.name))
        .with_topic_authorized_operations(NO_AUTHORIZED_OPERATIONS)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
