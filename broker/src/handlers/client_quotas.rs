//! DescribeClientQuotas (48) and AlterClientQuotas (49): quotas on `user` and `client-id`
//! entities (and their defaults), as `kafka-configs --entity-type users|clients` uses them.
//! DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster, as in Kafka.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use spate_auth::quota::{self, QuotaChange, QuotaEntity, CLIENT_ID, USER};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub fn describe(
    ctx: &Context,
    rc: &RequestContext,
    r: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let failed = |code: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None)
    };
    if !ctx.authz.allows(
        rc,
        Operation::DescribeConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return failed(ResponseError::ClusterAuthorizationFailed, String::new());
    }
    let mut wanted: Vec<(&str, i8, Option<String>)> = Vec::new();
    for c in &r.components {
        let kind = match c.entity_type.as_str() {
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            other => {
                return failed(
                    ResponseError::InvalidRequest,
                    format!("Custom entity type '{other}' not supported"),
                )
            }
        };
        if wanted.iter().any(|(k, _, _)| *k == kind) {
            return failed(
                ResponseError::InvalidRequest,
                format!("Duplicate {kind} filter component entity type"),
            );
        }
        if !(MATCH_EXACT..=MATCH_ANY).contains(&c.match_type) {
            return failed(
                ResponseError::InvalidRequest,
                format!("Unknown match type {}", c.match_type),
            );
        }
        wanted.push((kind, c.match_type, c._match.as_ref().map(|m| m.to_string())));
    }
    let md = ctx.registry.quorum().metadata();
    let entries = md
        .client_quotas
        .iter()
        .filter(|(entity, _)| matches(entity, &wanted, r.strict))
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .parts()
                        .into_iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(str_bytes(k.clone()))
                                .with_value(f64::from_bits(*v))
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// Kafka's filter: every component must match; with `strict`, the entity has no other parts.
fn matches(entity: &QuotaEntity, wanted: &[(&str, i8, Option<String>)], strict: bool) -> bool {
    let parts = entity.parts();
    let each = wanted.iter().all(|(kind, match_type, name)| {
        let Some((_, part)) = parts.iter().find(|(k, _)| k == kind) else {
            return false;
        };
        match *match_type {
            MATCH_EXACT => part.is_some() && *part == name.as_deref(),
            MATCH_DEFAULT => part.is_none(),
            _ => true,
        }
    });
    each && (!strict || parts.len() == wanted.len())
}

pub async fn alter(
    ctx: &Context,
    rc: &RequestContext,
    r: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = ctx.authz.allows(
        rc,
        Operation::AlterConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let checked: Vec<Result<QuotaChange, (ResponseError, String)>> = r
        .entries
        .iter()
        .map(|e| {
            if !allowed {
                return Err((ResponseError::ClusterAuthorizationFailed, String::new()));
            }
            let entity = QuotaEntity::from_parts(e.entity.iter().map(|p| {
                (
                    p.entity_type.as_str(),
                    p.entity_name.as_ref().map(|n| n.as_str()),
                )
            }))
            .map_err(|m| (ResponseError::InvalidRequest, m))?;
            let mut ops = Vec::new();
            for op in &e.ops {
                let key = op.key.to_string();
                if ops.iter().any(|(k, _)| *k == key) {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Duplicate quota key {key} not updating quota for entity"),
                    ));
                }
                if op.remove {
                    if !quota::KEYS.contains(&key.as_str()) {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("Invalid configuration key {key}"),
                        ));
                    }
                    ops.push((key, None));
                } else {
                    quota::validate(&key, op.value)
                        .map_err(|m| (ResponseError::InvalidRequest, m))?;
                    ops.push((key, Some(op.value.to_bits())));
                }
            }
            Ok((entity, ops))
        })
        .collect();
    let valid: Vec<_> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let stored = if r.validate_only {
        Ok(())
    } else {
        ctx.registry.admin_alter_quotas(valid).await
    };
    let entries = r
        .entries
        .iter()
        .zip(checked)
        .map(|(e, c)| {
            let entry = alter_client_quotas_response::EntryData::default().with_entity(
                e.entity
                    .iter()
                    .map(|p| {
                        alter_client_quotas_response::EntityData::default()
                            .with_entity_type(p.entity_type.clone())
                            .with_entity_name(p.entity_name.clone())
                    })
                    .collect(),
            );
            let refusal = match (c, &stored) {
                (Err(r), _) => Some(r),
                (Ok(_), Err(e)) => Some((e.code, e.message.clone())),
                (Ok(_), Ok(())) => None,
            };
            match refusal {
                None => entry,
                Some((code, message)) => entry
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_kafkas() {
        let alice_app =
            QuotaEntity::from_parts([(USER, Some("alice")), (CLIENT_ID, Some("app"))]).unwrap();
        let default_user = QuotaEntity::from_parts([(USER, None)]).unwrap();
        let alice = QuotaEntity::from_parts([(USER, Some("alice"))]).unwrap();
        let exact = [(USER, MATCH_EXACT, Some("alice".to_string()))];
        assert!(matches(&alice, &exact, true));
        assert!(matches(&alice_app, &exact, false));
        assert!(!matches(&alice_app, &exact, true));
        assert!(!matches(&default_user, &exact, false));
        let default = [(USER, MATCH_DEFAULT, None)];
        assert!(matches(&default_user, &default, true));
        let any = [(USER, MATCH_ANY, None)];
        assert!(matches(&default_user, &any, false) && matches(&alice, &any, false));
        assert!(
            matches(&alice_app, &[], false),
            "no components: every entity"
        );
    }
}
