//! ListTransactions (API 66): the transactional ids this broker coordinates, for
//! `kafka-transactions.sh list`.
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};

use spate_auth::acl::{Operation, ResourceType};

use crate::context::{now_ms, str_bytes, Context};
use crate::security::RequestContext;
use crate::txn::TxnState;

/// Lists only the transactional ids the client may DESCRIBE, as Kafka does.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let known: Vec<&str> = (0..8)
        .filter_map(TxnState::from_id)
        .map(|s| s.name())
        .collect();
    let (states, unknown): (Vec<String>, Vec<String>) = req
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .partition(|s| known.contains(&s.as_str()));
    if !unknown.is_empty() && states.is_empty() {
        // Only unknown states asked for: nothing matches.
        return ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown.into_iter().map(str_bytes).collect());
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let now = now_ms();
    let pattern = req.transactional_id_pattern.as_ref().map(|p| p.to_string());
    let listed = ctx
        .txn
        .list(&states, &pids)
        .into_iter()
        // v1 (KIP-994): only transactions running longer than the duration filter.
        .filter(|m| {
            req.duration_filter < 0 || (m.start_ms >= 0 && now - m.start_ms >= req.duration_filter)
        })
        // v2 (KIP-1152): a regular expression; only literal and `.*` patterns here.
        .filter(|m| {
            pattern
                .as_deref()
                .is_none_or(|p| simple_match(p, &m.transactional_id))
        })
        .filter(|m| {
            ctx.authz.sees(
                rc,
                Operation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(str_bytes(m.transactional_id).into())
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(str_bytes).collect())
        .with_transaction_states(listed)
}

/// A tiny subset of regular expressions: `.*` matches anything, everything else literally.
fn simple_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split(".*").collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}
