//! Heartbeat: keeps a member's session alive and tells it when to rejoin.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::Context;
use crate::security::RequestContext;

/// Needs READ on the group (else GROUP_AUTHORIZATION_FAILED), as in Kafka.
pub fn handle(ctx: &Context, rc: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = ctx.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
