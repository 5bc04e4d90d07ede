//! The security admin APIs on the wire, for [`super::AdminClient`]: SCRAM credentials
//! (DescribeUserScramCredentials 50, AlterUserScramCredentials 51), ACLs (DescribeAcls 29,
//! CreateAcls 30, DeleteAcls 31) and client quotas of a user (DescribeClientQuotas 48,
//! AlterClientQuotas 49).
//!
//! Each function sends one request on a [`Connection`] and checks the top-level and
//! per-result error codes, so a refusal comes back as [`KafkaError::Api`] with the Kafka code
//! (SECURITY_DISABLED from the ACL APIs of a cluster without an authorizer, for example).

use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as AlterEntity, EntryData as AlterEntry, OpData,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest, DescribeClientQuotasRequest,
    DescribeUserScramCredentialsRequest,
};
use spate_auth::acl::{Operation, PatternType, Permission, ResourceType};

use super::client::{check, str_bytes};
use super::connection::Connection;
use super::{codes, AclBinding, AclFilter, KafkaError, QuotaValues, ScramMechanism, ScramUpsert};

/// Quota entity type of a user (`ClientQuotaEntity.USER`).
const ENTITY_USER: &str = "user";
/// DescribeClientQuotas match type: the named entity exactly.
const MATCH_EXACT: i8 = 0;

/// The SCRAM mechanisms `user` has a credential for; none when the broker says
/// RESOURCE_NOT_FOUND.
pub(super) async fn describe_scram_credentials(
    conn: &mut Connection,
    user: &str,
) -> Result<Vec<ScramMechanism>, KafkaError> {
    const API: &str = "DescribeUserScramCredentials";
    let request = DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![UserName::default().with_name(str_bytes(user))]));
    let response = conn.send(API, &request).await?;
    check(
        API,
        user,
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let mut out = Vec::new();
    for r in response.results.iter().filter(|r| r.user.as_str() == user) {
        if r.error_code == codes::RESOURCE_NOT_FOUND {
            continue;
        }
        check(API, user, r.error_code, r.error_message.as_ref())?;
        out.extend(
            r.credential_infos
                .iter()
                .filter_map(|c| ScramMechanism::from_code(c.mechanism)),
        );
    }
    Ok(out)
}

/// Creates or replaces one credential of `user`.
pub(super) async fn upsert_scram_credential(
    conn: &mut Connection,
    user: &str,
    credential: &ScramUpsert,
) -> Result<(), KafkaError> {
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(str_bytes(user))
        .with_mechanism(credential.mechanism.code())
        .with_iterations(credential.iterations)
        .with_salt(credential.salt.clone().into())
        .with_salted_password(credential.salted_password.clone().into());
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
    alter_scram(conn, user, &request, false).await
}

/// Deletes one credential of `user`; one that does not exist is not an error.
pub(super) async fn delete_scram_credential(
    conn: &mut Connection,
    user: &str,
    mechanism: ScramMechanism,
) -> Result<(), KafkaError> {
    let deletion = ScramCredentialDeletion::default()
        .with_name(str_bytes(user))
        .with_mechanism(mechanism.code());
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
    alter_scram(conn, user, &request, true).await
}

async fn alter_scram(
    conn: &mut Connection,
    user: &str,
    request: &AlterUserScramCredentialsRequest,
    missing_ok: bool,
) -> Result<(), KafkaError> {
    const API: &str = "AlterUserScramCredentials";
    let response = conn.send(API, request).await?;
    if response.results.is_empty() {
        return Err(KafkaError::Protocol(format!("{API}: no result for {user}")));
    }
    for r in &response.results {
        if missing_ok && r.error_code == codes::RESOURCE_NOT_FOUND {
            continue;
        }
        check(API, user, r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

/// The ACLs matching `filter`.
pub(super) async fn describe_acls(
    conn: &mut Connection,
    filter: &AclFilter,
) -> Result<Vec<AclBinding>, KafkaError> {
    const API: &str = "DescribeAcls";
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(filter.resource_type.code())
        .with_resource_name_filter(filter.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(filter.pattern_type.code())
        .with_principal_filter(filter.principal.as_deref().map(str_bytes))
        .with_host_filter(filter.host.as_deref().map(str_bytes))
        .with_operation(filter.operation.code())
        .with_permission_type(filter.permission.code());
    let response = conn.send(API, &request).await?;
    check(
        API,
        &filter_label(filter),
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let mut out = Vec::new();
    for r in &response.resources {
        for a in &r.acls {
            out.push(binding(
                API,
                r.resource_type,
                r.resource_name.as_str(),
                r.pattern_type,
                a.principal.as_str(),
                a.host.as_str(),
                a.operation,
                a.permission_type,
            )?);
        }
    }
    Ok(out)
}

/// Creates `acls`; each creation has its own result.
pub(super) async fn create_acls(
    conn: &mut Connection,
    acls: &[AclBinding],
) -> Result<(), KafkaError> {
    const API: &str = "CreateAcls";
    if acls.is_empty() {
        return Ok(());
    }
    let creations = acls
        .iter()
        .map(|b| {
            AclCreation::default()
                .with_resource_type(b.resource_type.code())
                .with_resource_name(str_bytes(&b.resource_name))
                .with_resource_pattern_type(b.pattern_type.code())
                .with_principal(str_bytes(&b.principal))
                .with_host(str_bytes(&b.host))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code())
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    let response = conn.send(API, &request).await?;
    if response.results.len() != acls.len() {
        return Err(KafkaError::Protocol(format!(
            "{API}: {} results for {} creations",
            response.results.len(),
            acls.len()
        )));
    }
    for (b, r) in acls.iter().zip(&response.results) {
        check(
            API,
            &binding_label(b),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

/// Deletes every ACL matching one of `filters`; returns how many were deleted.
pub(super) async fn delete_acls(
    conn: &mut Connection,
    filters: &[AclFilter],
) -> Result<usize, KafkaError> {
    const API: &str = "DeleteAcls";
    if filters.is_empty() {
        return Ok(0);
    }
    let request = DeleteAclsRequest::default().with_filters(
        filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type.code())
                    .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
                    .with_pattern_type_filter(f.pattern_type.code())
                    .with_principal_filter(f.principal.as_deref().map(str_bytes))
                    .with_host_filter(f.host.as_deref().map(str_bytes))
                    .with_operation(f.operation.code())
                    .with_permission_type(f.permission.code())
            })
            .collect(),
    );
    let response = conn.send(API, &request).await?;
    let mut deleted = 0;
    for (f, r) in filters.iter().zip(&response.filter_results) {
        let label = filter_label(f);
        check(API, &label, r.error_code, r.error_message.as_ref())?;
        for m in &r.matching_acls {
            check(API, &label, m.error_code, m.error_message.as_ref())?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The quotas of entity `user=<user>` exactly (`strict`: not entities that also name a
/// client id).
pub(super) async fn describe_user_quotas(
    conn: &mut Connection,
    user: &str,
) -> Result<QuotaValues, KafkaError> {
    const API: &str = "DescribeClientQuotas";
    let request = DescribeClientQuotasRequest::default()
        .with_components(vec![ComponentData::default()
            .with_entity_type(str_bytes(ENTITY_USER))
            .with_match_type(MATCH_EXACT)
            .with_match(Some(str_bytes(user)))])
        .with_strict(true);
    let response = conn.send(API, &request).await?;
    check(
        API,
        user,
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let mut out = QuotaValues::new();
    for entry in response.entries.iter().flatten() {
        let this_user = matches!(entry.entity.as_slice(),
            [e] if e.entity_type.as_str() == ENTITY_USER
                && e.entity_name.as_ref().is_some_and(|n| n.as_str() == user));
        if this_user {
            out.extend(entry.values.iter().map(|v| (v.key.to_string(), v.value)));
        }
    }
    Ok(out)
}

/// Sets `set` and removes `remove` on entity `user=<user>`.
pub(super) async fn alter_user_quotas(
    conn: &mut Connection,
    user: &str,
    set: &QuotaValues,
    remove: &[String],
) -> Result<(), KafkaError> {
    const API: &str = "AlterClientQuotas";
    let mut ops: Vec<OpData> = set
        .iter()
        .map(|(k, v)| OpData::default().with_key(str_bytes(k)).with_value(*v))
        .collect();
    ops.extend(
        remove
            .iter()
            .map(|k| OpData::default().with_key(str_bytes(k)).with_remove(true)),
    );
    if ops.is_empty() {
        return Ok(());
    }
    let request = AlterClientQuotasRequest::default().with_entries(vec![AlterEntry::default()
        .with_entity(vec![AlterEntity::default()
            .with_entity_type(str_bytes(ENTITY_USER))
            .with_entity_name(Some(str_bytes(user)))])
        .with_ops(ops)]);
    let response = conn.send(API, &request).await?;
    for e in &response.entries {
        check(API, user, e.error_code, e.error_message.as_ref())?;
    }
    Ok(())
}

/// An ACL from a DescribeAcls answer; codes Kafka does not define are a protocol error.
#[allow(clippy::too_many_arguments)]
fn binding(
    api: &'static str,
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, KafkaError> {
    let unknown =
        |what: &str, code: i8| KafkaError::Protocol(format!("{api}: unknown {what} {code}"));
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type", resource_type))?,
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown("pattern type", pattern_type))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_code(operation)
            .ok_or_else(|| unknown("operation", operation))?,
        permission: Permission::from_code(permission)
            .ok_or_else(|| unknown("permission", permission))?,
    })
}

/// `User:alice Allow Read on Topic orders (Literal) from *`, for error messages.
pub fn binding_label(b: &AclBinding) -> String {
    format!(
        "{} {:?} {:?} on {:?} {} ({:?}) from {}",
        b.principal,
        b.permission,
        b.operation,
        b.resource_type,
        b.resource_name,
        b.pattern_type,
        b.host
    )
}

fn filter_label(f: &AclFilter) -> String {
    format!(
        "ACLs of {}",
        f.principal.as_deref().unwrap_or("any principal")
    )
}
