//! Metadata: brokers, topics, partitions and leaders; creates topics on demand when
//! `auto.create.topics.enable` is on and the client allows it.
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

use crate::context::{str_bytes, Context};

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
    let q = registry.quorum();
    let (brokers, topics) =
        super::cluster_view::metadata(ctx, q, listener, req.topics, all, allow_create).await;
    let topics = topics
        .into_iter()
        .map(|t| t.with_topic_authorized_operations(topic_ops))
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(registry.cluster_id.clone())))
        .with_controller_id(super::cluster_view::reported_controller(q))
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}
