//! DescribeQuorum (API 55): the metadata quorum as its leader sees it, for
//! `kafka-metadata-quorum describe --status / --replication`.
//!
//! Kafka's quorum is the single partition `__cluster_metadata-0`; Spate's is the openraft log,
//! reported in the same shape: leader epoch = raft term, offsets = raft log index + 1 (Kafka's
//! "next offset": the high watermark is one past the last committed entry, a log end offset one
//! past the last entry the leader knows a replica holds; -1 when it knows of none). Voters are
//! the raft voters, observers the learners (broker-only nodes). A non-leader asks the leader.
//!
//! The leader does not record fetch times; a replica caught up to the high watermark is
//! reported as having fetched and caught up "now", any other with -1 (unknown). Replicas have
//! no directory ids (zero).
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use spate_meta::{QuorumView, ReplicaView};

use crate::context::{str_bytes, topic_name, Context};

/// The name Kafka gives the metadata log; clients check it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(ctx: &Context, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let asks_for_metadata_log = req.topics.len() == 1
        && req.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    let partition_error = |code: ResponseError, message: String| {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                                    .with_error_message(Some(str_bytes(message.clone())))
                                    .with_leader_id(BrokerId(-1))
                                    .with_leader_epoch(-1)
                                    .with_high_watermark(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeQuorumResponse::default().with_topics(topics)
    };
    if !asks_for_metadata_log {
        return partition_error(
            ResponseError::UnknownTopicOrPartition,
            format!("the metadata quorum is {METADATA_TOPIC}-0"),
        );
    }
    match ctx.registry.quorum().describe_quorum().await {
        Ok(view) => response(&view, now_ms()),
        Err(e) => partition_error(ResponseError::NotLeaderOrFollower, e.to_string()),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A raft index as a Kafka offset: one past it; -1 for none.
fn next_offset(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| {
        i64::try_from(i.saturating_add(1)).unwrap_or(i64::MAX)
    })
}

fn broker_id(node_id: u64) -> BrokerId {
    BrokerId(i32::try_from(node_id).unwrap_or(-1))
}

/// The answer for `view` at wall-clock time `now` (ms).
pub fn response(view: &QuorumView, now: i64) -> DescribeQuorumResponse {
    let high_watermark = next_offset(view.commit_index).max(0);
    let state = |r: &ReplicaView| {
        let log_end_offset = next_offset(r.matched_index);
        let caught_up = r.matched_index.is_some() && log_end_offset >= high_watermark;
        let seen = if caught_up { now } else { -1 };
        ReplicaState::default()
            .with_replica_id(broker_id(r.node_id))
            .with_log_end_offset(log_end_offset)
            .with_last_fetch_timestamp(seen)
            .with_last_caught_up_timestamp(seen)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(broker_id(view.leader_id))
        .with_leader_epoch(i32::try_from(view.term).unwrap_or(i32::MAX))
        .with_high_watermark(high_watermark)
        .with_current_voters(view.voters.iter().map(state).collect())
        .with_observers(view.observers.iter().map(state).collect());
    // v2: how to reach each voter (its raft gRPC address).
    let nodes = view
        .voters
        .iter()
        .map(|r| {
            let listeners = r
                .addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .map(|(host, port)| {
                    Listener::default()
                        .with_name(str_bytes("CONTROLLER"))
                        .with_host(str_bytes(
                            host.trim_start_matches('[').trim_end_matches(']'),
                        ))
                        .with_port(port)
                })
                .into_iter()
                .collect();
            Node::default()
                .with_node_id(broker_id(r.node_id))
                .with_listeners(listeners)
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(node_id: u64, addr: &str, matched_index: Option<u64>) -> ReplicaView {
        ReplicaView {
            node_id,
            addr: addr.into(),
            matched_index,
        }
    }

    #[test]
    fn reports_raft_state_in_kafka_terms() {
        let view = QuorumView {
            leader_id: 2,
            term: 7,
            commit_index: Some(41),
            last_log_index: Some(41),
            voters: vec![
                replica(1, "spate-1.spate:9093", Some(41)),
                replica(2, "127.0.0.2:9093", Some(41)),
                replica(3, "[::1]:9093", Some(30)),
            ],
            observers: vec![replica(4, "10.0.0.4:9093", None)],
        };
        let r = response(&view, 1000);
        let p = &r.topics[0].partitions[0];
        assert_eq!(r.topics[0].topic_name.0.as_str(), METADATA_TOPIC);
        assert_eq!(
            (p.leader_id.0, p.leader_epoch, p.high_watermark),
            (2, 7, 42)
        );
        let voters: Vec<(i32, i64, i64)> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_caught_up_timestamp))
            .collect();
        assert_eq!(voters, [(1, 42, 1000), (2, 42, 1000), (3, 31, -1)]);
        assert_eq!(p.observers[0].replica_id.0, 4);
        assert_eq!(p.observers[0].log_end_offset, -1);
        let hosts: Vec<(i32, String, u16)> = r
            .nodes
            .iter()
            .map(|n| {
                let l = &n.listeners[0];
                (n.node_id.0, l.host.to_string(), l.port)
            })
            .collect();
        assert_eq!(
            hosts,
            [
                (1, "spate-1.spate".into(), 9093),
                (2, "127.0.0.2".into(), 9093),
                (3, "::1".into(), 9093)
            ]
        );
    }
}
