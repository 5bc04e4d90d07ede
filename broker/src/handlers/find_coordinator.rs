//! FindCoordinator: this broker coordinates every group (and, later, every transaction).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::{str_bytes, Context};

const KEY_GROUP: i8 = 0;

pub fn handle(ctx: &Context, version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let answer = |key: StrBytes| -> Coordinator {
        let c = Coordinator::default().with_key(key);
        if req.key_type != KEY_GROUP {
            return c
                .with_node_id(kafka_protocol::messages::BrokerId(-1))
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("transactions are not supported yet")));
        }
        c.with_node_id(ctx.node_id())
            .with_host(str_bytes(ctx.advertised_host.clone()))
            .with_port(ctx.advertised_port as i32)
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.into_iter().map(answer).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = answer(req.key);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
