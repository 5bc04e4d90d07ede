//! KIP-890 part 1, on the partition leader: before a transactional batch opens a transaction
//! on a partition, the leader asks the transaction coordinator whether the producer added
//! that partition to its ongoing transaction (AddPartitionsToTxn v4 `verify_only`, in process
//! when this broker is the coordinator). A batch of a transaction that already ended, or one
//! that was never added, would otherwise open a transaction nobody ends ("hanging"), holding
//! back the last stable offset for read_committed consumers.
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TransactionalId,
};

use crate::cluster::broker_rpc::{endpoint, Call};
use crate::context::{str_bytes, topic_name, Context};
use crate::coordinator::partition_for;
use crate::txn::TXN_TOPIC;

/// The first AddPartitionsToTxn version with `verify_only` (brokers only).
const VERIFY_VERSION: i16 = 4;

/// The producer a transactional batch comes from.
#[derive(Debug, Clone, Copy)]
pub struct TxnProducer<'a> {
    pub txn_id: &'a str,
    pub producer_id: i64,
    pub epoch: i16,
}

/// For each of `partitions`: is it in the producer's ongoing transaction? An error applies
/// to all of them; [`is_transient`] tells coordinator trouble from fencing or unknown ids.
pub async fn verify(
    ctx: &Context,
    producer: TxnProducer<'_>,
    partitions: &[(String, i32)],
) -> Result<Vec<bool>, ResponseError> {
    let TxnProducer {
        txn_id,
        producer_id,
        epoch,
    } = producer;
    let local = ctx
        .txn
        .verify_partitions(txn_id, producer_id, epoch, partitions);
    match local {
        Err(ResponseError::NotCoordinator) => remote(ctx, producer, partitions).await,
        other => other,
    }
}

/// A verification error worth retrying: the coordinator is moving, loading or busy, or
/// could not be reached. Kafka answers these as an error each API's older clients retry
/// (Produce: NOT_ENOUGH_REPLICAS; TxnOffsetCommit: COORDINATOR_LOAD_IN_PROGRESS).
pub fn is_transient(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
            | ResponseError::NetworkException
    )
}

/// Verifies one partition: `Ok(())`, INVALID_TXN_STATE if it is not in the transaction, or
/// the coordinator's error.
pub async fn verify_one(
    ctx: &Context,
    producer: TxnProducer<'_>,
    partition: (String, i32),
) -> Result<(), ResponseError> {
    match verify(ctx, producer, &[partition]).await?.first() {
        Some(true) => Ok(()),
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// Asks the coordinator on another broker.
async fn remote(
    ctx: &Context,
    producer: TxnProducer<'_>,
    partitions: &[(String, i32)],
) -> Result<Vec<bool>, ResponseError> {
    let q = ctx.registry.quorum();
    let md = q.metadata();
    let count = md
        .topics
        .get(TXN_TOPIC)
        .map(|t| t.partitions.len())
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let index = partition_for(producer.txn_id, i32::try_from(count).unwrap_or(i32::MAX));
    let leader = usize::try_from(index)
        .ok()
        .and_then(|i| md.partition(TXN_TOPIC, i))
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let ep = endpoint(&md, leader).ok_or(ResponseError::CoordinatorNotAvailable)?;
    let request = request(producer, partitions);
    let call = Call::new(
        ApiKey::AddPartitionsToTxn,
        VERIFY_VERSION,
        "spate-txn-verifier",
    );
    // The coordinator answers from memory. One that does not answer within a broker session
    // is cut off or gone, and fenced by then: give the client a retriable error rather than
    // hold its produce request longer.
    let session = Duration::from_millis(ctx.config.broker_session_timeout_ms);
    let call = Call {
        timeout: call.timeout.min(session),
        ..call
    };
    let response: AddPartitionsToTxnResponse = call
        .once(&ctx.registry.connector, &ep, &request)
        .await
        .map_err(|e| {
            tracing::debug!(coordinator = leader, "transaction verification failed: {e}");
            ResponseError::NetworkException
        })?;
    if let Some(e) = ResponseError::try_from_code(response.error_code) {
        return Err(e);
    }
    let results = response
        .results_by_transaction
        .first()
        .ok_or(ResponseError::UnknownServerError)?;
    partitions
        .iter()
        .map(|(t, p)| {
            let code = results
                .topic_results
                .iter()
                .filter(|r| r.name.as_str() == t.as_str())
                .flat_map(|r| r.results_by_partition.iter())
                .find(|r| r.partition_index == *p)
                .map(|r| r.partition_error_code)
                .ok_or(ResponseError::UnknownServerError)?;
            match ResponseError::try_from_code(code) {
                None => Ok(true),
                Some(ResponseError::InvalidTxnState) => Ok(false),
                Some(e) => Err(e),
            }
        })
        .collect()
}

fn request(producer: TxnProducer<'_>, partitions: &[(String, i32)]) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in partitions {
        match topics.iter_mut().find(|x| x.name.as_str() == t.as_str()) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(str_bytes(producer.txn_id)))
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.epoch)
            .with_verify_only(true)
            .with_topics(topics),
    ])
}
