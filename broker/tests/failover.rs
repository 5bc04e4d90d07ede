//! Liveness and failover: three in-process brokers with short heartbeat and session
//! timeouts. The leader of an RF 3 topic
//! stops without a word (a crash, as far as the others can tell): the controller fences it,
//! an in-sync replica takes over with every acknowledged record, acks=all continues; the old
//! broker comes back, catches up, rejoins the ISR and gets its preferred leadership back.
//! A controlled shutdown moves leadership at once, without waiting for the session timeout.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::{addr, cluster_configs, eventually, start_all};
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;
use tokio::time::Instant;

const TOPIC: &str = "failover";

fn configs(dirs: &[tempfile::TempDir], session_ms: u64) -> Vec<BrokerConfig> {
    cluster_configs(
        dirs,
        &[
            ("offsets.topic.num.partitions", "1".into()),
            ("replica.lag.time.max.ms", "1500".into()),
            ("broker.heartbeat.interval.ms", "200".into()),
            ("broker.session.timeout.ms", session_ms.to_string()),
            ("leader.imbalance.check.interval.seconds", "1".into()),
        ],
    )
}

/// (leader, replicas, ISR) of partition 0 as `addr` sees it; leader -1 when unknown.
async fn partition_state(addr: SocketAddr) -> (i32, Vec<i32>, Vec<i32>) {
    let Ok(mut conn) = TcpStream::connect(addr).await else {
        return (-1, vec![], vec![]);
    };
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]))
        .with_allow_auto_topic_creation(false);
    let md: MetadataResponse = call(&mut conn, ApiKey::Metadata, 12, &req).await;
    let Some(p) = md.topics.first().and_then(|t| t.partitions.first()) else {
        return (-1, vec![], vec![]);
    };
    (
        p.leader_id.0,
        p.replica_nodes.iter().map(|b| b.0).collect(),
        p.isr_nodes.iter().map(|b| b.0).collect(),
    )
}

async fn create_topic(addr: SocketAddr) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_static_str("2"))),
            ])]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
}

fn produce_request(records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

/// acks=all through `addr` until records `from..from + n` are acknowledged at those offsets,
/// retrying the errors a client retries after refreshing metadata.
async fn produce_n(addr: SocketAddr, from: i64, n: i64) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = from;
    while next < from + n {
        let value = format!("value-{next}");
        let resp: ProduceResponse = call(
            &mut conn,
            ApiKey::Produce,
            9,
            &produce_request(batch(&[&value])),
        )
        .await;
        let p = &resp.responses[0].partition_responses[0];
        // Unknown topic, leader not available, not leader, request timed out, not enough
        // replicas: metadata or the ISR still settling.
        if [3, 5, 6, 7, 19].contains(&p.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, next),
            "acks=all produce {next}: {:?}",
            p.error_message
        );
        next += 1;
    }
}

/// Every value a consumer reads from the partition's leader at `addr` (up to the high
/// watermark), once the high watermark has reached `at_least`.
async fn read_all(addr: SocketAddr, at_least: i64) -> Vec<String> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let fetched: FetchResponse = call(&mut conn, ApiKey::Fetch, 12, &fetch).await;
        let p = &fetched.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        if let Some(mut records) = p.records.clone().filter(|r| !r.is_empty()) {
            for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
                for r in set.records {
                    assert_eq!(r.offset, offset, "offsets are dense and in order");
                    offset = r.offset + 1;
                    let v = r.value.unwrap();
                    values.push(String::from_utf8(v.to_vec()).unwrap());
                }
            }
        }
        if offset >= p.high_watermark && p.high_watermark >= at_least {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "high watermark {} did not reach {at_least}",
            p.high_watermark
        );
    }
}

fn expected(n: i64) -> Vec<String> {
    (0..n).map(|i| format!("value-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_fenced_replaced_and_gets_its_leadership_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs, 1500);
    let mut brokers = start_all(&configs).await;
    create_topic(addr(&brokers, 1)).await;
    let first = addr(&brokers, 1);
    eventually(Duration::from_secs(20), "a full ISR", || async move {
        let (leader, _, isr) = partition_state(first).await;
        leader > 0 && isr.len() == 3
    })
    .await;
    let (old_leader, replicas, _) = partition_state(first).await;
    assert_eq!(
        replicas[0], old_leader,
        "a new partition is led by its preferred replica"
    );

    const N: i64 = 30;
    produce_n(addr(&brokers, old_leader), 0, N).await;

    // The leader stops without a controlled shutdown: to the others, a crash.
    let started = Instant::now();
    brokers[(old_leader - 1) as usize]
        .take()
        .unwrap()
        .shutdown()
        .await;
    let watcher = addr(&brokers, if old_leader == 1 { 2 } else { 1 });
    eventually(
        Duration::from_secs(30),
        "an in-sync replica to take over",
        || async move {
            let (leader, _, isr) = partition_state(watcher).await;
            leader > 0 && leader != old_leader && !isr.contains(&old_leader)
        },
    )
    .await;
    let (new_leader, _, isr) = partition_state(watcher).await;
    eprintln!(
        "broker {new_leader} leads after {:?} (ISR {isr:?})",
        started.elapsed()
    );

    // Everything acknowledged is there, in order, once; acks=all goes on with two replicas.
    assert_eq!(read_all(addr(&brokers, new_leader), N).await, expected(N));
    produce_n(addr(&brokers, new_leader), N, 10).await;
    assert_eq!(
        read_all(addr(&brokers, new_leader), N + 10).await,
        expected(N + 10)
    );

    // The old broker comes back: it catches up, rejoins the ISR and, being the preferred
    // replica, leads again.
    let i = (old_leader - 1) as usize;
    brokers[i] = Some(Broker::start(configs[i].clone()).await.unwrap());
    eventually(
        Duration::from_secs(40),
        "the old leader to rejoin the ISR and lead again",
        || async move {
            let (leader, _, isr) = partition_state(watcher).await;
            leader == old_leader && isr.len() == 3
        },
    )
    .await;
    let back = addr(&brokers, old_leader);
    eventually(
        Duration::from_secs(20),
        "the old leader to serve",
        || async move { partition_state(back).await.0 == old_leader },
    )
    .await;
    produce_n(back, N + 10, 10).await;
    assert_eq!(read_all(back, N + 20).await, expected(N + 20));

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_shutdown_moves_leadership_without_waiting_for_the_session_timeout() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // A session far longer than the test's deadlines: fencing cannot be what moves leadership.
    let configs = configs(&dirs, 120_000);
    let mut brokers = start_all(&configs).await;
    create_topic(addr(&brokers, 1)).await;
    let first = addr(&brokers, 1);
    eventually(Duration::from_secs(20), "a full ISR", || async move {
        let (leader, _, isr) = partition_state(first).await;
        leader > 0 && isr.len() == 3
    })
    .await;
    let (old_leader, _, _) = partition_state(first).await;
    produce_n(addr(&brokers, old_leader), 0, 10).await;

    let started = Instant::now();
    brokers[(old_leader - 1) as usize]
        .take()
        .unwrap()
        .controlled_shutdown()
        .await;
    let watcher = addr(&brokers, if old_leader == 1 { 2 } else { 1 });
    eventually(
        Duration::from_secs(10),
        "leadership to move on controlled shutdown",
        || async move {
            let (leader, _, isr) = partition_state(watcher).await;
            leader > 0 && leader != old_leader && !isr.contains(&old_leader)
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let (new_leader, _, _) = partition_state(watcher).await;
    assert_eq!(read_all(addr(&brokers, new_leader), 10).await, expected(10));
    produce_n(addr(&brokers, new_leader), 10, 5).await;
    assert_eq!(read_all(addr(&brokers, new_leader), 15).await, expected(15));

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}
