//! DescribeConfigs for topics and for this broker.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::cluster::topic_config::{effective, TOPIC_KEYS};
use crate::config::DEFAULTS;
use crate::context::{str_bytes, Context};
use crate::replication::throttle::DYNAMIC_BROKER_KEYS;
use crate::security::RequestContext;
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Why `rc` may not `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) the configs of a resource, with
/// Kafka's codes: a topic needs the operation on the topic, a broker on the cluster.
pub fn config_refusal(
    ctx: &Context,
    rc: &RequestContext,
    resource_type: i8,
    name: &str,
    op: Operation,
) -> Option<(ResponseError, String)> {
    let (rt, name, code) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        _ => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!ctx.authz.allows(rc, op, rt, name)).then(|| (code, String::new()))
}

/// Needs DESCRIBE_CONFIGS on each topic, or on the cluster for broker resources.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            if let Some((code, message)) = config_refusal(
                ctx,
                rc,
                r.resource_type,
                r.resource_name.as_str(),
                Operation::DescribeConfigs,
            ) {
                return error(result, code, message);
            }
            let configs = match r.resource_type {
                RESOURCE_TOPIC => match ctx.registry.topic(&r.resource_name) {
                    Some(t) => topic_configs(ctx, &t.meta.configs, req.include_synonyms, &wanted),
                    None => {
                        return error(
                            result,
                            ResponseError::UnknownTopicOrPartition,
                            format!("Topic {} does not exist", r.resource_name.as_str()),
                        )
                    }
                },
                RESOURCE_BROKER => {
                    if !r.resource_name.is_empty()
                        && r.resource_name.as_str() != ctx.config.node_id.to_string()
                    {
                        return error(
                            result,
                            ResponseError::InvalidRequest,
                            format!("Unknown broker {}", r.resource_name.as_str()),
                        );
                    }
                    broker_configs(ctx, &wanted)
                }
                other => {
                    return error(
                        result,
                        ResponseError::InvalidRequest,
                        format!("Unsupported resource type {other}"),
                    )
                }
            };
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn error(
    result: DescribeConfigsResult,
    code: ResponseError,
    message: String,
) -> DescribeConfigsResult {
    result
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}

fn topic_configs(
    ctx: &Context,
    overrides: &BTreeMap<String, String>,
    synonyms: bool,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_KEYS
        .iter()
        .filter(|k| wanted(k.name))
        .map(|k| {
            let (value, overridden) = effective(k, overrides, &ctx.config);
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(k.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(if overridden {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
                .with_config_type(k.kind as i8);
            if synonyms {
                let mut list = Vec::new();
                if overridden {
                    list.push(synonym(k.name, value, SOURCE_TOPIC));
                }
                if let Some(b) = k.broker_synonym {
                    if let Some(v) = ctx.config.raw.get(b) {
                        list.push(synonym(b, v, SOURCE_STATIC_BROKER));
                    }
                }
                entry = entry.with_synonyms(list);
            }
            entry
        })
        .collect()
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source)
}

fn broker_configs(
    ctx: &Context,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    // Dynamic values from the metadata quorum, this broker's over the cluster default.
    let md = ctx.registry.quorum().metadata();
    let dynamic = |key: &str| {
        let of = |resource: &str| md.broker_configs.get(resource)?.get(key).cloned();
        of(&ctx.config.node_id.to_string())
            .map(|v| (v, SOURCE_DYNAMIC_BROKER))
            .or_else(|| of("").map(|v| (v, SOURCE_DYNAMIC_DEFAULT_BROKER)))
    };
    ctx.config
        .raw
        .iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| {
            let default = DEFAULTS.iter().any(|(dk, dv)| dk == k && dv == v);
            let settable = DYNAMIC_BROKER_KEYS.contains(&k.as_str());
            let (value, source) = dynamic(k).unwrap_or_else(|| {
                let source = if default {
                    SOURCE_DEFAULT
                } else {
                    SOURCE_STATIC_BROKER
                };
                (v.clone(), source)
            });
            // Secrets (inline keys, passwords) are described as Kafka does: no value.
            let sensitive = crate::security::overrides::is_sensitive(k);
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(k.clone()))
                .with_value((!sensitive).then(|| str_bytes(value)))
                .with_is_sensitive(sensitive)
                .with_read_only(!settable)
                .with_config_source(source)
        })
        .collect()
}
