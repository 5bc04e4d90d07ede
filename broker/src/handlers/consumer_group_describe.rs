//! ConsumerGroupDescribe: KIP-848 groups with epochs and target assignments. Classic or
//! unknown groups answer GROUP_ID_NOT_FOUND, which sends admin clients to DescribeGroups, as
//! Kafka does.
use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use uuid::Uuid;

use crate::context::{str_bytes, topic_name, Context};

/// `member_type` (v1): 1 = a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

pub fn handle(ctx: &Context, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<Uuid, String> = ctx
        .registry
        .topics()
        .iter()
        .map(|t| (t.meta.id, t.meta.name.clone()))
        .collect();
    let assignment = |parts: &BTreeSet<(Uuid, i32)>| {
        let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (t, p) in parts {
            by_topic.entry(*t).or_default().push(*p);
        }
        Assignment::default().with_topic_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(t)
                        .with_topic_name(topic_name(names.get(&t).cloned().unwrap_or_default()))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let described = ctx.groups.with_consumer_group(&id, |g| {
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state_name()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch())
                    .with_assignor_name(str_bytes(g.assignor.clone()))
                    .with_authorized_operations(i32::MIN)
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(str_bytes))
                                    .with_rack_id(m.rack.clone().map(str_bytes))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(str_bytes(m.client_id.clone()))
                                    .with_client_host(str_bytes(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed.iter().cloned().map(topic_name).collect(),
                                    )
                                    .with_assignment(assignment(&m.assigned))
                                    .with_target_assignment(assignment(&g.target_of(&m.id)))
                                    .with_member_type(CONSUMER_MEMBER)
                            })
                            .collect(),
                    )
            });
            match described {
                Ok(g) => g.with_group_id(id),
                Err(e) => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Group {} is not a consumer group.",
                        id.as_str()
                    )))),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
