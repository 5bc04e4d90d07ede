//! Producer id blocks for idempotent and transactional producers (KIP-730): each broker takes a
//! block and hands ids out locally, so the quorum sees one request per block, not per producer.

use super::{MetaResponse, RequestError};
use crate::state_machine::ClusterMetadata;

/// Largest block one request may take; keeps a buggy caller from draining the id space.
pub const MAX_BLOCK: i32 = 1_000_000;

pub(super) fn allocate(
    md: &mut ClusterMetadata,
    broker: i32,
    count: i32,
) -> Result<MetaResponse, RequestError> {
    if !md.brokers.contains_key(&broker) {
        return Err(RequestError::UnknownBroker(broker));
    }
    if !(1..=MAX_BLOCK).contains(&count) {
        return Err(RequestError::InvalidProducerIdRequest(format!(
            "block size {count} is not in 1..={MAX_BLOCK}"
        )));
    }
    let start = md.next_producer_id_block;
    md.next_producer_id_block = start
        .checked_add(i64::from(count))
        .ok_or(RequestError::ProducerIdsExhausted)?;
    Ok(MetaResponse::ProducerIds { start, count })
}
