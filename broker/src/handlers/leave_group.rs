//! LeaveGroup: one member (v0-2) or a batch of them by member or instance id (v3+).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::Context;
use crate::security::RequestContext;

/// Needs READ on the group (else a top-level GROUP_AUTHORIZATION_FAILED), as in Kafka.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if version < 3 {
        let result = ctx.groups.leave(&req.group_id, &req.member_id, None);
        return LeaveGroupResponse::default().with_error_code(result.err().map_or(0, |e| e.code()));
    }
    let members = req
        .members
        .into_iter()
        .map(|m| {
            let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
            let result = ctx
                .groups
                .leave(&req.group_id, &m.member_id, instance.as_deref());
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(result.err().map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
