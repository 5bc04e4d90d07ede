//! CreateTopics.
use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::cluster::admin::NewTopic;
use crate::cluster::topic_config::{effective, TOPIC_KEYS};
use crate::cluster::AdminError;
use crate::context::{str_bytes, Context};
use crate::handlers::describe_configs::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::security::RequestContext;
use kafka_protocol::error::ResponseError;
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Needs CREATE on the cluster or on each topic; without DESCRIBE_CONFIGS on the topic the
/// created configs are left out with `topic_config_error_code` 29, as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    let cluster_create = ctx
        .authz
        .sees(rc, Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
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
            if !cluster_create
                && !ctx
                    .authz
                    .allows(rc, Operation::Create, ResourceType::Topic, &name)
            {
                topics.push(failed(
                    result,
                    AdminError::new(
                        ResponseError::TopicAuthorizationFailed,
                        "Authorization failed.",
                    ),
                ));
                continue;
            }
            let assignment = if ct.assignments.is_empty() {
                None
            } else {
                match manual_assignment(&ct) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        topics.push(failed(result, e));
                        continue;
                    }
                }
            };
            let topic = NewTopic {
                name: &name,
                partitions: ct.num_partitions,
                replication_factor: ct.replication_factor,
                configs: configs.clone(),
                assignment,
            };
            let outcome = ctx
                .registry
                .admin_create_topic(topic, req.validate_only)
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
                        if ctx.authz.sees(
                            rc,
                            Operation::DescribeConfigs,
                            ResourceType::Topic,
                            &name,
                        ) {
                            r = r.with_configs(Some(describe_created(ctx, &configs)));
                        } else {
                            r = r.with_topic_config_error_code(
                                ResponseError::TopicAuthorizationFailed.code(),
                            );
                        }
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

/// A manual replica assignment (kafka-topics --replica-assignment): partitions numbered
/// 0..n, each with its replicas, preferred leader first. The controller checks the brokers.
fn manual_assignment(
    ct: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Vec<Vec<i32>>, AdminError> {
    if ct.num_partitions != -1 || ct.replication_factor != -1 {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
        ));
    }
    let mut assignment = Vec::with_capacity(ct.assignments.len());
    for (i, a) in ct.assignments.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                "Partitions must be numbered 0..n without gaps.",
            ));
        }
        assignment.push(a.broker_ids.iter().map(|b| b.0).collect());
    }
    Ok(assignment)
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
