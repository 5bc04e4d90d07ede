//! InitProducerId: hand a producer its id. Without a transactional id the producer is only
//! idempotent and gets a fresh id (Java clients since 3.0 and franz-go are idempotent by
//! default and cannot produce without it). With one, the transaction coordinator allocates
//! the id once and bumps its epoch on every call, fencing older instances and aborting a
//! transaction they left open.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::context::Context;
use crate::handlers::txn_common::fenced_error;
use crate::security::RequestContext;

/// Needs WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without
/// one, IDEMPOTENT_WRITE on the cluster or WRITE on some topic (else
/// CLUSTER_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        if !ctx.authz.allows(
            rc,
            Operation::Write,
            ResourceType::TransactionalId,
            id.as_str(),
        ) {
            return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        // KIP-360: a client re-initializing names the producer id and epoch it had.
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        return match ctx
            .txn
            .init_producer_id(id.as_str(), req.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => resp
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => resp.with_error_code(fenced_error(e, version, 4).code()),
        };
    }
    // Kafka does not log the first refusal: WRITE on any topic is enough.
    let idempotent = ctx.authz.sees(
        rc,
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || ctx
        .authz
        .allows_any(rc, Operation::Write, ResourceType::Topic);
    if !idempotent {
        return resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    match ctx.registry.admin_allocate_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("allocating a producer id: {e}");
            resp.with_error_code(e.code.code())
        }
    }
}
