//! DescribeAcls (29), CreateAcls (30), DeleteAcls (31), as Kafka's `AclApis`: DESCRIBE on the
//! cluster to list, ALTER to change; SECURITY_DISABLED without an authorizer.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::acl::{
    validate_binding, AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
    CLUSTER_NAME,
};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Why the ACL APIs refuse the whole request: no authorizer, or `op` on the cluster denied.
fn refusal(
    ctx: &Context,
    rc: &RequestContext,
    op: Operation,
) -> Option<(ResponseError, &'static str)> {
    if !ctx.authz.enabled() {
        return Some((ResponseError::SecurityDisabled, NO_AUTHORIZER));
    }
    (!ctx
        .authz
        .allows(rc, op, ResourceType::Cluster, CLUSTER_NAME))
    .then_some((ResponseError::ClusterAuthorizationFailed, ""))
}

fn filter(
    rt: i8,
    name: Option<&StrBytes>,
    pt: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: ResourceType::from_code(rt).ok_or("Invalid resource type filter")?,
        resource_name: name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pt).ok_or("Invalid pattern type filter")?,
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: Operation::from_code(op).ok_or("Invalid operation filter")?,
        permission: Permission::from_code(perm).ok_or("Invalid permission type filter")?,
    })
}

pub fn describe(
    ctx: &Context,
    rc: &RequestContext,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |code: ResponseError, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = refusal(ctx, rc, Operation::Describe) {
        return failed(code, message);
    }
    let f = match filter(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return failed(ResponseError::InvalidRequest, &e),
    };
    let md = ctx.registry.quorum().metadata();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for a in md.acls.iter().filter(|a| f.matches(a)) {
        let entry = AclDescription::default()
            .with_principal(str_bytes(a.principal.clone()))
            .with_host(str_bytes(a.host.clone()))
            .with_operation(a.operation.code())
            .with_permission_type(a.permission.code());
        // The set is ordered by resource first, so one resource's ACLs are adjacent.
        match resources.last_mut() {
            Some(r)
                if r.resource_type == a.resource_type.code()
                    && r.resource_name.as_str() == a.resource_name
                    && r.pattern_type == a.pattern_type.code() =>
            {
                r.acls.push(entry)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(str_bytes(a.resource_name.clone()))
                    .with_pattern_type(a.pattern_type.code())
                    .with_acls(vec![entry]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn create(
    ctx: &Context,
    rc: &RequestContext,
    r: CreateAclsRequest,
) -> CreateAclsResponse {
    let all = |code: ResponseError, message: &str| {
        let result = AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
        CreateAclsResponse::default().with_results(vec![result; r.creations.len()])
    };
    if let Some((code, message)) = refusal(ctx, rc, Operation::Alter) {
        return all(code, message);
    }
    let checked: Vec<Result<AclBinding, String>> = r
        .creations
        .iter()
        .map(|c| {
            let b = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or("Invalid resource type")?,
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or("Invalid pattern type")?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: Operation::from_code(c.operation).ok_or("Invalid operation")?,
                permission: Permission::from_code(c.permission_type)
                    .ok_or("Invalid permission type")?,
            };
            validate_binding(&b)?;
            Ok(b)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = ctx.registry.admin_create_acls(valid).await;
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(m), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(m))),
            (Ok(_), Err(e)) => AclCreationResult::default()
                .with_error_code(e.code.code())
                .with_error_message(Some(str_bytes(e.message.clone()))),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn delete(
    ctx: &Context,
    rc: &RequestContext,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let all = |code: ResponseError, message: &str| {
        let result = DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
        DeleteAclsResponse::default().with_filter_results(vec![result; r.filters.len()])
    };
    if let Some((code, message)) = refusal(ctx, rc, Operation::Alter) {
        return all(code, message);
    }
    let parsed: Vec<Result<AclFilter, String>> = r
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
    let mut deleted = match ctx.registry.admin_delete_acls(valid).await {
        Ok(d) => d.into_iter(),
        Err(e) => return all(e.code, &e.message),
    };
    let results = parsed
        .into_iter()
        .map(|f| match f {
            Err(m) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(m))),
            Ok(_) => DeleteAclsFilterResult::default().with_matching_acls(
                deleted
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(str_bytes(a.resource_name))
                            .with_pattern_type(a.pattern_type.code())
                            .with_principal(str_bytes(a.principal))
                            .with_host(str_bytes(a.host))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
