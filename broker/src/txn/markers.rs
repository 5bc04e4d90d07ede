//! Transaction markers: the commit or abort control batch the coordinator writes to every
//! partition of a transaction (`WriteTxnMarkers` semantics). Partitions this broker leads are
//! written in process; the others get a WriteTxnMarkers request (API 27) at
//! their leader, which runs `write_local` there.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use crate::cluster::broker_rpc::{endpoint, Call, RpcError};
use crate::cluster::Registry;
use crate::context::{now_ms, topic_name};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::producer::Marker;
use crate::replication::wait::Unreplicated;

/// The WriteTxnMarkers version brokers send each other (v1: flexible).
const MARKERS_VERSION: i16 = 1;

/// Writes one marker to a partition this broker leads. A marker on `__consumer_offsets`
/// also settles the producer's pending transactional offset commits there. With followers,
/// returns the append to wait for before the marker counts as written.
#[allow(clippy::too_many_arguments)]
pub fn write_local(
    registry: &Registry,
    groups: &GroupCoordinator,
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
) -> Result<Option<Unreplicated>, ResponseError> {
    registry.leader_check(topic, partition)?;
    let p = registry
        .topic(topic)
        .and_then(|t| t.partition(partition).cloned())
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let appended = p
        .append_marker(
            producer_id,
            producer_epoch,
            marker,
            coordinator_epoch,
            now_ms(),
        )
        .map_err(|e| {
            tracing::debug!(topic, partition, producer_id, "marker refused: {e}");
            e.code
        })?;
    registry.notify_append();
    if topic == OFFSETS_TOPIC {
        groups.complete_txn(partition, producer_id, marker == Marker::Commit);
    }
    Ok(Unreplicated::after_append(&p, appended.last_offset))
}

/// Did a marker attempt settle the partition? Deleted topics and markers superseded by a
/// newer producer epoch need nothing more.
fn settled<T>(r: &Result<T, ResponseError>) -> bool {
    matches!(
        r,
        Ok(_)
            | Err(ResponseError::UnknownTopicOrPartition)
            | Err(ResponseError::InvalidProducerEpoch)
    )
}

/// Writes the marker to every partition; returns those not written yet.
pub async fn write_markers(
    registry: &Arc<Registry>,
    groups: &GroupCoordinator,
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    partitions: &BTreeSet<(String, i32)>,
) -> BTreeSet<(String, i32)> {
    let mut remaining = BTreeSet::new();
    // Partitions led elsewhere, by leader.
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut unreplicated = Vec::new();
    for (topic, partition) in partitions {
        let r = write_local(
            registry,
            groups,
            topic,
            *partition,
            producer_id,
            producer_epoch,
            marker,
            coordinator_epoch,
        );
        match r {
            Ok(Some(pending)) => {
                unreplicated.push(((topic.clone(), *partition), pending));
                continue;
            }
            ref r if settled(r) => continue,
            _ => {}
        }
        let leader = {
            let q = registry.quorum();
            let md = q.metadata();
            usize::try_from(*partition)
                .ok()
                .and_then(|i| md.partition(topic, i))
                .map(|s| s.leader)
                .filter(|l| *l >= 0 && *l != q.broker_id)
        };
        match leader {
            Some(l) => remote
                .entry(l)
                .or_default()
                .push((topic.clone(), *partition)),
            None => {
                tracing::debug!(
                    topic,
                    partition,
                    "no leader for a transaction marker: {:?}",
                    r.err()
                );
                remaining.insert((topic.clone(), *partition));
            }
        }
    }
    for (leader, parts) in remote {
        let request = marker_request(
            producer_id,
            producer_epoch,
            marker,
            coordinator_epoch,
            &parts,
        );
        let ep = endpoint(&registry.quorum().metadata(), leader);
        let result = match ep {
            Some(ep) => call(&registry.connector, &ep, &request).await,
            None => Err(RpcError::NoEndpoint(leader)),
        };
        match result {
            Ok(resp) => {
                let mut ok: BTreeSet<(String, i32)> = BTreeSet::new();
                for m in &resp.markers {
                    for t in &m.topics {
                        for p in &t.partitions {
                            let r = match ResponseError::try_from_code(p.error_code) {
                                None => Ok(()),
                                Some(e) => Err(e),
                            };
                            if settled(&r) {
                                ok.insert((t.name.to_string(), p.partition_index));
                            }
                        }
                    }
                }
                remaining.extend(parts.into_iter().filter(|p| !ok.contains(p)));
            }
            Err(e) => {
                tracing::debug!(leader, "WriteTxnMarkers failed: {e}");
                remaining.extend(parts);
            }
        }
    }
    for (tp, pending) in unreplicated {
        if let Err(e) = pending.wait().await {
            tracing::debug!(topic = %tp.0, partition = tp.1, "marker not replicated: {e:?}");
            remaining.insert(tp);
        }
    }
    remaining
}

fn marker_request(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    parts: &[(String, i32)],
) -> WriteTxnMarkersRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            WritableTxnMarkerTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(ps)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_result(marker == Marker::Commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(topics)])
}

/// One WriteTxnMarkers round trip on a fresh connection (markers are rare: once per
/// transaction per remote leader).
async fn call(
    connector: &crate::cluster::broker_conn::Connector,
    ep: &(String, u16),
    request: &WriteTxnMarkersRequest,
) -> Result<WriteTxnMarkersResponse, RpcError> {
    Call::new(
        ApiKey::WriteTxnMarkers,
        MARKERS_VERSION,
        "spate-txn-coordinator",
    )
    .once(connector, ep, request)
    .await
}
