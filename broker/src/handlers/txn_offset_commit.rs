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
use tokio::time::Instant;

pub async fn handle(
    ctx: &Context,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let now = now_ms();
    let mut flat = Vec::new();
    for t in &req.topics {
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
    let (mut results, pending) = ctx.groups.txn_commit(
        req.group_id.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        req.generation_id,
        req.member_id.as_str(),
        instance.as_deref(),
        flat,
    );
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
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = results
                        .next()
                        .and_then(|r| r.err())
                        .map_or(0, |e| fenced_error(e, version, 3).code());
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
