//! What the transaction APIs share: error mapping for older versions and partition checks.
use kafka_protocol::error::ResponseError;

use crate::context::Context;

/// PRODUCER_FENCED (KIP-588) is only understood from `since` on; older versions of the same
/// API get INVALID_PRODUCER_EPOCH, as Kafka answers them.
pub fn fenced_error(e: ResponseError, version: i16, since: i16) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// Does `topic`-`partition` exist (anywhere in the cluster)?
pub fn partition_exists(ctx: &Context, topic: &str, partition: i32) -> bool {
    usize::try_from(partition).ok().is_some_and(|i| {
        ctx.registry
            .quorum()
            .metadata()
            .partition(topic, i)
            .is_some()
    })
}

/// The checks AddOffsetsToTxn and TxnOffsetCommit share: WRITE on the transactional id, then
/// READ on the group; the first refusal's error.
pub fn txn_group_refusal(
    ctx: &crate::context::Context,
    rc: &crate::security::RequestContext,
    transactional_id: &str,
    group: &str,
) -> Option<kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    use spate_auth::acl::{Operation, ResourceType};
    if !ctx.authz.allows(
        rc,
        Operation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx
        .authz
        .allows(rc, Operation::Read, ResourceType::Group, group)
    {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    }
}
