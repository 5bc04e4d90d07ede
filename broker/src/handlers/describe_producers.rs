//! DescribeProducers (API 61): the producer state a partition leader holds, for
//! `kafka-transactions.sh describe-producers` (finding hanging transactions).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use spate_auth::acl::{Operation, ResourceType};

use crate::cluster::partition::log_error_code;
use crate::context::Context;
use crate::security::RequestContext;

/// Needs READ on each topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as in Kafka.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = ctx.registry.topic(t.name.as_str());
            let allowed =
                ctx.authz
                    .allows(rc, Operation::Read, ResourceType::Topic, t.name.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let resp = PartitionResponse::default().with_partition_index(*p);
                    if !allowed {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    if let Err(code) = ctx.registry.leader_check(t.name.as_str(), *p) {
                        return resp.with_error_code(code.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(*p)) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    match partition.producers() {
                        Ok(producers) => resp.with_active_producers(
                            producers
                                .into_iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(v.producer_id))
                                        .with_producer_epoch(i32::from(v.epoch))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_timestamp)
                                        .with_coordinator_epoch(v.coordinator_epoch)
                                        .with_current_txn_start_offset(v.txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(e) => resp.with_error_code(log_error_code(&e).code()),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
