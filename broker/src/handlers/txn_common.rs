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
