//! WriteTxnMarkers (API 27): a transaction coordinator on another broker asks this partition
//! leader to write commit/abort markers, answered once its in-sync replicas have them.
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::context::Context;
use crate::producer::Marker;
use crate::txn::markers::write_local;

pub async fn handle(ctx: &Context, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut waits = Vec::new();
    let mut markers: Vec<WritableTxnMarkerResult> = req
        .markers
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let marker = if m.transaction_result {
                Marker::Commit
            } else {
                Marker::Abort
            };
            let topics = m
                .topics
                .iter()
                .enumerate()
                .map(|(ti, t)| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .enumerate()
                        .map(|(pi, p)| {
                            let written = write_local(
                                &ctx.registry,
                                &ctx.groups,
                                t.name.as_str(),
                                *p,
                                m.producer_id.0,
                                m.producer_epoch,
                                marker,
                                m.coordinator_epoch,
                            );
                            let code = match written {
                                Ok(Some(pending)) => {
                                    waits.push(((mi, ti, pi), pending));
                                    0
                                }
                                Ok(None) => 0,
                                Err(e) => e.code(),
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    // Answered once the markers are replicated (Kafka appends them with acks=all).
    for ((mi, ti, pi), pending) in waits {
        if let Err(e) = pending.wait().await {
            markers[mi].topics[ti].partitions[pi].error_code = e.code();
        }
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
