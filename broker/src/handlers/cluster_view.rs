//! What Metadata, DescribeCluster and FindCoordinator report, read from the committed
//! cluster metadata (every broker, leader, ISR and leader epoch).
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::BrokerId;
use spate_meta::{BrokerRegistration, ClusterMetadata, TopicMetadata, NO_LEADER};

use crate::cluster::admin::NewTopic;
use crate::cluster::broker_rpc::endpoint;
use crate::cluster::names::invalid_topic_name;
use crate::cluster::registry::is_internal;
use crate::cluster::{Quorum, Topic};
use crate::context::{str_bytes, topic_name, Context};
use crate::handlers::metadata::NO_AUTHORIZED_OPERATIONS;

/// Brokers clients of `listener` may talk to: registered, not fenced, and listening there,
/// each with its address on that listener.
fn live_brokers<'a>(
    md: &'a ClusterMetadata,
    listener: &'a str,
) -> impl Iterator<Item = (&'a BrokerRegistration, (&'a str, u16))> {
    md.brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(move |b| b.endpoint(listener).map(|e| (b, e)))
}

/// A live broker's address for clients of `listener`.
pub fn client_endpoint(md: &ClusterMetadata, broker: i32, listener: &str) -> Option<(String, u16)> {
    md.brokers
        .get(&broker)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(listener))
        .map(|(h, p)| (h.to_string(), p))
}

/// The controller id Metadata and DescribeCluster report. Clients send controller-bound admin
/// requests there and any broker forwards proposals to the raft leader, so, as KRaft brokers
/// do, it is a live broker: the raft leader when it is one (a combined node: no forwarding
/// hop), else this broker, else the lowest live broker id; -1 while none is live. Never a
/// controller-only node: it has no Kafka listener.
pub fn controller_id(md: &ClusterMetadata, raft_leader: i32, me: i32) -> i32 {
    [raft_leader, me]
        .into_iter()
        .find(|id| endpoint(md, *id).is_some())
        .or_else(|| md.brokers.values().find(|b| !b.fenced).map(|b| b.id))
        .unwrap_or(-1)
}

/// [`controller_id`] as this broker sees the cluster now.
pub fn reported_controller(q: &Quorum) -> BrokerId {
    BrokerId(controller_id(&q.metadata(), q.controller_id(), q.broker_id))
}

/// Metadata's brokers and topics in cluster mode; auto-creates through the quorum.
pub async fn metadata(
    ctx: &Context,
    q: &Arc<Quorum>,
    listener: &str,
    wanted: Option<Vec<MetadataRequestTopic>>,
    all: bool,
    allow_create: bool,
) -> (Vec<MetadataResponseBroker>, Vec<MetadataResponseTopic>) {
    let mut topics = Vec::new();
    // The local replicas are looked up once per topic, not per partition.
    let describe = |md: &ClusterMetadata, name: &str, t: &TopicMetadata| {
        describe(
            md,
            name,
            t,
            q.broker_id,
            ctx.registry.topic(name).as_deref(),
        )
    };
    if all {
        let md = q.metadata();
        topics.extend(md.topics.iter().map(|(n, t)| describe(&md, n, t)));
    } else {
        for w in wanted.unwrap_or_default() {
            let md = q.metadata();
            let by_id = (!w.topic_id.is_nil())
                .then(|| md.topics.iter().find(|(_, t)| t.id == w.topic_id))
                .flatten();
            let topic = match (by_id, w.name.map(|n| n.to_string())) {
                (Some((n, t)), _) => describe(&md, n, t),
                (None, Some(name)) => {
                    lookup_or_create(ctx, q, &name, allow_create, &describe).await
                }
                (None, None) => MetadataResponseTopic::default()
                    .with_topic_id(w.topic_id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            };
            topics.push(topic);
        }
    }
    let md = q.metadata();
    let cut_off = q.cut_off();
    let brokers = live_brokers(&md, listener)
        .filter(|(b, _)| !(cut_off && b.id == q.broker_id))
        .map(|(b, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    (brokers, topics)
}

async fn lookup_or_create(
    ctx: &Context,
    q: &Arc<Quorum>,
    name: &str,
    allow_create: bool,
    describe: &impl Fn(&ClusterMetadata, &str, &TopicMetadata) -> MetadataResponseTopic,
) -> MetadataResponseTopic {
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code.code())
    };
    let described = |q: &Arc<Quorum>| {
        let md = q.metadata();
        md.topics.get(name).map(|t| describe(&md, name, t))
    };
    if let Some(t) = described(q) {
        return t;
    }
    if invalid_topic_name(name).is_some() {
        return error(ResponseError::InvalidTopicException);
    }
    if !allow_create {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    let topic = NewTopic {
        name,
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignment: None,
    };
    match ctx.registry.admin_create_topic(topic, false).await {
        Ok(_) => described(q).unwrap_or_else(|| error(ResponseError::LeaderNotAvailable)),
        // Another request (maybe on another broker) created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            described(q).unwrap_or_else(|| error(ResponseError::LeaderNotAvailable))
        }
        Err(e) => error(e.code),
    }
}

/// One topic as Metadata shows it. A partition this broker (`me`) stepped down from leading
/// without a controller session (its replica in `local`) is shown without a leader.
fn describe(
    md: &ClusterMetadata,
    name: &str,
    topic: &TopicMetadata,
    me: i32,
    local: Option<&Topic>,
) -> MetadataResponseTopic {
    let deposed = |index: i32| {
        local
            .and_then(|t| t.partition(index))
            .is_some_and(|p| p.is_stepped_down())
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| endpoint(md, *r).is_none())
                .collect();
            let leader = if p.leader == me && deposed(index) {
                NO_LEADER
            } else {
                p.leader
            };
            let code = if leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal(name))
        .with_topic_authorized_operations(NO_AUTHORIZED_OPERATIONS)
        .with_partitions(partitions)
}

/// DescribeCluster's brokers.
pub fn describe_cluster_brokers(
    md: &ClusterMetadata,
    listener: &str,
) -> Vec<DescribeClusterBroker> {
    live_brokers(md, listener)
        .map(|(b, (host, port))| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use spate_meta::BrokerRegistration;
    use uuid::Uuid;

    use super::*;

    fn with_brokers(brokers: &[(i32, bool)]) -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        for &(id, fenced) in brokers {
            let b = BrokerRegistration {
                id,
                incarnation: Uuid::new_v4(),
                epoch: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                listeners: vec![],
                rack: None,
                fenced,
                shutting_down: false,
            };
            md.brokers.insert(id, b);
        }
        md
    }

    #[test]
    fn the_reported_controller_is_always_a_live_broker() {
        let md = with_brokers(&[(4, false), (5, true), (6, false)]);
        // Combined mode: the raft leader is a live broker.
        assert_eq!(controller_id(&md, 6, 4), 6);
        // The raft leader is a controller-only node (1, never registered), or unknown (-1):
        // this broker, if live, else the lowest live one.
        assert_eq!(controller_id(&md, 1, 6), 6);
        assert_eq!(controller_id(&md, -1, 6), 6);
        assert_eq!(
            controller_id(&md, 1, 5),
            4,
            "a fenced broker is not reported"
        );
        assert_eq!(controller_id(&md, 5, 5), 4);
        assert_eq!(controller_id(&with_brokers(&[(5, true)]), 1, 5), -1);
    }
}
