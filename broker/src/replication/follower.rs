//! Follower side: one fetcher task per leader broker fetches every partition this broker
//! follows from it, appends what comes back, takes the leader's high watermark, and truncates
//! on a diverging epoch or OFFSET_OUT_OF_RANGE.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use spate_meta::NO_LEADER;
use tokio::sync::watch;
use tracing::field::Empty;
use tracing::Instrument;
use uuid::Uuid;

use super::throttle;
use crate::cluster::broker_conn::{BrokerStream, Connector};
use crate::cluster::broker_rpc::{endpoint, Call, RpcError};
use crate::cluster::{Partition, Registry};
use crate::protocol::request::TRACEPARENT_TAG;
use crate::trace_context::{self, TRACE_TARGET};

/// Fetch version followers speak: topic ids, `ReplicaState`, `LastFetchedEpoch`.
const FETCH_VERSION: i16 = 15;
/// How long a follower fetch may wait on the leader for new data.
pub(super) const FETCH_MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const FETCH_MAX_BYTES: i32 = 16 << 20;
/// Pause after a failed round (connection refused, stale epoch, leader elsewhere).
const BACKOFF: Duration = Duration::from_millis(200);
/// How long connecting to a leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response frame a follower accepts.
const MAX_FRAME: usize = 128 << 20;

/// A partition this broker follows.
pub(super) struct Followed {
    topic: String,
    topic_id: Uuid,
    leader_epoch: i32,
    replica: Arc<Partition>,
    /// Listed for this broker in `follower.replication.throttled.replicas` while out of the
    /// ISR: its fetches count against `follower.replication.throttled.rate`.
    throttled: bool,
}

/// Partitions this broker hosts but does not lead, by leader broker.
pub(super) fn followed(registry: &Registry) -> BTreeMap<i32, Vec<Followed>> {
    let mut out: BTreeMap<i32, Vec<Followed>> = BTreeMap::new();
    let q = registry.quorum();
    let me = q.broker_id;
    let md = q.metadata();
    for t in registry.topics() {
        for p in &t.partitions {
            let Some(state) = usize::try_from(p.index)
                .ok()
                .and_then(|i| md.partition(&t.meta.name, i))
            else {
                continue;
            };
            if state.leader == me || state.leader == NO_LEADER || !state.replicas.contains(&me) {
                continue;
            }
            let throttled = !state.isr.contains(&me)
                && md.topics.get(&t.meta.name).is_some_and(|tm| {
                    throttle::throttled(&tm.configs, throttle::FOLLOWER_REPLICAS, p.index, me)
                });
            out.entry(state.leader).or_default().push(Followed {
                topic: t.meta.name.clone(),
                topic_id: t.meta.id,
                leader_epoch: state.leader_epoch,
                replica: p.clone(),
                throttled,
            });
        }
    }
    out
}

/// A connection to a leader's Kafka listener.
struct Conn {
    endpoint: (String, u16),
    stream: BrokerStream,
    correlation_id: i32,
}

/// One follower fetcher: fetches every partition led by `leader` that this broker follows.
pub(super) async fn fetch_from(
    registry: Arc<Registry>,
    leader: i32,
    mut shutdown: watch::Receiver<bool>,
) {
    let q = registry.quorum().clone();
    let me = q.broker_id;
    let mut conn: Option<Conn> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let ok = match round(&registry, leader, me, &mut conn).await {
            Ok(clean) => clean,
            Err(e) => {
                tracing::debug!(leader, "follower fetch failed: {e}");
                conn = None;
                false
            }
        };
        if !ok {
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// One fetch round trip. `Ok(false)` when nothing useful happened (back off).
async fn round(
    registry: &Registry,
    leader: i32,
    me: i32,
    conn: &mut Option<Conn>,
) -> Result<bool, RpcError> {
    let q = registry.quorum();
    let parts = followed(registry).remove(&leader).unwrap_or_default();
    if parts.is_empty() {
        return Ok(false);
    }
    let md = q.metadata();
    let Some(ep) = endpoint(&md, leader) else {
        return Ok(false);
    };
    let c = connect(&registry.connector, conn, ep).await?;
    // Over the follower quota, throttled partitions sit this round out (as in Kafka's
    // fetcher); the others are fetched as usual.
    let rate = throttle::rate(&md, &registry.config, me, throttle::FOLLOWER_RATE);
    let over_quota = q.throttles.follower.exceeded(rate);
    let Some((request, by_key)) = fetch_request(&parts, me, over_quota) else {
        return Ok(false);
    };
    c.correlation_id = c.correlation_id.wrapping_add(1);
    let span = tracing::trace_span!(
        target: TRACE_TARGET,
        "replication.fetch",
        otel.kind = "client",
        spate.node.id = me,
        spate.replication = true,
        leader,
        correlation_id = c.correlation_id,
        partitions = by_key.len(),
        bytes = Empty,
        records = Empty,
        partition_errors = Empty,
        otel.status_code = Empty,
        error.message = Empty,
    );
    let fetched = async {
        let response = call(c, &request).await?;
        if response.error_code != 0 {
            span.record("otel.status_code", "ERROR");
            return Ok(false);
        }
        let applied = apply_response(&response, &by_key, leader);
        q.throttles.follower.record(rate, applied.throttled_bytes);
        span.record("bytes", applied.bytes);
        span.record("records", applied.records);
        span.record("partition_errors", applied.errors);
        Ok::<_, RpcError>(applied.errors == 0)
    }
    .instrument(span.clone())
    .await;
    if let Err(e) = &fetched {
        span.record("otel.status_code", "ERROR");
        span.record("error.message", e.to_string().as_str());
    }
    fetched
}

/// The connection to the leader at `ep`, opened (again) if there is none to it.
async fn connect<'c>(
    connector: &Connector,
    conn: &'c mut Option<Conn>,
    ep: (String, u16),
) -> Result<&'c mut Conn, RpcError> {
    if conn.as_ref().is_some_and(|c| c.endpoint != ep) {
        *conn = None;
    }
    match conn {
        Some(c) => Ok(c),
        None => {
            let stream = connector.connect(&ep, CONNECT_TIMEOUT).await?;
            Ok(conn.insert(Conn {
                endpoint: ep,
                stream,
                correlation_id: 0,
            }))
        }
    }
}

/// The Fetch for every followed partition of one leader (throttled ones left out while over
/// the quota), and where each partition's answer goes; `None` if there is nothing to fetch.
fn fetch_request(
    parts: &[Followed],
    me: i32,
    over_quota: bool,
) -> Option<(FetchRequest, Routes<'_>)> {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    let mut by_key: Routes = HashMap::new();
    for f in parts {
        if f.throttled && over_quota {
            continue;
        }
        let Ok((leo, last_epoch, start)) = f.replica.fetch_position() else {
            continue;
        };
        topics.entry(f.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(f.replica.index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(leo)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(start)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
        by_key.insert((f.topic_id, f.replica.index), f);
    }
    if topics.is_empty() {
        return None;
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(me))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        );
    Some((request, by_key))
}

/// Where each partition's answer goes: (topic id, partition) → the partition followed.
type Routes<'a> = HashMap<(Uuid, i32), &'a Followed>;

/// What applying one Fetch response did.
#[derive(Default)]
struct Applied {
    bytes: usize,
    records: u64,
    /// Partitions that answered with an error or failed to apply: back off.
    errors: u32,
    throttled_bytes: usize,
}

/// Applies every partition's answer of a Fetch response.
fn apply_response(response: &FetchResponse, by_key: &Routes<'_>, leader: i32) -> Applied {
    let mut applied = Applied::default();
    for t in &response.responses {
        for p in &t.partitions {
            let Some(f) = by_key.get(&(t.topic_id, p.partition_index)) else {
                continue;
            };
            let got = p.records.as_ref().map_or(0, Bytes::len);
            if f.throttled {
                applied.throttled_bytes += got;
            }
            match handle_partition(f, p) {
                Ok(Some(records)) => {
                    if got > 0 && p.error_code == 0 {
                        applied.bytes += got;
                        applied.records += records;
                    }
                }
                Ok(None) => applied.errors += 1,
                Err(e) => {
                    applied.errors += 1;
                    tracing::warn!(topic = %f.topic, partition = f.replica.index, leader, "replicating: {e}");
                }
            }
        }
    }
    applied
}

/// Applies one partition's answer: `Ok(Some(records appended))`, or `Ok(None)` for an error
/// to back off on.
fn handle_partition(
    f: &Followed,
    p: &kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<Option<u64>, spate_log::LogError> {
    let replica = &f.replica;
    if p.error_code == ResponseError::OffsetOutOfRange.code() {
        let (leo, _, _) = replica.fetch_position()?;
        if p.log_start_offset > leo {
            tracing::info!(topic = %f.topic, partition = replica.index, start = p.log_start_offset, "follower behind the leader's log start: restarting the log there");
            replica.truncate_fully_and_start_at(p.log_start_offset)?;
        } else if p.high_watermark >= 0 && p.high_watermark < leo {
            tracing::info!(topic = %f.topic, partition = replica.index, hw = p.high_watermark, "follower ahead of the leader: truncating to its high watermark");
            replica.truncate_to(p.high_watermark)?;
        }
        return Ok(Some(0));
    }
    if p.error_code != 0 {
        return Ok(None);
    }
    let div = &p.diverging_epoch;
    if div.epoch >= 0 && div.end_offset >= 0 {
        let local = replica
            .end_offset_for_epoch(div.epoch)?
            .map_or(div.end_offset, |(_, end)| end);
        let target = div.end_offset.min(local);
        tracing::info!(topic = %f.topic, partition = replica.index, epoch = div.epoch, target, "log diverged from the leader's: truncating");
        replica.truncate_to(target)?;
        return Ok(Some(0));
    }
    let mut appended = 0;
    if let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) {
        appended = replica.append_as_follower(records.clone())?;
    }
    if p.high_watermark >= 0 {
        replica.set_follower_hw(p.high_watermark);
    }
    Ok(Some(appended))
}

/// Sends one Fetch request and reads its response.
async fn call(c: &mut Conn, request: &FetchRequest) -> Result<FetchResponse, RpcError> {
    let call = Call {
        correlation_id: c.correlation_id,
        max_frame: MAX_FRAME,
        timeout: Duration::from_millis(FETCH_MAX_WAIT_MS as u64) + Duration::from_secs(10),
        ..Call::new(ApiKey::Fetch, FETCH_VERSION, "spate-replica-fetcher")
    };
    // The leader's span for this fetch joins our round's trace.
    let parent = trace_context::traceparent(&tracing::Span::current());
    let frame = call.encode(request, parent.map(|p| (TRACEPARENT_TAG, Bytes::from(p))))?;
    call.exchange(&mut c.stream, &frame).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
    use spate_log::LogConfig;

    use crate::testing::{record_batch, Writer};

    use super::*;

    fn one_record() -> Bytes {
        record_batch(Writer::PLAIN, 1, &[(None, b"v")])
    }

    /// A replica that led epoch 0 for offsets 0..3 and epoch 1 for 3..5, now a follower.
    fn former_leader(dir: &std::path::Path) -> Followed {
        let p = Partition::open(dir, 0, LogConfig::default()).unwrap();
        p.set_assignment(1, &[1, 2], &[1, 2], 0);
        p.become_leader(0).unwrap();
        for _ in 0..3 {
            p.append(one_record(), 1).unwrap();
        }
        p.become_leader(1).unwrap();
        for _ in 0..2 {
            p.append(one_record(), 1).unwrap();
        }
        p.become_follower();
        Followed {
            topic: "t".into(),
            topic_id: Uuid::new_v4(),
            leader_epoch: 2,
            replica: Arc::new(p),
            throttled: false,
        }
    }

    #[test]
    fn a_diverging_epoch_truncates_to_where_the_leader_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = former_leader(dir.path());
        assert_eq!(f.replica.fetch_position().unwrap(), (5, 1, 0));
        // The new leader only has epoch 0 up to offset 2.
        let answer = PartitionData::default()
            .with_high_watermark(2)
            .with_diverging_epoch(EpochEndOffset::default().with_epoch(0).with_end_offset(2));
        assert!(handle_partition(&f, &answer).unwrap().is_some());
        assert_eq!(f.replica.fetch_position().unwrap(), (2, 0, 0));
        // Fetching on appends the leader's batches after the truncation point.
        let mut batch = one_record().to_vec();
        spate_log::batch::set_base_offset(&mut batch, 2);
        let answer = PartitionData::default()
            .with_high_watermark(3)
            .with_records(Some(Bytes::from(batch)));
        assert!(handle_partition(&f, &answer).unwrap().is_some());
        assert_eq!(f.replica.fetch_position().unwrap().0, 3);
        assert_eq!(f.replica.positions().unwrap().1, 3);
    }

    #[test]
    fn out_of_range_below_the_leaders_log_start_restarts_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let f = former_leader(dir.path());
        let answer = PartitionData::default()
            .with_error_code(ResponseError::OffsetOutOfRange.code())
            .with_high_watermark(12)
            .with_log_start_offset(10);
        assert!(handle_partition(&f, &answer).unwrap().is_some());
        assert_eq!(f.replica.fetch_position().unwrap(), (10, -1, 10));
    }
}
