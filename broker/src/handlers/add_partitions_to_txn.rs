//! AddPartitionsToTxn: a transactional producer names the partitions it is about to write,
//! so the coordinator knows where the markers go. v0-v3 carry one transaction; v4+ (KIP-890,
//! broker to coordinator) batch several and may only verify (`verify_only`).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::context::{topic_name, Context};
use crate::handlers::txn_common::{fenced_error, partition_exists};
use crate::security::RequestContext;
use crate::txn::verify::TxnProducer;

/// v4 moved the fields into `transactions`.
const BATCHED_VERSION: i16 = 4;

/// From clients (v0-3): needs WRITE on the transactional id (else every partition
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each topic (else its partitions
/// TOPIC_AUTHORIZATION_FAILED). From brokers (v4+): CLUSTER_ACTION on the cluster (else
/// CLUSTER_AUTHORIZATION_FAILED). As in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version < BATCHED_VERSION {
        let id = req.v3_and_below_transactional_id.as_str();
        let id_allowed = ctx
            .authz
            .allows(rc, Operation::Write, ResourceType::TransactionalId, id);
        let refused = |topic: &str| {
            if !id_allowed {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !ctx
                .authz
                .allows(rc, Operation::Write, ResourceType::Topic, topic)
            {
                Some(ResponseError::TopicAuthorizationFailed)
            } else {
                None
            }
        };
        let producer = TxnProducer {
            txn_id: id,
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
        };
        let results = one(
            ctx,
            version,
            producer,
            false,
            &req.v3_and_below_topics,
            &refused,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    if !ctx.authz.allows(
        rc,
        Operation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let producer = TxnProducer {
            txn_id: t.transactional_id.as_str(),
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
        };
        let topics = one(ctx, version, producer, t.verify_only, &t.topics, &|_| None).await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction's partitions; `refused` says why a topic may not be added, if it may not.
async fn one(
    ctx: &Context,
    version: i16,
    producer: TxnProducer<'_>,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    refused: &(dyn Fn(&str) -> Option<ResponseError> + Sync),
) -> Vec<AddPartitionsToTxnTopicResult> {
    let TxnProducer {
        txn_id: id,
        producer_id,
        epoch,
    } = producer;
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    // Refused or unknown partitions fail the request; the others were not attempted
    // (Kafka's answer).
    let failed: Vec<Option<ResponseError>> = topics
        .iter()
        .flat_map(|t| {
            let refused = refused(t.name.as_str());
            t.partitions.iter().map(move |p| {
                refused.or_else(|| {
                    (!partition_exists(ctx, t.name.as_str(), *p))
                        .then_some(ResponseError::UnknownTopicOrPartition)
                })
            })
        })
        .collect();
    let codes: Vec<Option<ResponseError>> = if failed.iter().any(Option::is_some) {
        failed
            .into_iter()
            .map(|f| Some(f.unwrap_or(ResponseError::OperationNotAttempted)))
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
