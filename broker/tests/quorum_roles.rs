//! Node roles in the metadata quorum (issue 4): three voters and two broker-only nodes
//! (`node.id` not among `controller.quorum.voters`), all in process on loopback. Broker-only
//! nodes join as raft learners, receive the metadata, host replicas and serve Metadata like
//! voters; a restarted one rejoins (on a new raft port: an address change); stopping one does
//! not touch the quorum; UnregisterBroker removes it; DescribeQuorum reports voters and
//! observers; AddRaftVoter/RemoveRaftVoter promote and demote a node.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{addr, cluster_configs, eventually, start_all};
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `voters` voter configs (ids 1..=voters) and `broker_only` more (the next ids), sharing
/// `controller.quorum.voters`; broker-only nodes leave `controller.listener` at its default.
fn configs(dirs: &[tempfile::TempDir], voters: usize) -> Vec<BrokerConfig> {
    let extra = [
        ("offsets.topic.num.partitions", "1".to_string()),
        ("replication.enable", "true".into()),
        ("replica.lag.time.max.ms", "1500".into()),
        ("broker.heartbeat.interval.ms", "200".into()),
        ("broker.session.timeout.ms", "3000".into()),
    ];
    let mut configs = cluster_configs(&dirs[..voters], &extra);
    let quorum = configs[0].raw["controller.quorum.voters"].clone();
    for (i, dir) in dirs.iter().enumerate().skip(voters) {
        let mut cli: Vec<(String, String)> = [
            ("node.id", (i + 1).to_string()),
            ("listeners", "127.0.0.1:0".into()),
            ("log.dirs", dir.path().display().to_string()),
            ("http.listeners", String::new()),
            ("controller.quorum.voters", quorum.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        cli.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        configs.push(BrokerConfig::load(None, vec![], cli).unwrap());
    }
    configs
}

async fn metadata(addr: SocketAddr) -> MetadataResponse {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    call(&mut conn, ApiKey::Metadata, 12, &req).await
}

/// Broker ids and, per topic, (partition, leader, replicas, ISR), as `addr` reports them.
type View = (
    BTreeSet<i32>,
    Vec<(String, Vec<(i32, i32, Vec<i32>, Vec<i32>)>)>,
);

async fn view(addr: SocketAddr) -> View {
    let md = metadata(addr).await;
    let brokers = md.brokers.iter().map(|b| b.node_id.0).collect();
    let mut topics: Vec<_> = md
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                        p.isr_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            partitions.sort();
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                partitions,
            )
        })
        .collect();
    topics.sort();
    (brokers, topics)
}

async fn create_topic(addr: SocketAddr, name: &str, partitions: i32, replication_factor: i16) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
}

/// (leader, term, high watermark, voters with LEO, observers with LEO).
type Quorum = (i32, i32, i64, Vec<(i32, i64)>, Vec<(i32, i64)>);

async fn describe_quorum(addr: SocketAddr) -> Quorum {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0)
            ]),
    ]);
    let resp: DescribeQuorumResponse = call(&mut conn, ApiKey::DescribeQuorum, 2, &req).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    let replicas = |rs: &[describe_quorum_response::ReplicaState]| {
        let mut v: Vec<(i32, i64)> = rs
            .iter()
            .map(|r| (r.replica_id.0, r.log_end_offset))
            .collect();
        v.sort();
        v
    };
    // v2 names every voter's raft endpoint.
    let mut with_endpoints: Vec<i32> = resp
        .nodes
        .iter()
        .filter(|n| !n.listeners.is_empty())
        .map(|n| n.node_id.0)
        .collect();
    with_endpoints.sort();
    let voters = replicas(&p.current_voters);
    assert_eq!(
        with_endpoints,
        voters.iter().map(|v| v.0).collect::<Vec<_>>()
    );
    (
        p.leader_id.0,
        p.leader_epoch,
        p.high_watermark,
        voters,
        replicas(&p.observers),
    )
}

fn ids(replicas: &[(i32, i64)]) -> Vec<i32> {
    replicas.iter().map(|r| r.0).collect()
}

/// acks=all produce of one record to `topic`/`partition` through `addr`, retrying while
/// leadership and ISRs settle; returns its offset.
async fn produce_one(addr: SocketAddr, topic: &str, partition: i32, value: &str) -> i64 {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch(&[value]))),
                ])]);
        let resp: ProduceResponse = call(&mut conn, ApiKey::Produce, 9, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        if [3, 5, 6, 7, 19].contains(&p.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
        return p.base_offset;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_only_nodes_follow_the_quorum_host_replicas_and_come_and_go() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs, 3);
    let mut brokers = start_all(&configs).await;
    let all: BTreeSet<i32> = (1..=5).collect();

    // Every node, voter or not, lists all five brokers and the same controller, a voter.
    for id in 1..=5 {
        let a = addr(&brokers, id);
        eventually(Duration::from_secs(20), "all five brokers", || async move {
            view(a).await.0 == (1..=5).collect()
        })
        .await;
    }
    let controller = metadata(addr(&brokers, 4)).await.controller_id.0;
    assert!((1..=3).contains(&controller), "controller {controller}");

    // DescribeQuorum, asked of a broker-only node: three voters, two observers.
    let learner = addr(&brokers, 4);
    eventually(
        Duration::from_secs(20),
        "observers caught up",
        || async move {
            let (_, _, hw, voters, observers) = describe_quorum(learner).await;
            ids(&voters) == [1, 2, 3]
                && ids(&observers) == [4, 5]
                && observers.iter().all(|o| o.1 >= hw)
        },
    )
    .await;
    let (leader, term, hw, _, _) = describe_quorum(addr(&brokers, 1)).await;
    assert_eq!(leader, controller);
    assert!(term > 0 && hw > 0, "term {term}, high watermark {hw}");

    // A topic created through a broker-only node (its proposal is forwarded to the leader):
    // RF 3 over five brokers places replicas on the broker-only nodes too.
    create_topic(learner, "spread", 5, 3).await;
    eventually(Duration::from_secs(30), "full ISRs everywhere", || async {
        let (_, topics) = view(addr(&brokers, 1)).await;
        topics
            .iter()
            .find(|t| t.0 == "spread")
            .is_some_and(|t| t.1.len() == 5 && t.1.iter().all(|p| p.1 > 0 && p.3.len() == 3))
    })
    .await;
    let (_, topics) = view(addr(&brokers, 1)).await;
    let spread = topics.iter().find(|t| t.0 == "spread").unwrap().1.clone();
    let hosts: BTreeSet<i32> = spread.iter().flat_map(|p| p.2.clone()).collect();
    assert_eq!(hosts, all, "replicas on every broker: {spread:?}");
    // Every node serves the same metadata.
    for id in 2..=5 {
        let a = addr(&brokers, id);
        let want = view(addr(&brokers, 1)).await;
        eventually(Duration::from_secs(10), "the same metadata", || {
            let want = want.clone();
            async move { view(a).await == want }
        })
        .await;
    }
    // A partition led by a broker-only node takes acks=all writes.
    let (partition, leader) = spread
        .iter()
        .find(|p| p.1 >= 4)
        .map(|p| (p.0, p.1))
        .expect("a broker-only node leads a partition");
    assert_eq!(
        produce_one(addr(&brokers, leader), "spread", partition, "v0").await,
        0
    );

    // Stopping a broker-only node leaves the quorum alone: the metadata still changes.
    brokers[4].take().unwrap().shutdown().await;
    create_topic(addr(&brokers, 1), "while-5-is-down", 1, 3).await;
    let (_, _, _, voters, observers) = describe_quorum(addr(&brokers, 2)).await;
    assert_eq!((ids(&voters), ids(&observers)), (vec![1, 2, 3], vec![4, 5]));

    // It restarts (on another raft port: its default listener takes any free one), rejoins,
    // catches up, and sees the topic created while it was down.
    brokers[4] = Some(Broker::start(configs[4].clone()).await.unwrap());
    let back = addr(&brokers, 5);
    eventually(
        Duration::from_secs(20),
        "the restarted node to catch up",
        || async move { view(back).await.1.iter().any(|t| t.0 == "while-5-is-down") },
    )
    .await;
    let first = addr(&brokers, 1);
    eventually(
        Duration::from_secs(30),
        "it to follow the quorum again",
        || async move {
            let (_, _, hw, _, observers) = describe_quorum(first).await;
            ids(&observers) == [4, 5] && observers.iter().all(|o| o.1 >= hw)
        },
    )
    .await;

    // Decommissioned: stopped and unregistered, it leaves the brokers and the observers.
    brokers[4].take().unwrap().shutdown().await;
    let mut conn = TcpStream::connect(addr(&brokers, 3)).await.unwrap();
    let unregister = UnregisterBrokerRequest::default().with_broker_id(BrokerId(5));
    let resp: UnregisterBrokerResponse =
        call(&mut conn, ApiKey::UnregisterBroker, 0, &unregister).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    let (_, _, _, voters, observers) = describe_quorum(addr(&brokers, 4)).await;
    assert_eq!((ids(&voters), ids(&observers)), (vec![1, 2, 3], vec![4]));
    let four = addr(&brokers, 4);
    eventually(
        Duration::from_secs(10),
        "broker 5 to be gone",
        || async move { !view(four).await.0.contains(&5) },
    )
    .await;
    let resp: UnregisterBrokerResponse =
        call(&mut conn, ApiKey::UnregisterBroker, 0, &unregister).await;
    assert_eq!(
        resp.error_code, 102,
        "BROKER_ID_NOT_REGISTERED the second time"
    );

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_voters_are_added_and_removed_through_the_kafka_api() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs, 1);
    let brokers = start_all(&configs).await;
    let (one, two) = (addr(&brokers, 1), addr(&brokers, 2));
    eventually(
        Duration::from_secs(20),
        "the learner to be observed",
        || async move { ids(&describe_quorum(one).await.4) == [2] },
    )
    .await;

    // Promote broker 2 (asked of itself: forwarded to the leader); no listener given, so the
    // address it joined with is kept.
    let mut conn = TcpStream::connect(two).await.unwrap();
    let add = AddRaftVoterRequest::default()
        .with_voter_id(2)
        .with_timeout_ms(10_000);
    let resp: AddRaftVoterResponse = call(&mut conn, ApiKey::AddRaftVoter, 0, &add).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    let (_, _, _, voters, observers) = describe_quorum(two).await;
    assert_eq!((ids(&voters), ids(&observers)), (vec![1, 2], vec![]));

    // A wrong cluster id is refused; removing the last voter would be too.
    let wrong = RemoveRaftVoterRequest::default()
        .with_voter_id(2)
        .with_cluster_id(Some(StrBytes::from_static_str("another-cluster")));
    let resp: RemoveRaftVoterResponse = call(&mut conn, ApiKey::RemoveRaftVoter, 0, &wrong).await;
    assert_eq!(resp.error_code, 104, "INCONSISTENT_CLUSTER_ID");

    // Demoted, it stays an observer and keeps receiving metadata.
    let remove = RemoveRaftVoterRequest::default().with_voter_id(2);
    let resp: RemoveRaftVoterResponse = call(&mut conn, ApiKey::RemoveRaftVoter, 0, &remove).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    let (_, _, _, voters, observers) = describe_quorum(one).await;
    assert_eq!((ids(&voters), ids(&observers)), (vec![1], vec![2]));
    let remove_last = RemoveRaftVoterRequest::default().with_voter_id(1);
    let resp: RemoveRaftVoterResponse =
        call(&mut conn, ApiKey::RemoveRaftVoter, 0, &remove_last).await;
    assert_ne!(resp.error_code, 0, "the last voter cannot go");
    create_topic(one, "after-demotion", 1, 2).await;
    eventually(
        Duration::from_secs(10),
        "metadata on the observer",
        || async move { view(two).await.1.iter().any(|t| t.0 == "after-demotion") },
    )
    .await;

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}
