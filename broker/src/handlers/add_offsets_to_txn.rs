//! AddOffsetsToTxn: the transaction will commit offsets of a group, so the group's
//! `__consumer_offsets` partition joins the transaction (it gets the marker too).
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::context::Context;
use crate::handlers::txn_common::fenced_error;

pub async fn handle(
    ctx: &Context,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let partition = ctx.txn.offsets_partition(req.group_id.as_str());
    let code = match ctx
        .txn
        .add_partitions(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &[partition],
        )
        .await
    {
        Ok(()) => 0,
        Err(e) => fenced_error(e, version, 2).code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
