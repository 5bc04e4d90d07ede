//! Produce: append record batches, exactly as sent, to partition logs.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::cluster::topic_config::min_insync_replicas;
use crate::cluster::{Appended, Partition, Topic};
use crate::context::{now_ms, str_bytes, Context};
use crate::observability::metrics::record_count;
use crate::observability::replication_trace::Registration;
use crate::replication::wait::Unreplicated;
use crate::security::RequestContext;
use crate::trace_context::TRACE_TARGET;
use crate::txn::verify::{is_transient, TxnProducer};
use spate_auth::acl::{Operation, ResourceType};

/// A refused partition's error code and the message the client is told.
type Refusal = (ResponseError, String);

/// Per partition (by its topic's and its own index in the request) whose transaction was
/// verified: the guard to append with, or the refusal.
type Verdicts = HashMap<(usize, usize), Result<u64, Refusal>>;

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

/// Returns `None` for acks=0: the client expects no response. With an authorizer a
/// transactional request needs WRITE on its transactional id (else every partition gets
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and each topic WRITE (else its partitions get
/// TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub async fn handle(
    ctx: &Context,
    rc: &RequestContext,
    mut req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let txn_refused = req.transactional_id.as_ref().is_some_and(|id| {
        !ctx.authz.allows(
            rc,
            Operation::Write,
            ResourceType::TransactionalId,
            id.as_str(),
        )
    });
    // Without an authorizer nothing is refused and the request stays as it came.
    let refused: Vec<TopicProduceData> = if ctx.authz.enabled() {
        let (kept, refused) = std::mem::take(&mut req.topic_data)
            .into_iter()
            .partition(|t| {
                !txn_refused
                    && ctx
                        .authz
                        .allows(rc, Operation::Write, ResourceType::Topic, t.name.as_str())
            });
        req.topic_data = kept;
        refused
    } else {
        Vec::new()
    };
    let code = if txn_refused {
        ResponseError::TransactionalIdAuthorizationFailed
    } else {
        ResponseError::TopicAuthorizationFailed
    };
    let refused: Vec<TopicProduceResponse> = refused
        .into_iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code.code())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
                .with_name(t.name)
        })
        .collect();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let now = now_ms();
    let request_span = Span::current();
    let verdicts = match req.transactional_id.as_ref() {
        Some(id) if ctx.txn.config().partition_verification => {
            verify_txn(ctx, id.as_str(), &req.topic_data).await
        }
        _ => HashMap::new(),
    };
    let mut appends = Appends {
        ctx,
        acks,
        now,
        request_span,
        verdicts,
        appended_any: false,
        pending: Vec::new(),
    };
    let mut responses: Vec<TopicProduceResponse> = req
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| appends.topic(ti, topic))
        .collect();
    if appends.appended_any {
        ctx.registry.notify_append();
    }
    // acks=all with replicas: answer once the high watermark passes each append.
    let deadline = tokio::time::Instant::now() + timeout;
    wait_for_acks(appends.pending, deadline, &mut responses).await;
    responses.extend(refused);
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// The appends of one request: what its partitions share, and what they leave to do after.
struct Appends<'a> {
    ctx: &'a Context,
    acks: i16,
    now: i64,
    /// The parent of every `replication.wait` span.
    request_span: Span,
    verdicts: Verdicts,
    /// Some append wrote new records (not a retry's duplicate): waiting fetches may wake.
    appended_any: bool,
    /// acks=all appends to partitions with followers, in request order.
    pending: Vec<Pending<'a>>,
}

/// A partition this request may append to, and its replication as the checks saw it.
struct Target<'t> {
    partition: &'t Arc<Partition>,
    index: i32,
    isr_size: usize,
    replica_count: usize,
    min_isr: usize,
}

impl<'a> Appends<'a> {
    /// One topic's partitions, answered in request order.
    fn topic(&mut self, ti: usize, topic: TopicProduceData) -> TopicProduceResponse {
        let t = self.ctx.registry.topic(&topic.name);
        let partition_responses = topic
            .partition_data
            .into_iter()
            .enumerate()
            .map(|(pi, pd)| self.partition((ti, pi), topic.name.as_str(), t.as_deref(), pd))
            .collect();
        TopicProduceResponse::default()
            .with_name(topic.name)
            .with_partition_responses(partition_responses)
    }

    /// One partition's records: checked, verified and appended. `at` is its place in the
    /// request (topic, partition).
    fn partition(
        &mut self,
        at: (usize, usize),
        topic: &str,
        t: Option<&Topic>,
        pd: PartitionProduceData,
    ) -> PartitionProduceResponse {
        let resp = PartitionProduceResponse::default()
            .with_index(pd.index)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1);
        match self.checked_append(at, topic, t, pd) {
            Ok(a) => resp
                .with_base_offset(a.base_offset)
                .with_log_append_time_ms(a.log_append_time)
                .with_log_start_offset(a.log_start_offset),
            Err((code, message)) => resp
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        }
    }

    /// Refused, in this order, by the target's checks, for holding no records, or by the
    /// transaction's verification; otherwise appended.
    fn checked_append(
        &mut self,
        at: (usize, usize),
        topic: &str,
        t: Option<&Topic>,
        pd: PartitionProduceData,
    ) -> Result<Appended, Refusal> {
        let target = self.target(topic, t, pd.index)?;
        let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
            return Err((ResponseError::CorruptMessage, "no record batches".into()));
        };
        let guard = match self.verdicts.get(&at) {
            Some(Err(refusal)) => return Err(refusal.clone()),
            Some(Ok(guard)) => Some(*guard),
            None => None,
        };
        self.append(at, topic, &target, records, guard)
    }

    /// The partition to append to, if the request's acks are valid, this broker leads it and
    /// (for acks=all) enough replicas are in sync.
    fn target<'t>(
        &self,
        topic: &str,
        t: Option<&'t Topic>,
        index: i32,
    ) -> Result<Target<'t>, Refusal> {
        let acks = self.acks;
        if !matches!(acks, -1..=1) {
            let message = format!("acks={acks} is not -1, 0 or 1");
            return Err((ResponseError::InvalidRequiredAcks, message));
        }
        if let Err(code) = self.ctx.registry.leader_check(topic, index) {
            let node = self.ctx.config.node_id;
            return Err((code, format!("broker {node} does not lead this partition")));
        }
        let Some(t) = t else {
            let message = format!("unknown topic {topic}");
            return Err((ResponseError::UnknownTopicOrPartition, message));
        };
        let Some(partition) = t.partition(index) else {
            let message = format!("unknown partition {index}");
            return Err((ResponseError::UnknownTopicOrPartition, message));
        };
        // Kafka caps the effective minimum at the replica count, so a topic with
        // fewer replicas than min.insync.replicas still takes writes.
        let (isr_size, replica_count) = partition.isr_counts();
        let min_isr = (min_insync_replicas(&t.meta.configs, &self.ctx.config).max(1) as usize)
            .min(replica_count);
        if acks == -1 && isr_size < min_isr {
            let message =
                format!("in-sync replicas {isr_size} are fewer than min.insync.replicas {min_isr}");
            return Err((ResponseError::NotEnoughReplicas, message));
        }
        Ok(Target {
            partition,
            index,
            isr_size,
            replica_count,
            min_isr,
        })
    }

    /// Appends under a `produce.append` span and counts what it wrote; an acks=all append to
    /// a partition with followers is left in `pending`.
    fn append(
        &mut self,
        at: (usize, usize),
        topic: &str,
        target: &Target<'_>,
        records: Bytes,
        guard: Option<u64>,
    ) -> Result<Appended, Refusal> {
        let ctx = self.ctx;
        let (bytes, count) = (records.len() as u64, record_count(&records));
        let _span = tracing::trace_span!(
            target: TRACE_TARGET,
            "produce.append",
            topic,
            partition = target.index,
            bytes,
            records = count,
            acks = self.acks,
        )
        .entered();
        let timer = ctx.metrics.produce_append_seconds.start_timer();
        let appended = target.partition.append_verified(records, self.now, guard);
        timer.observe_duration();
        match appended {
            Ok(a) => {
                self.appended_any |= !a.duplicate;
                if !a.duplicate {
                    ctx.metrics
                        .bytes_in
                        .with_label_values(&[topic])
                        .inc_by(bytes);
                    ctx.metrics
                        .records_in
                        .with_label_values(&[topic])
                        .inc_by(count);
                }
                if self.acks == -1 && target.replica_count > 1 {
                    self.await_replicas(at, topic, target, a.last_offset);
                }
                Ok(a)
            }
            Err(e) => {
                let code = format!("{:?}", e.code);
                ctx.metrics
                    .request_errors
                    .with_label_values(&["Produce", code.as_str()])
                    .inc();
                tracing::debug!(topic = %topic, partition = target.index, "produce refused: {e}");
                Err((e.code, e.message))
            }
        }
    }

    /// Queues the wait for an acks=all append. Registered straight after the append: a
    /// follower can acknowledge it only with the fetch after the one that read it, a round
    /// trip later.
    fn await_replicas(
        &mut self,
        at: (usize, usize),
        topic: &str,
        target: &Target<'_>,
        last_offset: i64,
    ) {
        let ctx = self.ctx;
        let span = tracing::trace_span!(
            target: TRACE_TARGET,
            parent: &self.request_span,
            "replication.wait",
            topic,
            partition = target.index,
            last_offset,
            hw.awaited = last_offset + 1,
            min_isr = target.min_isr,
            isr = target.isr_size,
            replicas = target.replica_count,
            outcome = Empty,
            acked_by = Empty,
            otel.status_code = Empty,
        );
        let registration = ctx
            .ack_waits
            .register(topic, target.index, last_offset, &span);
        self.pending.push(Pending {
            topic: at.0,
            partition: at.1,
            replica: target.partition.clone(),
            last_offset,
            min_isr: target.min_isr,
            span,
            registration,
        });
    }
}

/// Waits for each acks=all append in turn, all against one `deadline`, and turns a failed
/// wait into its partition's error.
async fn wait_for_acks(
    pending: Vec<Pending<'_>>,
    deadline: tokio::time::Instant,
    responses: &mut [TopicProduceResponse],
) {
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
}

/// KIP-890 part 1: for each partition whose batch would open a transaction there, asks the
/// coordinator whether the partition is in the producer's transaction. Returns, per such
/// partition (by its topic's and its own index in the request), the guard to append with or
/// the error to answer with.
async fn verify_txn(ctx: &Context, txn_id: &str, topics: &[TopicProduceData]) -> Verdicts {
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
