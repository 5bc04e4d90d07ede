//! ListPartitionReassignments (KIP-455): the partitions being moved, with their adding and
//! removing replicas.
//!
//! # Format
//! `{timeout_ms, topics: [{name, partition_indexes}]?}` → `{topics: [{name, partitions:
//! [{partition_index, replicas, adding_replicas, removing_replicas}]}]}`.
//!
//! As in Kafka's controller, `topics: null` lists every reassigning partition; named topics
//! and partitions that do not exist or are not being moved are left out, not errors. A single
//! node never moves anything and answers an empty list.
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use spate_meta::{PartitionState, TopicMetadata};

use crate::context::{topic_name, Context};

pub fn handle(
    ctx: &Context,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let md = ctx.registry.quorum().metadata();
    let mut topics = Vec::new();
    match &req.topics {
        None => {
            for (name, t) in &md.topics {
                let all: Vec<i32> = (0..t.partitions.len())
                    .filter_map(|i| i32::try_from(i).ok())
                    .collect();
                topics.extend(ongoing(name, t, &all));
            }
        }
        Some(wanted) => {
            for w in wanted {
                if let Some(t) = md.topics.get(w.name.as_str()) {
                    topics.extend(ongoing(&w.name, t, &w.partition_indexes));
                }
            }
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// The reassigning partitions among `indexes` of topic `name`, if any.
fn ongoing(name: &str, t: &TopicMetadata, indexes: &[i32]) -> Option<OngoingTopicReassignment> {
    let partitions: Vec<OngoingPartitionReassignment> = indexes
        .iter()
        .filter_map(|&i| {
            let p = usize::try_from(i).ok().and_then(|u| t.partitions.get(u))?;
            p.is_reassigning().then(|| describe(i, p))
        })
        .collect();
    (!partitions.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(topic_name(name))
            .with_partitions(partitions)
    })
}

fn describe(index: i32, p: &PartitionState) -> OngoingPartitionReassignment {
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    OngoingPartitionReassignment::default()
        .with_partition_index(index)
        .with_replicas(ids(&p.replicas))
        .with_adding_replicas(ids(&p.adding))
        .with_removing_replicas(ids(&p.removing))
}
