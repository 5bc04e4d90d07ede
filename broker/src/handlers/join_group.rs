//! JoinGroup: the first half of the rebalance barrier.
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::{str_bytes, Context};
use crate::group::JoinRequest;
use crate::security::RequestContext;

/// Needs READ on the group (else GROUP_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    client_id: &str,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Read,
        ResourceType::Group,
        req.group_id.as_str(),
    ) {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_protocol_name((version < 7).then(|| str_bytes("")));
    }
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    // v0 had no rebalance timeout; Kafka uses the session timeout then.
    let rebalance = if version >= 1 {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", rc.peer.ip()),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let out = ctx.groups.join(&req.group_id, join).await;
    JoinGroupResponse::default()
        .with_error_code(out.error.map_or(0, |e| e.code()))
        .with_generation_id(out.generation)
        .with_protocol_type(out.protocol_type.map(str_bytes))
        .with_protocol_name(
            out.protocol
                .map(str_bytes)
                .or_else(|| (version < 7).then(|| str_bytes(""))),
        )
        .with_leader(str_bytes(out.leader))
        .with_member_id(str_bytes(out.member_id))
        .with_skip_assignment(version >= 9 && out.skip_assignment)
        .with_members(
            out.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}
