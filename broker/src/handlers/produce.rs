//! Produce: append record batches, exactly as sent, to partition logs.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::cluster::topic_config::min_insync_replicas;
use crate::cluster::Partition;
use crate::context::{now_ms, str_bytes, Context};
use crate::observability::replication_trace::Registration;
use crate::replication::wait::Unreplicated;
use crate::trace_context::TRACE_TARGET;
use crate::txn::verify::{is_transient, TxnProducer};

/// An acks=all append waiting for the high watermark to pass it.
struct Pending<'a> {
    topic: usize,
    partition: usize,
    replica: Arc<Partition>,
    last_offset: i64,
    min_isr: usize,
    /// `replication.wait`, a child of the request span, from the append to the answer.
    span: Span,
    /// The wait as replica fetches see it, to link them (tracing on only).
    registration: Option<Registration<'a>>,
}

/// Returns `None` for acks=0: the client expects no response.
pub async fn handle(ctx: &Context, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let now = now_ms();
    let mut appended_any = false;
    let mut pending: Vec<Pending> = Vec::new();
    let request_span = Span::current();
    let verdicts = match req.transactional_id.as_ref() {
        Some(id) if ctx.txn.config().partition_verification => {
            verify_txn(ctx, id.as_str(), &req.topic_data).await
        }
        _ => HashMap::new(),
    };
    let mut responses: Vec<TopicProduceResponse> = req
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let t = ctx.registry.topic(&topic.name);
            let partition_responses = topic
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(pi, pd)| {
                    let resp = PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    let fail = |code: ResponseError, msg: String| {
                        resp.clone().with_error_code(code.code()).with_error_message(Some(str_bytes(msg)))
                    };
                    if !matches!(acks, -1..=1) {
                        return fail(ResponseError::InvalidRequiredAcks, format!("acks={acks} is not -1, 0 or 1"));
                    }
                    if let Err(code) = ctx.registry.leader_check(&topic.name, pd.index) {
                        return fail(code, format!("broker {} does not lead this partition", ctx.config.node_id));
                    }
                    let Some(t) = t.as_ref() else {
                        return fail(ResponseError::UnknownTopicOrPartition, format!("unknown topic {}", topic.name.as_str()));
                    };
                    let Some(partition) = t.partition(pd.index) else {
                        return fail(ResponseError::UnknownTopicOrPartition, format!("unknown partition {}", pd.index));
                    };
                    // Kafka caps the effective minimum at the replica count, so a topic with
                    // fewer replicas than min.insync.replicas still takes writes.
                    let (isr_size, replica_count) = partition.isr_counts();
                    let min_isr = (min_insync_replicas(&t.meta.configs, &ctx.config).max(1) as usize).min(replica_count);
                    if acks == -1 && isr_size < min_isr {
                        return fail(
                            ResponseError::NotEnoughReplicas,
                            format!("in-sync replicas {isr_size} are fewer than min.insync.replicas {min_isr}"),
                        );
                    }
                    let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                        return fail(ResponseError::CorruptMessage, "no record batches".into());
                    };
                    let guard = match verdicts.get(&(ti, pi)) {
                        Some(Err((code, msg))) => return fail(*code, msg.clone()),
                        Some(Ok(guard)) => Some(*guard),
                        None => None,
                    };
                    let (bytes, count) = (records.len() as u64, crate::observability::metrics::record_count(&records));
                    let _span = tracing::trace_span!(
                        target: TRACE_TARGET,
                        "produce.append",
                        topic = topic.name.as_str(),
                        partition = pd.index,
                        bytes,
                        records = count,
                        acks,
                    )
                    .entered();
                    let timer = ctx.metrics.produce_append_seconds.start_timer();
                    let appended = partition.append_verified(records, now, guard);
                    timer.observe_duration();
                    match appended {
                        Ok(a) => {
                            appended_any |= !a.duplicate;
                            if !a.duplicate {
                                ctx.metrics.bytes_in.with_label_values(&[topic.name.as_str()]).inc_by(bytes);
                                ctx.metrics.records_in.with_label_values(&[topic.name.as_str()]).inc_by(count);
                            }
                            if acks == -1 && replica_count > 1 {
                                // Registered straight after the append: a follower can
                                // acknowledge it only with the fetch after the one that
                                // read it, a round trip later.
                                let span = tracing::trace_span!(
                                    target: TRACE_TARGET,
                                    parent: &request_span,
                                    "replication.wait",
                                    topic = topic.name.as_str(),
                                    partition = pd.index,
                                    last_offset = a.last_offset,
                                    hw.awaited = a.last_offset + 1,
                                    min_isr,
                                    isr = isr_size,
                                    replicas = replica_count,
                                    outcome = Empty,
                                    acked_by = Empty,
                                    otel.status_code = Empty,
                                );
                                let registration =
                                    ctx.ack_waits.register(topic.name.as_str(), pd.index, a.last_offset, &span);
                                pending.push(Pending {
                                    topic: ti,
                                    partition: pi,
                                    replica: partition.clone(),
                                    last_offset: a.last_offset,
                                    min_isr,
                                    span,
                                    registration,
                                });
                            }
                            resp.with_base_offset(a.base_offset)
                                .with_log_append_time_ms(a.log_append_time)
                                .with_log_start_offset(a.log_start_offset)
                        }
                        Err(e) => {
                            let code = format!("{:?}", e.code);
                            ctx.metrics.request_errors.with_label_values(&["Produce", code.as_str()]).inc();
                            tracing::debug!(topic = %topic.name.as_str(), partition = pd.index, "produce refused: {e}");
                            fail(e.code, e.message)
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partition_responses)
        })
        .collect();
    if appended_any {
        ctx.registry.notify_append();
    }
    // acks=all with replicas: answer once the high watermark passes each append.
    let deadline = tokio::time::Instant::now() + timeout;
    for w in pending {
        let waited = wait_for_hw(&w, deadline).instrument(w.span.clone()).await;
        trace_outcome(&w, &waited);
        if let Err(code) = waited {
            let resp = &mut responses[w.topic].partition_responses[w.partition];
            resp.error_code = code.code();
            resp.error_message = Some(str_bytes(match code {
                ResponseError::RequestTimedOut => {
                    "the in-sync replicas did not acknowledge the append in time".to_string()
                }
                ResponseError::NotLeaderOrFollower => {
                    "leadership moved while waiting for the in-sync replicas".to_string()
                }
                _ => format!(
                    "the in-sync replicas shrank below min.insync.replicas {} after the append",
                    w.min_isr
                ),
            }));
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// KIP-890 part 1: for each partition whose batch would open a transaction there, asks the
/// coordinator whether the partition is in the producer's transaction. Returns, per such
/// partition (by its topic's and its own index in the request), the guard to append with or
/// the error to answer with.
async fn verify_txn(
    ctx: &Context,
    txn_id: &str,
    topics: &[TopicProduceData],
) -> HashMap<(usize, usize), Result<u64, (ResponseError, String)>> {
    // (producer id, epoch) -> [(position, topic, partition, guard)]; a request has one producer.
    type Guarded = Vec<((usize, usize), String, i32, u64)>;
    let mut needed: HashMap<(i64, i16), Guarded> = HashMap::new();
    for (ti, t) in topics.iter().enumerate() {
        for (pi, pd) in t.partition_data.iter().enumerate() {
            let Some(records) = pd.records.as_ref() else {
                continue;
            };
            if ctx.registry.leader_check(&t.name, pd.index).is_err() {
                continue;
            }
            let Some(p) = ctx
                .registry
                .topic(&t.name)
                .and_then(|x| x.partition(pd.index).cloned())
            else {
                continue;
            };
            if let Ok(Some((pid, epoch, guard))) = p.start_txn_verification(records) {
                needed.entry((pid, epoch)).or_default().push((
                    (ti, pi),
                    t.name.to_string(),
                    pd.index,
                    guard,
                ));
            }
        }
    }
    let mut out = HashMap::new();
    for ((pid, epoch), parts) in needed {
        let wanted: Vec<(String, i32)> = parts.iter().map(|(_, t, p, _)| (t.clone(), *p)).collect();
        let producer = TxnProducer {
            txn_id,
            producer_id: pid,
            epoch,
        };
        let found = crate::txn::verify::verify(ctx, producer, &wanted).await;
        for (i, (at, _, _, guard)) in parts.into_iter().enumerate() {
            let verdict = match &found {
                Ok(f) if f.get(i) == Some(&true) => Ok(guard),
                Ok(_) => Err((
                    ResponseError::InvalidTxnState,
                    "Partition was not added to the transaction".to_string(),
                )),
                // Kafka's mapping, so that every client retries what is transient.
                Err(e) if is_transient(*e) => Err((
                    ResponseError::NotEnoughReplicas,
                    format!(
                        "Unable to verify the partition has been added to the transaction: {e:?}"
                    ),
                )),
                Err(e) => Err((*e, format!("Transaction verification failed: {e:?}"))),
            };
            out.insert(at, verdict);
        }
    }
    out
}

/// Records how a wait ended on its span, and links the replica fetches that acknowledged it.
fn trace_outcome(w: &Pending<'_>, waited: &Result<(), ResponseError>) {
    if w.span.is_disabled() {
        return;
    }
    let outcome = match waited {
        Ok(()) => "acknowledged",
        Err(ResponseError::RequestTimedOut) => "timed_out",
        Err(ResponseError::NotLeaderOrFollower) => "not_leader",
        Err(_) => "not_enough_replicas",
    };
    w.span.record("outcome", outcome);
    if waited.is_err() {
        w.span.record("otel.status_code", "ERROR");
    }
    if let Some(r) = &w.registration {
        r.link_acks(&w.span);
        w.span
            .record("acked_by", format!("{:?}", r.acked_by()).as_str());
    }
}

/// Waits until the partition's high watermark is past `last_offset` (or `deadline`), then
/// checks the ISR is still at least min.insync.replicas.
async fn wait_for_hw(w: &Pending<'_>, deadline: tokio::time::Instant) -> Result<(), ResponseError> {
    Unreplicated::new(w.replica.clone(), w.last_offset)
        .wait_until(deadline)
        .await?;
    if w.replica.isr_counts().0 < w.min_isr {
        return Err(ResponseError::NotEnoughReplicasAfterAppend);
    }
    Ok(())
}
