//! DescribeTransactions (API 65): one transactional id's coordinator state, for
//! `kafka-transactions.sh describe`.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId,
};
use spate_auth::acl::{Operation, ResourceType};

use crate::context::{str_bytes, topic_name, Context};
use crate::security::RequestContext;

/// Needs DESCRIBE on each transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for it);
/// leaves out the partitions of topics the client may not DESCRIBE, as Kafka does.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let s = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !ctx.authz.allows(
                rc,
                Operation::Describe,
                ResourceType::TransactionalId,
                id.as_str(),
            ) {
                return s.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            match ctx.txn.describe(id.as_str()) {
                Ok(m) => {
                    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &m.partitions {
                        by_topic.entry(t.as_str()).or_default().push(*p);
                    }
                    by_topic.retain(|t, _| {
                        ctx.authz
                            .sees(rc, Operation::Describe, ResourceType::Topic, t)
                    });
                    s.with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(
                            by_topic
                                .into_iter()
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(topic_name(t))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                }
                Err(e) => s.with_error_code(e.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
