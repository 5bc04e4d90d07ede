//! InitProducerId: hand an idempotent producer its id. Java clients since 3.0 and franz-go
//! are idempotent by default and cannot produce without it.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::context::Context;

pub async fn handle(ctx: &Context, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which this broker does not run yet.
        return resp.with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    match ctx.registry.admin_allocate_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("allocating a producer id: {e}");
            resp.with_error_code(e.code.code())
        }
    }
}
