//! Node roles in the metadata quorum: three voters and two broker-only nodes
//! (`node.id` not among `controller.quorum.voters`), all in process on loopback. Broker-only
//! nodes join as raft learners, receive the metadata, host replicas and serve Metadata like
//! voters; a restarted one rejoins (on a new raft port: an address change); stopping one does
//! not touch the quorum; UnregisterBroker removes it; DescribeQuorum reports voters and
//! observers; AddRaftVoter/RemoveRaftVoter promote and demote a node. Controller-only voters
//! (`process.roles=controller`) run a cluster of broker-only nodes without ever being seen by
//! clients, through a broker failover and a controller failover.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{addr, cluster_configs, eventually, quorum_voters, start_all};
use common::{batch, call, http_get};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use spate_broker::config::BrokerConfig;
use spate_broker::{Broker, Controller};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Short liveness timings and replication, for every node.
const EXTRA: [(&str, &str); 4] = [
    ("offsets.topic.num.partitions", "1"),
    ("replica.lag.time.max.ms", "1500"),
    ("broker.heartbeat.interval.ms", "200"),
    ("broker.session.timeout.ms", "3000"),
];

/// Node `id`'s config in the quorum of `voters`: Kafka listener on a free port, no HTTP
/// endpoint, then [`EXTRA`] and `more` (later settings win).
fn node_config(
    id: usize,
    dir: &tempfile::TempDir,
    voters: &str,
    more: &[(&str, &str)],
) -> BrokerConfig {
    let dir = dir.path().display().to_string();
    let id = id.to_string();
    let mut cli = vec![
        ("node.id", id.as_str()),
        ("listeners", "127.0.0.1:0"),
        ("log.dirs", dir.as_str()),
        ("http.listeners", ""),
        ("controller.quorum.voters", voters),
    ];
    cli.extend(EXTRA);
    cli.extend_from_slice(more);
    let cli = cli.into_iter().map(|(k, v)| (k.to_string(), v.to_string()));
    BrokerConfig::load(None, vec![], cli).unwrap()
}

/// `voters` voter configs (ids 1..=voters) and `broker_only` more (the next ids), sharing
/// `controller.quorum.voters`; broker-only nodes leave `controller.listener` at its default.
fn configs(dirs: &[tempfile::TempDir], voters: usize) -> Vec<BrokerConfig> {
    let extra = EXTRA.map(|(k, v)| (k, v.to_string()));
    let mut configs = cluster_configs(&dirs[..voters], &extra);
    let quorum = configs[0].raw["controller.quorum.voters"].clone();
    for (i, dir) in dirs.iter().enumerate().skip(voters) {
        configs.push(node_config(i + 1, dir, &quorum, &[]));
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

/// The raft leader `addr` reports; `None` while DescribeQuorum fails (an election).
async fn quorum_leader(addr: SocketAddr) -> Option<i32> {
    let mut conn = TcpStream::connect(addr).await.ok()?;
    let req = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0)
            ]),
    ]);
    let resp: DescribeQuorumResponse = call(&mut conn, ApiKey::DescribeQuorum, 2, &req).await;
    let p = resp.topics.first()?.partitions.first()?;
    (resp.error_code == 0 && p.error_code == 0).then_some(p.leader_id.0)
}

/// Every value a consumer reads from `topic`/`partition` at `addr`, once the high watermark
/// has reached `at_least`.
async fn read_values(addr: SocketAddr, topic: &str, partition: i32, at_least: i64) -> Vec<String> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut values, mut offset) = (Vec::new(), 0);
    loop {
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let fetched: FetchResponse = call(&mut conn, ApiKey::Fetch, 12, &fetch).await;
        let p = &fetched.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        if let Some(mut records) = p.records.clone().filter(|r| !r.is_empty()) {
            for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
                for r in set.records {
                    offset = r.offset + 1;
                    values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
        }
        if offset >= p.high_watermark && p.high_watermark >= at_least {
            return values;
        }
        assert!(Instant::now() < deadline, "high watermark below {at_least}");
    }
}

/// (leader, ISR) of `topic`/`partition` as `addr` reports it; leader -1 when unknown.
async fn leader_and_isr(addr: SocketAddr, topic: &str, partition: i32) -> (i32, Vec<i32>) {
    let (_, topics) = view(addr).await;
    topics
        .iter()
        .find(|t| t.0 == topic)
        .and_then(|t| t.1.iter().find(|p| p.0 == partition))
        .map_or((-1, vec![]), |p| (p.1, p.3.clone()))
}

/// One sample of an unlabelled gauge in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The Kafka listener of broker-only node `id` in the controller-only test (ids 4..=6).
fn kafka(brokers: &[Option<Broker>], id: i32) -> SocketAddr {
    brokers[(id - 4) as usize].as_ref().unwrap().local_addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_only_voters_run_a_cluster_of_broker_only_nodes() {
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters = quorum_voters(3);
    // The voters' own loopback host: nothing else binds Kafka's port there, so a connection
    // would have to be a controller serving `listeners` despite its role.
    let first = voters.split(',').next().unwrap();
    let host = first.split_once('@').unwrap().1.rsplit_once(':').unwrap().0;
    let ignored_listener = format!("{host}:9092");
    let controller_configs: Vec<_> = (1..=3)
        .map(|id| {
            let more = [
                ("process.roles", "controller"),
                ("listeners", ignored_listener.as_str()),
                ("http.listeners", "127.0.0.1:0"),
            ];
            node_config(id, &dirs[id - 1], &voters, &more)
        })
        .collect();
    let broker_configs: Vec<_> = (4..=6)
        .map(|id| node_config(id, &dirs[id - 1], &voters, &[("process.roles", "broker")]))
        .collect();
    let (controllers, mut brokers) = futures_util::future::join(
        futures_util::future::join_all(controller_configs.into_iter().map(Controller::start)),
        start_all(&broker_configs),
    )
    .await;
    let mut controllers: Vec<Option<Controller>> =
        controllers.into_iter().map(|c| Some(c.unwrap())).collect();

    // Controllers: ready once in the quorum with a known leader; no Kafka listener; metrics
    // name one active controller among them.
    assert!(TcpStream::connect(ignored_listener.as_str()).await.is_err());
    let https: Vec<SocketAddr> = controllers
        .iter()
        .map(|c| c.as_ref().unwrap().http_addr.unwrap())
        .collect();
    for &http in &https {
        eventually(
            Duration::from_secs(20),
            "a ready controller",
            || async move { http_get(http, "/readyz").await.0 == 200 },
        )
        .await;
    }
    let mut active = 0.0;
    for &http in &https {
        let (_, text) = http_get(http, "/metrics").await;
        let leader = gauge(&text, "spate_raft_leader").unwrap();
        assert!((1.0..=3.0).contains(&leader), "raft leader {leader}");
        active += gauge(&text, "spate_active_controller").unwrap();
        assert_eq!(
            gauge(&text, "spate_partition_count"),
            None,
            "no broker metrics"
        );
    }
    assert_eq!(active, 1.0);

    // Brokers: Metadata lists exactly the three of them, and names a live broker (itself) as
    // the controller, never a controller-only node; DescribeCluster agrees.
    for id in 4..=6 {
        let a = kafka(&brokers, id);
        eventually(
            Duration::from_secs(20),
            "the three brokers",
            || async move { view(a).await.0 == (4..=6).collect() },
        )
        .await;
        assert_eq!(metadata(a).await.controller_id.0, id);
    }
    let mut conn = TcpStream::connect(kafka(&brokers, 5)).await.unwrap();
    let cluster: DescribeClusterResponse = call(
        &mut conn,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    )
    .await;
    let listed: BTreeSet<i32> = cluster.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!((listed, cluster.controller_id.0), ((4..=6).collect(), 5));

    // DescribeQuorum (asked of a broker): the controller-only voters and the broker observers.
    let four = kafka(&brokers, 4);
    eventually(Duration::from_secs(20), "the quorum", || async move {
        let (leader, _, hw, voters, observers) = describe_quorum(four).await;
        (1..=3).contains(&leader)
            && ids(&voters) == [1, 2, 3]
            && ids(&observers) == [4, 5, 6]
            && observers.iter().all(|o| o.1 >= hw)
    })
    .await;

    // RF 3 topics are created through a broker and placed on the brokers only.
    create_topic(four, "events", 3, 3).await;
    eventually(Duration::from_secs(30), "full ISRs", || async move {
        let (_, topics) = view(four).await;
        topics.iter().find(|t| t.0 == "events").is_some_and(|t| {
            t.1.len() == 3
                && t.1.iter().all(|p| {
                    (4..=6).contains(&p.1) && p.3.len() == 3 && p.2.iter().all(|r| *r >= 4)
                })
        })
    })
    .await;
    let (old_leader, _) = leader_and_isr(four, "events", 0).await;
    assert_eq!(
        produce_one(kafka(&brokers, old_leader), "events", 0, "v0").await,
        0
    );
    assert_eq!(
        read_values(kafka(&brokers, old_leader), "events", 0, 1).await,
        ["v0"]
    );

    // The partition's leader crashes: the controller (a controller-only node, the only kind
    // that can lead the quorum) fences it and an in-sync broker takes over.
    brokers[(old_leader - 4) as usize]
        .take()
        .unwrap()
        .shutdown()
        .await;
    let survivor = kafka(&brokers, if old_leader == 4 { 5 } else { 4 });
    eventually(
        Duration::from_secs(30),
        "leadership to move to an in-sync broker",
        || async move {
            let (leader, isr) = leader_and_isr(survivor, "events", 0).await;
            leader >= 4 && leader != old_leader && !isr.contains(&old_leader)
        },
    )
    .await;
    let (new_leader, _) = leader_and_isr(survivor, "events", 0).await;
    let new_leader_addr = kafka(&brokers, new_leader);
    assert_eq!(produce_one(new_leader_addr, "events", 0, "v1").await, 1);
    assert_eq!(
        read_values(new_leader_addr, "events", 0, 2).await,
        ["v0", "v1"]
    );

    // The active controller stops: the two other voters elect a new one, which takes
    // metadata changes.
    let old_controller = quorum_leader(survivor).await.unwrap();
    assert!(controllers[(old_controller - 1) as usize]
        .as_ref()
        .unwrap()
        .is_active());
    controllers[(old_controller - 1) as usize]
        .take()
        .unwrap()
        .shutdown()
        .await;
    eventually(
        Duration::from_secs(30),
        "a new active controller",
        || async move {
            quorum_leader(survivor)
                .await
                .is_some_and(|l| (1..=3).contains(&l) && l != old_controller)
        },
    )
    .await;
    let new_controller = quorum_leader(survivor).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the new controller to know it leads",
        || {
            let c = controllers[(new_controller - 1) as usize].as_ref().unwrap();
            let active = c.is_active();
            async move { active }
        },
    )
    .await;
    create_topic(survivor, "after-controller-failover", 1, 2).await;
    eventually(
        Duration::from_secs(30),
        "the new topic led",
        || async move {
            leader_and_isr(survivor, "after-controller-failover", 0)
                .await
                .0
                >= 4
        },
    )
    .await;
    let (leader, _) = leader_and_isr(survivor, "after-controller-failover", 0).await;
    assert_eq!(
        produce_one(kafka(&brokers, leader), "after-controller-failover", 0, "x").await,
        0
    );

    // Controller-only nodes never opened a partition log: their data is the metadata log.
    for dir in &dirs[..3] {
        let entries: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, ["__meta"], "{}", dir.path().display());
    }

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
    for c in controllers.into_iter().flatten() {
        c.shutdown().await;
    }
}
