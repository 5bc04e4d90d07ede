//! Heartbeat: keeps a member's session alive and tells it when to rejoin.
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::context::Context;

pub fn handle(ctx: &Context, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = ctx.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
