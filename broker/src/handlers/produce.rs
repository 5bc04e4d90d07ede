//! Produce: append record batches, exactly as sent, to partition logs.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::cluster::topic_config::min_insync_replicas;
use crate::context::{now_ms, str_bytes, Context};
use crate::observability::telemetry::TRACE_TARGET;

/// Replicas in sync on a single node: itself.
const ISR_SIZE: i32 = 1;

/// Returns `None` for acks=0: the client expects no response.
pub fn handle(ctx: &Context, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let now = now_ms();
    let mut appended_any = false;
    let responses = req
        .topic_data
        .into_iter()
        .map(|topic| {
            let t = ctx.registry.topic(&topic.name);
            let partition_responses = topic
                .partition_data
                .into_iter()
                .map(|pd| {
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
                    if acks == -1 {
                        // Kafka caps the effective minimum at the replica count, so a topic
                        // with fewer replicas than min.insync.replicas still takes writes.
                        let min_isr = min_insync_replicas(&t.meta.configs, &ctx.config).min(ISR_SIZE);
                        if min_isr > ISR_SIZE {
                            return fail(
                                ResponseError::NotEnoughReplicas,
                                format!("in-sync replicas {ISR_SIZE} are fewer than min.insync.replicas {min_isr}"),
                            );
                        }
                    }
                    let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                        return fail(ResponseError::CorruptMessage, "no record batches".into());
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
                    let appended = partition.append(records, now);
                    timer.observe_duration();
                    match appended {
                        Ok(a) => {
                            appended_any |= !a.duplicate;
                            if !a.duplicate {
                                ctx.metrics.bytes_in.with_label_values(&[topic.name.as_str()]).inc_by(bytes);
                                ctx.metrics.records_in.with_label_values(&[topic.name.as_str()]).inc_by(count);
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
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
