//! ElectLeaders (KIP-460): move leadership to the preferred replica (election type 0), or an
//! unclean election (type 1).
//!
//! # Format
//! `{election_type (v1+), topic_partitions: [{topic, partitions}]?, timeout_ms}` →
//! `{error_code (v1+), replica_election_results: [{topic, partition_result: [{partition_id,
//! error_code, error_message}]}]}`.
//!
//! Preferred elections are the state machine's `ElectPreferredLeaders`: ELECTION_NOT_NEEDED
//! (84) where the preferred replica already leads, PREFERRED_LEADER_NOT_AVAILABLE (80) where it
//! is not an eligible ISR member. `topic_partitions: null` means every partition, and then, as
//! in Kafka, partitions that need no election are left out of the answer.
//!
//! Unclean elections are the state machine's `ElectUncleanLeaders`: a leaderless partition
//! with no eligible ISR member gets an eligible replica from outside the ISR (records only the
//! old ISR had are lost — the admin asked for it); one with a leader gets ELECTION_NOT_NEEDED,
//! one with no eligible replica at all ELIGIBLE_LEADERS_NOT_AVAILABLE (83). Topics with
//! `unclean.leader.election.enable=true` get such elections automatically. Both go through
//! `Registry::admin_elect_leaders` (`cluster/admin/partitions.rs`).
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use crate::cluster::admin::ElectionOutcome as Outcome;
use crate::context::{str_bytes, topic_name, Context};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(ctx: &Context, version: i16, req: ElectLeadersRequest) -> ElectLeadersResponse {
    // v0 has no election type: it is always a preferred election.
    let election = if version == 0 {
        PREFERRED
    } else {
        req.election_type
    };
    let requested: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let fail = |code: ResponseError, message: &str| {
        top_level_error(version, req.topic_partitions.as_deref(), code, message)
    };
    let unclean = match election {
        PREFERRED => false,
        UNCLEAN => true,
        other => {
            return fail(
                ResponseError::InvalidRequest,
                &format!("unknown election type {other}"),
            )
        }
    };
    // Kafka's "all partitions" for an unclean election means the leaderless ones, and its
    // answer lists only those elected.
    let all_unclean = unclean && requested.is_none();
    let outcomes = match ctx.registry.admin_elect_leaders(unclean, requested).await {
        Ok(outcomes) if all_unclean => outcomes.into_iter().filter(|o| o.2.is_none()).collect(),
        Ok(outcomes) => outcomes,
        Err(e) => return fail(e.code, &e.message),
    };
    ElectLeadersResponse::default().with_replica_election_results(group(outcomes))
}

/// Groups outcomes by topic, keeping the order topics first appear in.
fn group(outcomes: Vec<Outcome>) -> Vec<ReplicaElectionResult> {
    let mut order: Vec<String> = Vec::new();
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, error) in outcomes {
        if !by_topic.contains_key(&topic) {
            order.push(topic.clone());
        }
        let result = PartitionResult::default().with_partition_id(partition);
        let result = match error {
            None => result,
            Some((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        };
        by_topic.entry(topic).or_default().push(result);
    }
    order
        .into_iter()
        .map(|t| {
            let partitions = by_topic.remove(&t).unwrap_or_default();
            ReplicaElectionResult::default()
                .with_topic(topic_name(t))
                .with_partition_result(partitions)
        })
        .collect()
}

/// The whole request failed: a top-level code from v1 on; v0 has none, so there every
/// requested partition carries it.
fn top_level_error(
    version: i16,
    requested: Option<&[TopicPartitions]>,
    code: ResponseError,
    message: &str,
) -> ElectLeadersResponse {
    if version >= 1 {
        return ElectLeadersResponse::default().with_error_code(code.code());
    }
    let outcomes = requested
        .unwrap_or_default()
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.to_string(), *p, Some((code, message.to_string()))))
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(group(outcomes))
}
