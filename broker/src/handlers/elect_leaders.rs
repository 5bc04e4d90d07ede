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
//! `unclean.leader.election.enable=true` get such elections automatically. A single node
//! leads every partition itself: ELECTION_NOT_NEEDED everywhere.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use spate_meta::{ClusterMetadata, ElectionScope, MetaRequest, MetaResponse, NO_LEADER};

use crate::cluster::quorum::{Quorum, APPLY_TIMEOUT};
use crate::context::{str_bytes, topic_name, Context};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// One partition's outcome: `None` for success, else the error code and message.
type Outcome = (String, i32, Option<(ResponseError, String)>);

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
    let outcomes = match (election, ctx.registry.quorum().cloned()) {
        (PREFERRED | UNCLEAN, None) => single_node(ctx, requested),
        (PREFERRED, Some(q)) => {
            let scope = match requested {
                Some(list) => ElectionScope::Partitions(list),
                None => ElectionScope::All,
            };
            match elect(ctx, &q, MetaRequest::ElectPreferredLeaders { scope }).await {
                Ok(outcomes) => outcomes,
                Err((code, message)) => return fail(code, &message),
            }
        }
        (UNCLEAN, Some(q)) => {
            // Kafka's "all partitions" for an unclean election means the leaderless ones.
            let md = q.metadata();
            let all = requested.is_none();
            let partitions = requested.unwrap_or_else(|| leaderless(&md));
            drop(md);
            match elect(ctx, &q, MetaRequest::ElectUncleanLeaders { partitions }).await {
                Ok(outcomes) if all => outcomes.into_iter().filter(|o| o.2.is_none()).collect(),
                Ok(outcomes) => outcomes,
                Err((code, message)) => return fail(code, &message),
            }
        }
        (other, _) => {
            return fail(
                ResponseError::InvalidRequest,
                &format!("unknown election type {other}"),
            )
        }
    };
    ElectLeadersResponse::default().with_replica_election_results(group(outcomes))
}

/// Proposes an election and waits until this broker's metadata shows the new leaders.
async fn elect(
    ctx: &Context,
    q: &Quorum,
    request: MetaRequest,
) -> Result<Vec<Outcome>, (ResponseError, String)> {
    let results = match q.propose(request).await {
        Ok(MetaResponse::Elections(results)) => results,
        Ok(other) => {
            return Err((
                ResponseError::UnknownServerError,
                format!("unexpected answer {other:?}"),
            ))
        }
        Err(e) => return Err((e.code, e.message)),
    };
    let elected: Vec<(String, i32, i32)> = results
        .iter()
        .filter_map(|r| {
            r.result
                .as_ref()
                .ok()
                .map(|l| (r.topic.clone(), r.partition, *l))
        })
        .collect();
    if !elected.is_empty() {
        q.wait_for(APPLY_TIMEOUT, |md| {
            elected
                .iter()
                .all(|(t, p, l)| leader(md, t, *p) == Some(*l))
        })
        .await;
        ctx.registry.sync().await;
    }
    Ok(results
        .into_iter()
        .map(|r| {
            let error = r.result.err().map(|e| {
                let code = ResponseError::try_from_code(e.kafka_error_code())
                    .unwrap_or(ResponseError::UnknownServerError);
                (code, e.to_string())
            });
            (r.topic, r.partition, error)
        })
        .collect())
}

/// Every partition without a leader.
fn leaderless(md: &ClusterMetadata) -> Vec<(String, i32)> {
    md.topics
        .iter()
        .flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader == NO_LEADER)
                .filter_map(move |(i, _)| Some((name.clone(), i32::try_from(i).ok()?)))
        })
        .collect()
}

fn leader(md: &ClusterMetadata, topic: &str, partition: i32) -> Option<i32> {
    usize::try_from(partition)
        .ok()
        .and_then(|i| md.partition(topic, i))
        .map(|p| p.leader)
}

fn unknown(topic: &str, partition: i32) -> (ResponseError, String) {
    (
        ResponseError::UnknownTopicOrPartition,
        format!("Partition {topic}-{partition} does not exist."),
    )
}

fn not_needed(topic: &str, partition: i32) -> (ResponseError, String) {
    (
        ResponseError::ElectionNotNeeded,
        format!("Partition {topic}-{partition} already has a leader."),
    )
}

fn single_node(ctx: &Context, requested: Option<Vec<(String, i32)>>) -> Vec<Outcome> {
    // Every local partition is led by this broker: nothing to elect, nothing to list for "all".
    requested
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partition)| {
            let known = ctx
                .registry
                .topic(&topic)
                .is_some_and(|t| t.partition(partition).is_some());
            let error = if known {
                not_needed(&topic, partition)
            } else {
                unknown(&topic, partition)
            };
            (topic, partition, Some(error))
        })
        .collect()
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
