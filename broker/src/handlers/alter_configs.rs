//! AlterConfigs (replace a topic's whole override set) and IncrementalAlterConfigs (set,
//! delete, append, subtract single keys).
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
use crate::handlers::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(ctx: &Context, req: AlterConfigsRequest) -> AlterConfigsResponse {
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
            let outcome = match check_resource(r.resource_type, &r.resource_name) {
                Ok(()) => {
                    ctx.registry
                        .admin_set_topic_configs(&r.resource_name, configs, req.validate_only)
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
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        responses.push({
            let merged = check_resource(r.resource_type, &r.resource_name).and_then(|()| {
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
            });
            let outcome = match merged {
                Ok(configs) => {
                    ctx.registry
                        .admin_set_topic_configs(&r.resource_name, configs, req.validate_only)
                        .await
                }
                Err(e) => Err(e),
            };
            let (code, message) = split(outcome);
            IncrementalResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn check_resource(kind: i8, name: &StrBytes) -> Result<(), AdminError> {
    match kind {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("broker {}: dynamic broker configs are not supported; set them in the config file and restart", name.as_str()),
        )),
        other => Err(AdminError::new(ResponseError::InvalidRequest, format!("unsupported resource type {other}"))),
    }
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
