//! SyncGroup: the leader hands out assignments; everyone receives theirs.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::{str_bytes, Context};
use crate::security::RequestContext;

/// Needs READ on the group (else GROUP_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let out = ctx
        .groups
        .sync(
            &req.group_id,
            &req.member_id,
            instance.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    // v5: the client names the protocol it expects; a mismatch means it joined elsewhere.
    let mismatch = |asked: &Option<kafka_protocol::protocol::StrBytes>, have: &Option<String>| matches!((asked, have), (Some(a), Some(h)) if a.as_str() != h);
    if out.error.is_none()
        && (mismatch(&req.protocol_type, &out.protocol_type)
            || mismatch(&req.protocol_name, &out.protocol))
    {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code());
    }
    SyncGroupResponse::default()
        .with_error_code(out.error.map_or(0, |e| e.code()))
        .with_protocol_type(out.protocol_type.map(str_bytes))
        .with_protocol_name(out.protocol.map(str_bytes))
        .with_assignment(out.assignment)
}
