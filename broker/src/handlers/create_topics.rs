//! CreateTopics.
use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::cluster::topic_config::{effective, TOPIC_KEYS};
use crate::cluster::AdminError;
use crate::context::{str_bytes, Context};
use crate::handlers::describe_configs::{SOURCE_DEFAULT, SOURCE_TOPIC};

pub async fn handle(ctx: &Context, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for ct in req.topics {
        topics.push({
            let name = ct.name.to_string();
            let result = CreatableTopicResult::default()
                .with_name(ct.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let configs: BTreeMap<String, String> = ct
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let (partitions, rf) = if ct.assignments.is_empty() {
                (ct.num_partitions, ct.replication_factor)
            } else {
                match manual_assignment(ctx, &ct) {
                    Ok(pr) => pr,
                    Err(e) => {
                        topics.push(failed(result, e));
                        continue;
                    }
                }
            };
            let outcome = ctx
                .registry
                .admin_create_topic(&name, partitions, rf, configs.clone(), req.validate_only)
                .await
                .map(|c| (c.id, c.partitions, c.replication_factor));
            match outcome {
                Ok((id, partitions, rf)) => {
                    let mut r = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf);
                    if let Some(id) = id {
                        r = r.with_topic_id(id);
                    }
                    if version >= 5 {
                        r = r.with_configs(Some(describe_created(ctx, &configs)));
                    }
                    r
                }
                Err(e) => failed(result, e),
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

fn failed(result: CreatableTopicResult, e: AdminError) -> CreatableTopicResult {
    result
        .with_error_code(e.code.code())
        .with_error_message(Some(str_bytes(e.message)))
}

/// Manual replica assignments must place every replica on this broker, one per partition.
fn manual_assignment(
    ctx: &Context,
    ct: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<(i32, i16), AdminError> {
    use kafka_protocol::error::ResponseError;
    if ct.num_partitions != -1 || ct.replication_factor != -1 {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
        ));
    }
    if ctx.registry.quorum().is_some() {
        return Err(AdminError::new(
            ResponseError::InvalidReplicaAssignment,
            "Manual replica assignments are not supported in cluster mode yet; the controller places replicas.",
        ));
    }
    for (i, a) in ct.assignments.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                "Partitions must be numbered 0..n without gaps.",
            ));
        }
        if a.broker_ids.as_slice() != [ctx.node_id()] {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Partition {i} names brokers {:?}; only broker {} exists.",
                    a.broker_ids, ctx.config.node_id
                ),
            ));
        }
    }
    Ok((ct.assignments.len() as i32, 1))
}

fn describe_created(
    ctx: &Context,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_KEYS
        .iter()
        .map(|k| {
            let (value, overridden) = effective(k, overrides, &ctx.config);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(k.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(if overridden {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
        })
        .collect()
}
