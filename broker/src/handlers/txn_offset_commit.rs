//! TxnOffsetCommit: offsets committed inside a transaction. Stored at once (as
//! transactional records in `__consumer_offsets`, acknowledged once replicated) but visible to
//! OffsetFetch only after the transaction commits; dropped if it aborts.
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::context::{now_ms, Context};
use crate::group::codec::OffsetValue;
use crate::group::coordinator::COMMIT_TIMEOUT;
use crate::handlers::txn_common::fenced_error;
use crate::security::RequestContext;
use crate::txn::verify::{is_transient, verify_one, TxnProducer};
use kafka_protocol::error::ResponseError;
use spate_auth::acl::{Operation, ResourceType};
use tokio::time::Instant;

/// Needs WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on
/// the group (else GROUP_AUTHORIZATION_FAILED), both for every partition, and READ on each
/// topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let whole = super::txn_common::txn_group_refusal(
        ctx,
        rc,
        req.transactional_id.as_str(),
        req.group_id.as_str(),
    );
    // Per topic in the request: the error all its partitions get, if refused.
    let refused: Vec<Option<ResponseError>> = req
        .topics
        .iter()
        .map(|t| {
            whole.or_else(|| {
                (!ctx
                    .authz
                    .allows(rc, Operation::Read, ResourceType::Topic, t.name.as_str()))
                .then_some(ResponseError::TopicAuthorizationFailed)
            })
        })
        .collect();
    let now = now_ms();
    let mut flat = Vec::new();
    for (t, _) in req.topics.iter().zip(&refused).filter(|(_, r)| r.is_none()) {
        for p in &t.partitions {
            flat.push((
                t.name.to_string(),
                p.partition_index,
                OffsetValue::committed(
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_deref(),
                    now,
                ),
            ));
        }
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    // Kafka commits nothing (nor verifies) when every topic is refused.
    let (mut results, pending) = if flat.is_empty() && refused.iter().any(Option::is_some) {
        (Vec::new(), None)
    } else {
        match verify(ctx, &req).await {
            Ok(verification) => ctx.groups.txn_commit(
                req.group_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                req.generation_id,
                req.member_id.as_str(),
                instance.as_deref(),
                flat,
                verification,
            ),
            Err(e) => (vec![Err(e); flat.len()], None),
        }
    };
    if let Some(pending) = pending {
        if let Err(e) = pending.wait(Instant::now() + COMMIT_TIMEOUT).await {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e);
            }
        }
    }
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(refused)
        .map(|(t, refused)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match refused {
                        Some(e) => e.code(),
                        None => results
                            .next()
                            .and_then(|r| r.err())
                            .map_or(0, |e| fenced_error(e, version, 3).code()),
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// KIP-890 part 1 for offsets: before these offsets open a transaction on the group's
/// `__consumer_offsets` partition, the coordinator must confirm the partition is in the
/// producer's transaction (AddOffsetsToTxn added it). Returns the guard to write under.
async fn verify(ctx: &Context, req: &TxnOffsetCommitRequest) -> Result<Option<u64>, ResponseError> {
    if !ctx.txn.config().partition_verification {
        return Ok(None);
    }
    let (topic, index) = ctx.txn.offsets_partition(req.group_id.as_str());
    let led = ctx.registry.leader_check(&topic, index).is_ok();
    let Some(p) = ctx
        .registry
        .topic(&topic)
        .and_then(|t| t.partition(index).cloned())
        .filter(|_| led)
    else {
        // Not the coordinator: txn_commit answers for it.
        return Ok(None);
    };
    let (producer_id, epoch) = (req.producer_id.0, req.producer_epoch);
    let Some(guard) = p
        .start_producer_verification(producer_id, epoch)
        .map_err(|e| e.code)?
    else {
        return Ok(None);
    };
    let producer = TxnProducer {
        txn_id: req.transactional_id.as_str(),
        producer_id,
        epoch,
    };
    match verify_one(ctx, producer, (topic, index)).await {
        Ok(()) => Ok(Some(guard)),
        // Retried by every client without finding the coordinator again (KAFKA-16386).
        Err(e) if is_transient(e) => Err(ResponseError::CoordinatorLoadInProgress),
        Err(e) => Err(e),
    }
}
