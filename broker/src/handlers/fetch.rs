//! Fetch: return stored record batches as bytes, long-polling until `min_bytes` arrive or
//! `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227) are not created: every response carries session id 0, which
//! clients take as "keep sending full fetch requests".
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use tokio::time::Instant;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::cluster::partition::log_error_code;
use crate::cluster::{Partition, Topic};
use crate::context::Context;
use crate::replication::leader::{self, LeaderThrottle, Refusal};
use crate::security::RequestContext;
use crate::trace_context::TRACE_TARGET;
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

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

/// With an authorizer, as Kafka: a follower's fetch needs CLUSTER_ACTION on the cluster, a
/// consumer's READ on each topic; refused partitions get TOPIC_AUTHORIZATION_FAILED.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    mut req: FetchRequest,
) -> FetchResponse {
    let follower = replica_of(version, &req);
    if let Some(follower) = follower {
        mark_replication(&Span::current(), follower, &req);
    }
    let refused = refuse_unauthorized(ctx, rc, version, follower.is_some(), &mut req);
    if !refused.is_empty() {
        let mut response = if req.topics.is_empty() {
            FetchResponse::default()
        } else {
            Box::pin(fetch(ctx, version, req)).await
        };
        response.responses.extend(refused);
        return response;
    }
    fetch(ctx, version, req).await
}

/// Takes the topics this connection may not read out of `req`, answered.
fn refuse_unauthorized(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    follower: bool,
    req: &mut FetchRequest,
) -> Vec<FetchableTopicResponse> {
    if !ctx.authz.enabled() {
        return vec![];
    }
    let cluster_ok = follower
        && ctx.authz.allows(
            rc,
            Operation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
    let (kept, refused): (Vec<_>, Vec<_>) =
        std::mem::take(&mut req.topics).into_iter().partition(|ft| {
            if follower {
                return cluster_ok;
            }
            let name = if version >= TOPIC_ID_VERSION {
                match ctx.registry.topic_by_id(ft.topic_id) {
                    Some(t) => t.meta.name.clone(),
                    // Unknown ids are answered UNKNOWN_TOPIC_ID by the read.
                    None => return true,
                }
            } else {
                ft.topic.to_string()
            };
            ctx.authz
                .allows(rc, Operation::Read, ResourceType::Topic, &name)
        });
    req.topics = kept;
    refused
        .into_iter()
        .map(|ft| {
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(
                    ft.partitions
                        .iter()
                        .map(|fp| {
                            PartitionData::default()
                                .with_partition_index(fp.partition)
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                                .with_preferred_read_replica(BrokerId(-1))
                        })
                        .collect(),
                )
        })
        .collect()
}

async fn fetch(ctx: &Context, version: i16, req: FetchRequest) -> FetchResponse {
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

/// State carried across the partitions of one pass over a request.
struct Pass {
    /// Bytes the response may still carry (`max_bytes`).
    budget: usize,
    /// Bytes of records in the response so far.
    total: usize,
    /// Some partition failed, which ends the long-poll at once, as in Kafka.
    errors: bool,
    /// The follower fetching, `None` for consumers.
    replica: Option<i32>,
    throttle: Option<LeaderThrottle>,
    throttled_bytes: usize,
    /// A replica fetch's request span, to link the acks=all produces it acknowledges.
    trace_span: Option<Span>,
    /// A follower's fetch moved some high watermark.
    hw_moved: bool,
}

/// One pass over the requested partitions: the response, bytes returned, and whether any
/// partition failed.
fn read_once(ctx: &Context, version: i16, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let replica = replica_of(version, req);
    let mut pass = Pass {
        budget: if version >= 3 {
            req.max_bytes.max(0) as usize
        } else {
            usize::MAX
        },
        total: 0,
        errors: false,
        replica,
        throttle: replica.map(|_| LeaderThrottle::new(ctx.registry.quorum(), &ctx.config)),
        throttled_bytes: 0,
        trace_span: replica
            .map(|_| Span::current())
            .filter(|s| !s.is_disabled()),
        hw_moved: false,
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if version >= TOPIC_ID_VERSION {
            ctx.registry.topic_by_id(ft.topic_id)
        } else {
            ctx.registry.topic(&ft.topic)
        };
        let partitions = ft
            .partitions
            .iter()
            .map(|fp| {
                let data = read_partition(ctx, version, req, &mut pass, topic.as_deref(), ft, fp);
                pass.errors |= data.error_code != 0;
                data
            })
            .collect();
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    if let Some(th) = &pass.throttle {
        th.record(pass.throttled_bytes);
    }
    if pass.hw_moved {
        // Consumers long-polling for this partition may read further now.
        ctx.registry.notify_append();
    }
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics);
    (response, pass.total, pass.errors)
}

/// One partition of a pass: checks, the follower's side of replication, then the read.
fn read_partition(
    ctx: &Context,
    version: i16,
    req: &FetchRequest,
    pass: &mut Pass,
    topic: Option<&Topic>,
    ft: &FetchTopic,
    fp: &FetchPartition,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(fp.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1));
    let fail = |base: PartitionData, code: ResponseError| base.with_error_code(code.code());
    // By name before v13, so that a topic this broker has not mirrored yet still sends the
    // client to its leader.
    let name = match topic {
        Some(t) => Some(t.meta.name.as_str()),
        None if version < TOPIC_ID_VERSION => Some(ft.topic.as_str()),
        None => None,
    };
    if let Some(Err(code)) = name.map(|n| ctx.registry.leader_check(n, fp.partition)) {
        return fail(base, code);
    }
    let Some((topic, partition)) = topic.and_then(|t| Some((t, t.partition(fp.partition)?))) else {
        let unknown = if version >= TOPIC_ID_VERSION {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        return fail(base, unknown);
    };
    if let Some(follower) = pass.replica {
        if let Err(refused) = follow(ctx, pass, &topic.meta.name, partition, follower, fp) {
            return match (refused, partition.positions()) {
                (Refusal::Epoch(code), _) => fail(base, code),
                (Refusal::Diverging { epoch, end }, Ok((start, hw, _))) => base
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(start)
                    .with_records(Some(Bytes::new()))
                    .with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end),
                    ),
                (Refusal::Diverging { .. }, Err(e)) => fail(base, log_error_code(&e)),
            };
        }
    }
    let (start, hw, leo) = match partition.positions() {
        Ok(o) => o,
        Err(e) => return fail(base, log_error_code(&e)),
    };
    // The last stable offset: below the earliest open transaction.
    let lso = partition.last_stable_offset().unwrap_or(hw);
    let read_committed = pass.replica.is_none() && req.isolation_level == READ_COMMITTED;
    let base = base
        .with_high_watermark(hw)
        .with_last_stable_offset(lso)
        .with_log_start_offset(start)
        .with_aborted_transactions(Some(vec![]));
    // Consumers read up to the high watermark (read_committed: the last stable offset);
    // followers up to the log end. For one replica the high watermark is the log end.
    let max_offset = match pass.replica {
        Some(_) => leo,
        None if read_committed => lso,
        None => hw,
    };
    if fp.fetch_offset < start || fp.fetch_offset > leo {
        return fail(base, ResponseError::OffsetOutOfRange);
    }
    let throttled = match (&pass.throttle, pass.replica) {
        (Some(th), Some(follower)) => th.applies(&topic.meta.name, fp.partition, follower),
        _ => false,
    };
    // Over the leader's quota a throttled partition is answered without records, not with an
    // error: the follower simply fetches again (Kafka's behaviour).
    let held_back = throttled && pass.throttle.as_ref().is_some_and(|th| th.over_quota);
    let limit = (fp.partition_max_bytes.max(0) as usize).min(pass.budget);
    let records = if limit == 0 || held_back || fp.fetch_offset >= max_offset {
        Bytes::new()
    } else {
        match read_records(partition, ft, fp, limit, max_offset, leo) {
            // Only the first partition with data may exceed the limits (KIP-74), so a
            // consumer can always make progress past a large batch.
            Ok(r) if pass.total > 0 && r.len() > limit => Bytes::new(),
            Ok(r) => r,
            Err(e) => return fail(base, log_error_code(&e)),
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
    pass.total += records.len();
    if throttled {
        pass.throttled_bytes += records.len();
    }
    pass.budget = pass.budget.saturating_sub(records.len());
    base.with_records(Some(records))
}

/// A follower's fetch position, checked and recorded on the leader (`replication/leader.rs`),
/// with the trace of the acks=all produces it acknowledges.
fn follow(
    ctx: &Context,
    pass: &mut Pass,
    topic: &str,
    partition: &Partition,
    follower: i32,
    fp: &FetchPartition,
) -> Result<(), Refusal> {
    let moved = leader::follower_fetch(
        partition,
        follower,
        fp.current_leader_epoch,
        fp.last_fetched_epoch,
        fp.fetch_offset,
    )?;
    let Some((before, after)) = moved else {
        return Ok(());
    };
    pass.hw_moved |= after > before;
    if let Some(span) = &pass.trace_span {
        ctx.ack_waits
            .acknowledge(topic, fp.partition, follower, fp.fetch_offset, span);
        if after > before {
            tracing::trace!(
                target: TRACE_TARGET,
                parent: span,
                topic,
                partition = fp.partition,
                high_watermark = after,
                "high watermark advanced"
            );
        }
    }
    Ok(())
}

/// Reads up to `limit` bytes from the fetch offset, no further than `max_offset`.
fn read_records(
    partition: &Partition,
    ft: &FetchTopic,
    fp: &FetchPartition,
    limit: usize,
    max_offset: i64,
    leo: i64,
) -> Result<Bytes, spate_log::LogError> {
    let _span = tracing::trace_span!(
        target: TRACE_TARGET,
        "fetch.read",
        topic = ft.topic.as_str(),
        partition = fp.partition,
        offset = fp.fetch_offset,
    )
    .entered();
    if max_offset == leo {
        partition.read(fp.fetch_offset, limit)
    } else {
        partition.read_up_to(fp.fetch_offset, limit, max_offset)
    }
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
