//! ConsumerGroupDescribe: KIP-848 groups with epochs and target assignments. Classic or
//! unknown groups answer GROUP_ID_NOT_FOUND, which sends admin clients to DescribeGroups, as
//! Kafka does.
use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use spate_auth::acl::{Operation, ResourceType};
use uuid::Uuid;

use crate::context::{str_bytes, topic_name, Context};
use crate::security::RequestContext;

/// `member_type` (v1): 1 = a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

/// What Kafka answers for a group whose members' assignments name a topic the client may not
/// DESCRIBE.
const HIDDEN_TOPICS: &str =
    "The group has described topic(s) that the client is not authorized to describe.";

/// Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED for it) and on every topic in
/// its members' assignments (else TOPIC_AUTHORIZATION_FAILED for it), as in Kafka.
pub fn handle(
    ctx: &Context,
    rc: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
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
            if !ctx
                .authz
                .allows(rc, Operation::Describe, ResourceType::Group, id.as_str())
            {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let described = ctx.groups.with_consumer_group(&id, |g| {
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state_name()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch())
                    .with_assignor_name(str_bytes(g.assignor.clone()))
                    .with_authorized_operations(if req.include_authorized_operations {
                        ctx.authz.operations(rc, ResourceType::Group, id.as_str())
                    } else {
                        i32::MIN
                    })
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
                Ok(g) if !topics_visible(ctx, rc, &g) => DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes(HIDDEN_TOPICS))),
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

/// May the client DESCRIBE every topic in the group's current and target assignments?
fn topics_visible(ctx: &Context, rc: &RequestContext, g: &DescribedGroup) -> bool {
    let topics: BTreeSet<&str> = g
        .members
        .iter()
        .flat_map(|m| [&m.assignment, &m.target_assignment])
        .flat_map(|a| &a.topic_partitions)
        .map(|tp| tp.topic_name.as_str())
        .collect();
    topics.into_iter().all(|t| {
        ctx.authz
            .allows(rc, Operation::Describe, ResourceType::Topic, t)
    })
}
