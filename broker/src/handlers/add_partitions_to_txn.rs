//! AddPartitionsToTxn: a transactional producer names the partitions it is about to write,
//! so the coordinator knows where the markers go. v0-v3 carry one transaction; v4+ (KIP-890,
//! broker to coordinator) batch several and may only verify (`verify_only`).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use crate::context::{topic_name, Context};
use crate::handlers::txn_common::{fenced_error, partition_exists};

/// v4 moved the fields into `transactions`.
const BATCHED_VERSION: i16 = 4;

pub async fn handle(
    ctx: &Context,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version < BATCHED_VERSION {
        let results = one(
            ctx,
            version,
            req.v3_and_below_transactional_id.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let topics = one(
            ctx,
            version,
            t.transactional_id.as_str(),
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

async fn one(
    ctx: &Context,
    version: i16,
    id: &str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    // Unknown partitions fail the request; the others were not attempted (Kafka's answer).
    let unknown: Vec<bool> = wanted
        .iter()
        .map(|(t, p)| !partition_exists(ctx, t, *p))
        .collect();
    let codes: Vec<Option<ResponseError>> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                Some(if *u {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                })
            })
            .collect()
    } else if verify_only {
        match ctx.txn.verify_partitions(id, producer_id, epoch, &wanted) {
            Ok(found) => found
                .into_iter()
                .map(|ok| (!ok).then_some(ResponseError::InvalidTxnState))
                .collect(),
            Err(e) => vec![Some(fenced_error(e, version, 2)); wanted.len()],
        }
    } else {
        match ctx
            .txn
            .add_partitions(id, producer_id, epoch, &wanted)
            .await
        {
            Ok(()) => vec![None; wanted.len()],
            Err(e) => vec![Some(fenced_error(e, version, 2)); wanted.len()],
        }
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    let code = codes.next().flatten().map_or(0, |c| c.code());
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic_name(t.name.to_string()))
                .with_results_by_partition(results)
        })
        .collect()
}
