//! EndTxn: commit or abort. Answered once the decision is durable in `__transaction_state`
//! and (normally) the markers are written; see `txn/coordinator.rs`.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::Context;
use crate::handlers::txn_common::fenced_error;
use crate::security::RequestContext;

/// Needs WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in
/// Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: EndTxnRequest,
) -> EndTxnResponse {
    if !ctx.authz.allows(
        rc,
        Operation::Write,
        ResourceType::TransactionalId,
        req.transactional_id.as_str(),
    ) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let code = match ctx
        .txn
        .end_txn(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        )
        .await
    {
        Ok(()) => 0,
        Err(e) => fenced_error(e, version, 2).code(),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch)
}
