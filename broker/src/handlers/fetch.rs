//! Fetch: return stored record batches as bytes, long-polling until `min_bytes` arrive or
//! `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227) are not created: every response carries session id 0, which
//! clients take as "keep sending full fetch requests".
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use spate_meta::ClusterMetadata;
use tokio::time::Instant;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::cluster::partition::log_error_code;
use crate::cluster::{throttle, Quorum};
use crate::context::{now_ms, Context};
use crate::observability::telemetry::TRACE_TARGET;

/// Topic ids replace names from Fetch v13 on.
const TOPIC_ID_VERSION: i16 = 13;
/// `isolation_level` 1: only records below the last stable offset, with the aborted
/// transactions among them.
const READ_COMMITTED: i8 = 1;
/// `ReplicaState` replaces `ReplicaId` from Fetch v15 on.
const REPLICA_STATE_VERSION: i16 = 15;

/// The broker id of a follower fetching, `None` for consumers.
fn replica_of(version: i16, req: &FetchRequest) -> Option<i32> {
    let id = if version >= REPLICA_STATE_VERSION {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    (id >= 0).then_some(id)
}

pub async fn handle(ctx: &Context, version: i16, req: FetchRequest) -> FetchResponse {
    if let Some(follower) = replica_of(version, &req) {
        mark_replication(&Span::current(), follower, &req);
    }
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut appended = ctx.registry.subscribe_appends();
    loop {
        // Mark the current append count as seen before reading, so an append that lands
        // after this read wakes us.
        appended.borrow_and_update();
        let (response, bytes, errors) = read_once(ctx, version, &req);
        if bytes >= req.min_bytes.max(0) as usize || errors || Instant::now() >= deadline {
            return count_out(ctx, response);
        }
        ctx.metrics.fetch_purgatory.inc();
        let woken = tokio::time::timeout_at(deadline, appended.changed()).await;
        ctx.metrics.fetch_purgatory.dec();
        if woken.is_err() {
            return count_out(ctx, read_once(ctx, version, &req).0);
        }
    }
}

/// One pass over the requested partitions: the response, bytes returned, and whether any
/// partition failed (which ends the long-poll at once, as in Kafka).
fn read_once(ctx: &Context, version: i16, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut budget = if version >= 3 {
        req.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut errors = false;
    let replica = replica_of(version, req);
    let throttle = replica.and_then(|_| LeaderThrottle::new(ctx));
    // A replica fetch's request span, to link the acks=all produces it acknowledges.
    let trace_span = replica
        .map(|_| Span::current())
        .filter(|s| !s.is_disabled());
    let mut throttled_bytes = 0;
    let mut hw_moved = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if version >= TOPIC_ID_VERSION {
            ctx.registry.topic_by_id(ft.topic_id)
        } else {
            ctx.registry.topic(&ft.topic)
        };
        let unknown = if version >= TOPIC_ID_VERSION {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let base = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1));
            // By name before v13, so that a topic this broker has not mirrored yet still
            // sends the client to its leader.
            let name = match &topic {
                Some(t) => Some(t.meta.name.as_str()),
                None if version < TOPIC_ID_VERSION => Some(ft.topic.as_str()),
                None => None,
            };
            if let Some(Err(code)) = name.map(|n| ctx.registry.leader_check(n, fp.partition)) {
                errors = true;
                partitions.push(base.with_error_code(code.code()));
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                errors = true;
                partitions.push(base.with_error_code(unknown.code()));
                continue;
            };
            if let Some(follower) = replica {
                let topic_name = topic.as_ref().map_or("", |t| t.meta.name.as_str());
                // A follower names the leader epoch it believes in; a mismatch means one
                // side's metadata is stale.
                let led = partition.leader_epoch();
                if fp.current_leader_epoch >= 0 && fp.current_leader_epoch != led {
                    let code = if fp.current_leader_epoch < led {
                        ResponseError::FencedLeaderEpoch
                    } else {
                        ResponseError::UnknownLeaderEpoch
                    };
                    errors = true;
                    partitions.push(base.with_error_code(code.code()));
                    continue;
                }
                // Divergence: the follower's last epoch ends earlier here (or is unknown),
                // so it must truncate before fetching on.
                if fp.last_fetched_epoch >= 0 {
                    if let Ok(Some((epoch, end))) =
                        partition.end_offset_for_epoch(fp.last_fetched_epoch)
                    {
                        if epoch != fp.last_fetched_epoch || end < fp.fetch_offset {
                            if let Ok((start, hw, _)) = partition.positions() {
                                errors = true;
                                partitions.push(
                                    base.with_high_watermark(hw)
                                        .with_last_stable_offset(hw)
                                        .with_log_start_offset(start)
                                        .with_records(Some(Bytes::new()))
                                        .with_diverging_epoch(
                                            EpochEndOffset::default()
                                                .with_epoch(epoch)
                                                .with_end_offset(end),
                                        ),
                                );
                                continue;
                            }
                        }
                    }
                }
                // Its fetch offset is its log end: that may move the high watermark.
                if let Ok((start, before, leo)) = partition.positions() {
                    if fp.fetch_offset >= start && fp.fetch_offset <= leo {
                        let after =
                            partition.record_follower_fetch(follower, fp.fetch_offset, now_ms());
                        hw_moved |= after > before;
                        if let Some(span) = &trace_span {
                            ctx.ack_waits.acknowledge(
                                topic_name,
                                fp.partition,
                                follower,
                                fp.fetch_offset,
                                span,
                            );
                            if after > before {
                                tracing::trace!(
                                    target: TRACE_TARGET,
                                    parent: span,
                                    topic = topic_name,
                                    partition = fp.partition,
                                    high_watermark = after,
                                    "high watermark advanced"
                                );
                            }
                        }
                    }
                }
            }
            let (start, hw, leo) = match partition.positions() {
                Ok(o) => o,
                Err(e) => {
                    errors = true;
                    partitions.push(base.with_error_code(log_error_code(&e).code()));
                    continue;
                }
            };
            // The last stable offset: below the earliest open transaction.
            let lso = partition.last_stable_offset().unwrap_or(hw);
            let read_committed = replica.is_none() && req.isolation_level == READ_COMMITTED;
            let base = base
                .with_high_watermark(hw)
                .with_last_stable_offset(lso)
                .with_log_start_offset(start)
                .with_aborted_transactions(Some(vec![]));
            // Consumers read up to the high watermark (read_committed: the last stable
            // offset); followers up to the log end. On a single node (and for one replica)
            // the high watermark is the log end.
            let max_offset = match replica {
                Some(_) => leo,
                None if read_committed => lso,
                None => hw,
            };
            if fp.fetch_offset < start || fp.fetch_offset > leo {
                errors = true;
                partitions.push(base.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
            let throttled = match (&throttle, replica, &topic) {
                (Some(th), Some(follower), Some(t)) => {
                    th.applies(&t.meta.name, fp.partition, follower)
                }
                _ => false,
            };
            // Over the leader's quota a throttled partition is answered without records, not
            // with an error: the follower simply fetches again (Kafka's behaviour).
            let held_back = throttled && throttle.as_ref().is_some_and(|th| th.over_quota);
            let records = if limit == 0 || held_back || fp.fetch_offset >= max_offset {
                Bytes::new()
            } else {
                let _span = tracing::trace_span!(
                    target: TRACE_TARGET,
                    "fetch.read",
                    topic = ft.topic.as_str(),
                    partition = fp.partition,
                    offset = fp.fetch_offset,
                )
                .entered();
                let read = if max_offset == leo {
                    partition.read(fp.fetch_offset, limit)
                } else {
                    partition.read_up_to(fp.fetch_offset, limit, max_offset)
                };
                match read {
                    // Only the first partition with data may exceed the limits (KIP-74), so a
                    // consumer can always make progress past a large batch.
                    Ok(r) if total > 0 && r.len() > limit => Bytes::new(),
                    Ok(r) => r,
                    Err(e) => {
                        errors = true;
                        partitions.push(base.with_error_code(log_error_code(&e).code()));
                        continue;
                    }
                }
            };
            // read_committed consumers drop the records of aborted transactions in range.
            let base = if read_committed && !records.is_empty() {
                let aborted = partition
                    .aborted_between(fp.fetch_offset, max_offset)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect();
                base.with_aborted_transactions(Some(aborted))
            } else {
                base
            };
            total += records.len();
            if throttled {
                throttled_bytes += records.len();
            }
            budget = budget.saturating_sub(records.len());
            partitions.push(base.with_records(Some(records)));
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    if let Some(th) = &throttle {
        th.record(throttled_bytes);
    }
    if hw_moved {
        // Consumers long-polling for this partition may read further now.
        ctx.registry.notify_append();
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        errors,
    )
}

/// Marks a follower's Fetch request span as replication traffic.
fn mark_replication(span: &Span, follower: i32, req: &FetchRequest) {
    if span.is_disabled() {
        return;
    }
    span.set_attribute("spate.replication", true);
    span.set_attribute("replica_id", i64::from(follower));
    let partitions: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    span.set_attribute("partitions", partitions as i64);
}

/// Cluster mode: the leader side of the replication throttle (`cluster/throttle.rs`) for one
/// replica fetch, decided once per pass over the request.
struct LeaderThrottle {
    quorum: Arc<Quorum>,
    metadata: Arc<ClusterMetadata>,
    rate: u64,
    over_quota: bool,
}

impl LeaderThrottle {
    fn new(ctx: &Context) -> Option<Self> {
        let quorum = ctx.registry.quorum().clone();
        let metadata = quorum.metadata();
        let rate = throttle::rate(
            &metadata,
            &ctx.config,
            quorum.broker_id,
            throttle::LEADER_RATE,
        );
        let over_quota = quorum.throttles.leader.exceeded(rate);
        Some(Self {
            quorum,
            metadata,
            rate,
            over_quota,
        })
    }

    /// Is `follower`'s fetch of `topic`-`partition` throttled: listed for this broker in
    /// `leader.replication.throttled.replicas` and the follower out of the ISR?
    fn applies(&self, topic: &str, partition: i32, follower: i32) -> bool {
        let Some(tm) = self.metadata.topics.get(topic) else {
            return false;
        };
        let in_sync = usize::try_from(partition)
            .ok()
            .and_then(|i| tm.partitions.get(i))
            .is_some_and(|p| p.isr.contains(&follower));
        !in_sync
            && throttle::throttled(
                &tm.configs,
                throttle::LEADER_REPLICAS,
                partition,
                self.quorum.broker_id,
            )
    }

    fn record(&self, bytes: usize) {
        self.quorum.throttles.leader.record(self.rate, bytes);
    }
}

/// Counts what a fetch response carries out, by topic, before it is sent.
fn count_out(ctx: &Context, response: FetchResponse) -> FetchResponse {
    for t in &response.responses {
        let name = if t.topic.is_empty() {
            ctx.registry
                .topic_by_id(t.topic_id)
                .map(|t| t.meta.name.clone())
                .unwrap_or_default()
        } else {
            t.topic.to_string()
        };
        for p in &t.partitions {
            if let Some(r) = p.records.as_ref().filter(|r| !r.is_empty()) {
                ctx.metrics
                    .bytes_out
                    .with_label_values(&[name.as_str()])
                    .inc_by(r.len() as u64);
                ctx.metrics
                    .records_out
                    .with_label_values(&[name.as_str()])
                    .inc_by(crate::observability::metrics::record_count(r));
            }
        }
    }
    response
}
