//! ListGroups, DescribeGroups, DeleteGroups and OffsetDelete: what `kafka-consumer-groups`
//! uses.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::*;
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;

/// All groups with DESCRIBE on the cluster, else only those the client may DESCRIBE.
pub fn list(ctx: &Context, rc: &RequestContext, req: ListGroupsRequest) -> ListGroupsResponse {
    let all = ctx
        .authz
        .sees(rc, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .filter(|(id, ..)| {
            all || ctx
                .authz
                .sees(rc, Operation::Describe, ResourceType::Group, id)
        })
        .filter(|(_, _, state, _)| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|s| s.as_str().eq_ignore_ascii_case(state))
        })
        .filter(|(_, _, _, kind)| {
            req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.as_str().eq_ignore_ascii_case(kind))
        })
        .map(|(id, protocol_type, state, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED for it), as in Kafka.
pub fn describe(
    ctx: &Context,
    rc: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if !ctx
                .authz
                .allows(rc, Operation::Describe, ResourceType::Group, &id)
            {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Err(e) = ctx.groups.check_owner(&id) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(e.code());
            }
            let d = ctx.groups.describe(&id);
            let operations = if req.include_authorized_operations {
                ctx.authz.operations(rc, ResourceType::Group, &id)
            } else {
                i32::MIN
            };
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol))
                .with_authorized_operations(operations)
                .with_members(
                    d.members
                        .into_iter()
                        .map(|(member, instance, client, host, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(member))
                                .with_group_instance_id(instance.map(str_bytes))
                                .with_client_id(str_bytes(client))
                                .with_client_host(str_bytes(host))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// Needs DELETE on each group (else GROUP_AUTHORIZATION_FAILED for it), as in Kafka.
pub async fn delete(
    ctx: &Context,
    rc: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let code = if ctx
            .authz
            .allows(rc, Operation::Delete, ResourceType::Group, &id)
        {
            ctx.groups
                .delete_group(&id)
                .await
                .err()
                .map_or(0, |e| e.code())
        } else {
            ResponseError::GroupAuthorizationFailed.code()
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Needs DELETE on the group (else a top-level GROUP_AUTHORIZATION_FAILED) and READ on each
/// topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub async fn delete_offsets(
    ctx: &Context,
    rc: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Delete,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let allowed: Vec<bool> = req
        .topics
        .iter()
        .map(|t| {
            ctx.authz
                .allows(rc, Operation::Read, ResourceType::Topic, t.name.as_str())
        })
        .collect();
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&allowed)
        .filter(|(_, ok)| **ok)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let results = match ctx.groups.delete_offsets(&req.group_id, &wanted).await {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut results = results.into_iter();
    let topics = req
        .topics
        .into_iter()
        .zip(allowed)
        .map(|(t, ok)| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let code = if ok {
                        results.next().and_then(|r| r.err()).map_or(0, |e| e.code())
                    } else {
                        ResponseError::TopicAuthorizationFailed.code()
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
