//! AddOffsetsToTxn: the transaction will commit offsets of a group, so the group's
//! `__consumer_offsets` partition joins the transaction (it gets the marker too).
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::context::Context;
use crate::handlers::txn_common::fenced_error;
use crate::security::RequestContext;

/// Needs WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then READ
/// on the group (else GROUP_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let refused = super::txn_common::txn_group_refusal(
        ctx,
        rc,
        req.transactional_id.as_str(),
        req.group_id.as_str(),
    );
    if let Some(e) = refused {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code());
    }
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
