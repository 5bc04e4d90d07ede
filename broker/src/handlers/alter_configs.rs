//! AlterConfigs (replace a topic's whole override set) and IncrementalAlterConfigs (set,
//! delete, append, subtract single keys). BROKER resources (a broker id, or `""` for the
//! cluster default) take the dynamic broker configs of `cluster/throttle.rs` (the replication
//! throttle rates), stored in the metadata quorum through `cluster/admin/brokers.rs`.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::topic_config::{effective, topic_key};
use crate::cluster::AdminError;
use crate::context::{str_bytes, Context};
use crate::handlers::describe_configs::config_refusal;
use crate::handlers::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::security::RequestContext;
use spate_auth::acl::Operation;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Needs ALTER_CONFIGS on each topic, or on the cluster for broker resources.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        responses.push({
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let refused = config_refusal(
                ctx,
                rc,
                r.resource_type,
                r.resource_name.as_str(),
                Operation::AlterConfigs,
            );
            let outcome = match check_resource(r.resource_type, &r.resource_name) {
                _ if refused.is_some() => Err(refusal(refused)),
                Ok(Resource::Topic) => {
                    ctx.registry
                        .admin_set_topic_configs(&r.resource_name, configs, req.validate_only)
                        .await
                }
                Ok(Resource::Broker) => {
                    // AlterConfigs replaces the whole dynamic set of the resource.
                    let current = dynamic_broker_configs(ctx, &r.resource_name);
                    let mut changes: BTreeMap<String, Option<String>> = current
                        .keys()
                        .filter(|k| !configs.contains_key(*k))
                        .map(|k| (k.clone(), None))
                        .collect();
                    changes.extend(configs.into_iter().map(|(k, v)| (k, Some(v))));
                    ctx.registry
                        .admin_alter_broker_configs(&r.resource_name, changes, req.validate_only)
                        .await
                }
                Err(e) => Err(e),
            };
            let (code, message) = split(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn handle_incremental(
    ctx: &Context,
    rc: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let refused = config_refusal(
            ctx,
            rc,
            r.resource_type,
            r.resource_name.as_str(),
            Operation::AlterConfigs,
        );
        let outcome = match check_resource(r.resource_type, &r.resource_name) {
            _ if refused.is_some() => Err(refusal(refused)),
            Ok(Resource::Broker) => match broker_changes(&r.configs) {
                Ok(changes) => {
                    ctx.registry
                        .admin_alter_broker_configs(&r.resource_name, changes, req.validate_only)
                        .await
                }
                Err(e) => Err(e),
            },
            Ok(Resource::Topic) => match merge_topic_configs(ctx, &r) {
                Ok(configs) => {
                    ctx.registry
                        .admin_set_topic_configs(&r.resource_name, configs, req.validate_only)
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (code, message) = split(outcome);
        responses.push(
            IncrementalResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn refusal(refused: Option<(ResponseError, String)>) -> AdminError {
    let (code, message) = refused.unwrap_or((ResponseError::UnknownServerError, String::new()));
    AdminError::new(code, message)
}

/// A topic's overrides after the request's operations.
fn merge_topic_configs(
    ctx: &Context,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
) -> Result<BTreeMap<String, String>, AdminError> {
    let topic = ctx
        .registry
        .topic(&r.resource_name)
        .ok_or_else(|| crate::cluster::registry::unknown_topic(&r.resource_name))?;
    let mut configs = topic.meta.configs.clone();
    for c in &r.configs {
        apply_op(
            ctx,
            &mut configs,
            &c.name,
            c.config_operation,
            c.value.as_ref().map(|v| v.as_str()),
        )?;
    }
    Ok(configs)
}

enum Resource {
    Topic,
    Broker,
}

fn check_resource(kind: i8, name: &StrBytes) -> Result<Resource, AdminError> {
    match kind {
        RESOURCE_TOPIC => Ok(Resource::Topic),
        RESOURCE_BROKER
            if name.is_empty() || name.as_str().parse::<i32>().is_ok_and(|id| id >= 0) =>
        {
            Ok(Resource::Broker)
        }
        RESOURCE_BROKER => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("invalid broker id {}", name.as_str()),
        )),
        other => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

/// The dynamic configs stored for a broker resource (`""`: the cluster-wide default).
fn dynamic_broker_configs(ctx: &Context, resource: &str) -> BTreeMap<String, String> {
    ctx.registry
        .quorum()
        .metadata()
        .broker_configs
        .get(resource)
        .cloned()
        .unwrap_or_default()
}

/// IncrementalAlterConfigs operations on a broker resource as set/delete changes.
fn broker_changes(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, Option<String>>, AdminError> {
    let mut changes = BTreeMap::new();
    for c in configs {
        let value = match c.config_operation {
            OP_SET => Some(c.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
                AdminError::new(
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for {}", c.name.as_str()),
                )
            })?),
            OP_DELETE => None,
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("config operation {other} is not supported for broker configs"),
                ))
            }
        };
        changes.insert(c.name.to_string(), value);
    }
    Ok(changes)
}

fn apply_op(
    ctx: &Context,
    configs: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), AdminError> {
    let invalid = |m: String| AdminError::new(ResponseError::InvalidConfig, m);
    let key =
        topic_key(name).ok_or_else(|| invalid(format!("Unknown topic config name: {name}")))?;
    match op {
        OP_SET => {
            let v = value.ok_or_else(|| invalid(format!("Null value not supported for {name}")))?;
            configs.insert(name.to_string(), v.to_string());
        }
        OP_DELETE => {
            configs.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            if key.kind != crate::cluster::topic_config::ConfigType::List {
                return Err(invalid(format!(
                    "Config {name} is not a list; APPEND and SUBTRACT need one"
                )));
            }
            let current = effective(key, configs, &ctx.config).0.to_string();
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for v in value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if op == OP_APPEND && !items.iter().any(|i| i == v) {
                    items.push(v.to_string());
                } else if op == OP_SUBTRACT {
                    items.retain(|i| i != v);
                }
            }
            configs.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

fn split(outcome: Result<(), AdminError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), Some(str_bytes(e.message))),
    }
}
