//! Replication between brokers: three in-process brokers, a
//! topic with three replicas, followers fetching from the leader, the ISR shrinking when a
//! follower stops and growing again when it is back.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::cluster_configs;
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;
use tokio::time::Instant;

const NOT_ENOUGH_REPLICAS: i16 = 19;
const LAG_MS: u64 = 1500;

fn configs(dirs: &[tempfile::TempDir]) -> Vec<BrokerConfig> {
    cluster_configs(
        dirs,
        &[
            ("offsets.topic.num.partitions", "1".into()),
            ("replica.lag.time.max.ms", LAG_MS.to_string()),
        ],
    )
}

async fn metadata(conn: &mut TcpStream, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(false);
    call(conn, ApiKey::Metadata, 12, &req).await
}

fn produce_to(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

async fn produce(conn: &mut TcpStream, topic: &str, value: &str) -> (i16, i64) {
    let resp: ProduceResponse = call(
        conn,
        ApiKey::Produce,
        9,
        &produce_to(topic, batch(&[value])),
    )
    .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The partition's log segments, concatenated.
fn log_bytes(dir: &Path, topic: &str) -> Vec<u8> {
    let pdir = dir.join(format!("{topic}-0"));
    let mut files: Vec<_> = std::fs::read_dir(&pdir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// Polls `check` until it holds or `within` passes.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn partition_state(addr: std::net::SocketAddr, topic: &str) -> (i32, Vec<i32>, Vec<i32>) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let md = metadata(&mut conn, topic).await;
    let p = md.topics[0].partitions.first().cloned().unwrap_or_default();
    (
        p.leader_id.0,
        p.replica_nodes.iter().map(|b| b.0).collect(),
        p.isr_nodes.iter().map(|b| b.0).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_replicate_and_the_isr_shrinks_and_grows_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs);
    let starts = configs.iter().cloned().map(Broker::start);
    let mut brokers: Vec<Option<Broker>> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|b| Some(b.unwrap()))
        .collect();
    let addr = |brokers: &[Option<Broker>], id: i32| {
        brokers[(id - 1) as usize].as_ref().unwrap().local_addr
    };

    let mut conn = TcpStream::connect(addr(&brokers, 1)).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("replicated")))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_static_str("2"))),
            ])]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);

    let (leader, replicas, isr) = partition_state(addr(&brokers, 1), "replicated").await;
    assert_eq!(replicas.len(), 3);
    assert_eq!(isr.len(), 3);
    let follower = *replicas.iter().find(|id| **id != leader).unwrap();
    let others: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();

    // acks=all through the leader: every follower ends with the leader's bytes.
    let mut to_leader = TcpStream::connect(addr(&brokers, leader)).await.unwrap();
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked < 20 {
        let (code, offset) = produce(&mut to_leader, "replicated", &format!("value-{acked}")).await;
        if [3, 5, 6].contains(&code) && Instant::now() < deadline {
            // Metadata not applied on the leader yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!((code, offset), (0, acked), "acks=all produce {acked}");
        acked += 1;
    }
    let leader_dir = dirs[(leader - 1) as usize].path().to_path_buf();
    for f in &others {
        let dir = dirs[(*f - 1) as usize].path().to_path_buf();
        eventually(
            Duration::from_secs(20),
            "byte-identical follower logs",
            || {
                let (a, b) = (
                    log_bytes(&leader_dir, "replicated"),
                    log_bytes(&dir, "replicated"),
                );
                async move { !a.is_empty() && a == b }
            },
        )
        .await;
    }
    // Consumers see everything acknowledged: the high watermark is the log end.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("replicated")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetched: FetchResponse = call(&mut to_leader, ApiKey::Fetch, 12, &fetch).await;
    let fp = &fetched.responses[0].partitions[0];
    assert_eq!((fp.error_code, fp.high_watermark), (0, 20));

    // Stop a follower: after the lag time the leader drops it from the ISR.
    brokers[(follower - 1) as usize]
        .take()
        .unwrap()
        .shutdown()
        .await;
    let leader_addr = addr(&brokers, leader);
    eventually(
        Duration::from_secs(20),
        "the ISR to shrink",
        || async move {
            let (_, _, isr) = partition_state(leader_addr, "replicated").await;
            isr.len() == 2 && !isr.contains(&follower)
        },
    )
    .await;
    // min.insync.replicas=2 still takes acks=all writes.
    let (code, offset) = produce(&mut to_leader, "replicated", "with-two").await;
    assert_eq!((code, offset), (0, 20));

    // min.insync.replicas=3 refuses them.
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("replicated"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_static_str("3")))]),
    ]);
    let altered: AlterConfigsResponse = call(&mut to_leader, ApiKey::AlterConfigs, 1, &alter).await;
    assert_eq!(
        altered.responses[0].error_code, 0,
        "{:?}",
        altered.responses[0]
    );
    let before = partition_state(leader_addr, "replicated").await;
    let (code, _) = produce(&mut to_leader, "replicated", "with-three").await;
    let after = partition_state(leader_addr, "replicated").await;
    assert_eq!(code, NOT_ENOUGH_REPLICAS, "{before:?} {after:?}");

    // Restart it: it catches up and rejoins the ISR; then min.insync.replicas=3 is met.
    brokers[(follower - 1) as usize] = Some(
        Broker::start(configs[(follower - 1) as usize].clone())
            .await
            .unwrap(),
    );
    eventually(
        Duration::from_secs(30),
        "the follower to rejoin the ISR",
        || async move {
            let (_, _, isr) = partition_state(leader_addr, "replicated").await;
            isr.len() == 3
        },
    )
    .await;
    let follower_dir = dirs[(follower - 1) as usize].path().to_path_buf();
    eventually(
        Duration::from_secs(20),
        "the restarted follower's log",
        || {
            let (a, b) = (
                log_bytes(&leader_dir, "replicated"),
                log_bytes(&follower_dir, "replicated"),
            );
            async move { a == b }
        },
    )
    .await;
    let (code, offset) = produce(&mut to_leader, "replicated", "with-three-again").await;
    assert_eq!((code, offset), (0, 21));

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_replicas_than_registered_brokers_are_refused() {
    let dirs: Vec<_> = (0..1).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = configs(&dirs).remove(0);
    let broker = Broker::start(config).await.unwrap();
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("two")))
            .with_num_partitions(1)
            .with_replication_factor(2)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(
        created.topics[0].error_code, 38,
        "INVALID_REPLICATION_FACTOR"
    );
    let message = created.topics[0]
        .error_message
        .as_deref()
        .unwrap_or_default();
    assert!(
        message.contains("only 1 broker(s) are registered"),
        "{message}"
    );
    broker.shutdown().await;
}

async fn create(conn: &mut TcpStream, name: &'static str, rf: i16) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_num_partitions(1)
            .with_replication_factor(rf)]);
    let created: CreateTopicsResponse = call(conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
}

/// acks=all until `n` records are acknowledged, retrying metadata errors.
async fn produce_n(addr: std::net::SocketAddr, topic: &str, from: i64, n: i64) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = from;
    while next < from + n {
        let (code, offset) = produce(&mut conn, topic, &format!("value-{next}")).await;
        if [3, 5, 6, 7].contains(&code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!((code, offset), (0, next), "acks=all produce {next}");
        next += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_hands_over_and_follows_the_new_leader() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs);
    let starts = configs.iter().cloned().map(Broker::start);
    let mut brokers: Vec<Option<Broker>> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|b| Some(b.unwrap()))
        .collect();
    let addr = |brokers: &[Option<Broker>], id: i32| {
        brokers[(id - 1) as usize].as_ref().unwrap().local_addr
    };
    let mut conn = TcpStream::connect(addr(&brokers, 1)).await.unwrap();
    create(&mut conn, "handover", 3).await;
    let (old_leader, _, _) = partition_state(addr(&brokers, 1), "handover").await;
    produce_n(addr(&brokers, old_leader), "handover", 0, 5).await;

    // Restart the leader: its new incarnation leaves the ISR and leadership moves on, in a
    // new leader epoch; it then follows the new leader and rejoins the ISR.
    let i = (old_leader - 1) as usize;
    brokers[i].take().unwrap().shutdown().await;
    brokers[i] = Some(Broker::start(configs[i].clone()).await.unwrap());
    let watcher = addr(&brokers, if old_leader == 1 { 2 } else { 1 });
    eventually(
        Duration::from_secs(30),
        "a new leader with the old one back in the ISR",
        || async move {
            let (leader, _, isr) = partition_state(watcher, "handover").await;
            leader != old_leader && leader > 0 && isr.len() == 3
        },
    )
    .await;
    let (new_leader, _, _) = partition_state(watcher, "handover").await;
    produce_n(addr(&brokers, new_leader), "handover", 5, 5).await;
    let leader_dir = dirs[(new_leader - 1) as usize].path().to_path_buf();
    for d in &dirs {
        let dir = d.path().to_path_buf();
        let leader_dir = leader_dir.clone();
        eventually(Duration::from_secs(20), "byte-identical logs", || {
            let (a, b) = (
                log_bytes(&leader_dir, "handover"),
                log_bytes(&dir, "handover"),
            );
            async move { !a.is_empty() && a == b }
        })
        .await;
    }

    // A follower whose last fetched epoch (0) ends before its fetch offset is told where
    // that epoch ends on the leader: offset 5, where the new leader's epoch starts.
    let mut conn = TcpStream::connect(watcher).await.unwrap();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            fetch_request::ReplicaState::default().with_replica_id(BrokerId(old_leader)),
        )
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic_id(metadata(&mut conn, "handover").await.topics[0].topic_id)
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(7)
                .with_last_fetched_epoch(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut to_leader = TcpStream::connect(addr(&brokers, new_leader))
        .await
        .unwrap();
    let fetched: FetchResponse = call(&mut to_leader, ApiKey::Fetch, 15, &fetch).await;
    let fp = &fetched.responses[0].partitions[0];
    assert_eq!(fp.error_code, 0);
    assert_eq!(
        (fp.diverging_epoch.epoch, fp.diverging_epoch.end_offset),
        (0, 5)
    );

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}
