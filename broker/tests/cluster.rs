//! Cluster mode: three in-process brokers, each a voter of the metadata
//! quorum, on distinct ports of 127.0.0.1 with separate data directories.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::cluster::cluster_configs;
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Calls until the answer's error code is not a retriable metadata one (unknown topic, leader
/// not available, not leader): brokers apply committed metadata a moment apart, and clients
/// retry these after refreshing metadata.
async fn call_settled<
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
>(
    conn: &mut TcpStream,
    api: ApiKey,
    version: i16,
    req: &Req,
    code: impl Fn(&Resp) -> i16,
    want: i16,
) -> Resp {
    for _ in 0..50 {
        let resp: Resp = call(conn, api, version, req).await;
        let c = code(&resp);
        if c == want || ![3, 5, 6].contains(&c) {
            return resp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    call(conn, api, version, req).await
}

fn produce_code(r: &ProduceResponse) -> i16 {
    r.responses[0].partition_responses[0].error_code
}

fn fetch_code(r: &FetchResponse) -> i16 {
    r.responses[0].partitions[0].error_code
}

fn configs(dirs: &[tempfile::TempDir]) -> Vec<BrokerConfig> {
    cluster_configs(dirs, &[("offsets.topic.num.partitions", "3".into())])
}

async fn start_cluster(configs: &[BrokerConfig]) -> Vec<Broker> {
    let starts = configs.iter().cloned().map(Broker::start);
    futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn metadata(conn: &mut TcpStream, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    call(conn, ApiKey::Metadata, 12, &req).await
}

fn produce_to(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

fn fetch_from(topic: &str, partition: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_spread_partitions_and_serve_through_each_leader() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers = start_cluster(&configs(&dirs)).await;
    let addrs: BTreeMap<i32, std::net::SocketAddr> = brokers
        .iter()
        .enumerate()
        .map(|(i, b)| (i as i32 + 1, b.local_addr))
        .collect();
    let mut conn = TcpStream::connect(addrs[&1]).await.unwrap();

    // Every broker registered, unfenced and visible with its own endpoint.
    let md = metadata(&mut conn, None).await;
    let brokers_seen: BTreeMap<i32, i32> =
        md.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
    let expected: BTreeMap<i32, i32> = addrs.iter().map(|(id, a)| (*id, a.port() as i32)).collect();
    assert_eq!(brokers_seen, expected);
    assert!(
        (1..=3).contains(&md.controller_id.0),
        "controller {}",
        md.controller_id.0
    );

    // A topic created through broker 1 is placed on all three.
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("spread")))
            .with_num_partitions(6)
            .with_replication_factor(1)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    assert_eq!(created.topics[0].num_partitions, 6);

    let md = metadata(&mut conn, Some(&["spread"])).await;
    let topic = &md.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 6);
    let leaders: Vec<i32> = topic.partitions.iter().map(|p| p.leader_id.0).collect();
    let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
    for l in &leaders {
        *per_broker.entry(*l).or_default() += 1;
    }
    assert_eq!(
        per_broker,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders {leaders:?}"
    );
    for p in &topic.partitions {
        assert_eq!(p.replica_nodes, vec![p.leader_id]);
        assert_eq!(p.isr_nodes, vec![p.leader_id]);
    }

    // Produce and fetch through each partition's leader; the others refuse.
    for p in &topic.partitions {
        let (index, leader) = (p.partition_index, p.leader_id.0);
        let mut to_leader = TcpStream::connect(addrs[&leader]).await.unwrap();
        let value = format!("record-of-{index}");
        let resp: ProduceResponse = call_settled(
            &mut to_leader,
            ApiKey::Produce,
            9,
            &produce_to("spread", index, batch(&[&value])),
            produce_code,
            0,
        )
        .await;
        let pr = &resp.responses[0].partition_responses[0];
        assert_eq!((pr.error_code, pr.base_offset), (0, 0), "partition {index}");

        let fetched: FetchResponse = call(
            &mut to_leader,
            ApiKey::Fetch,
            12,
            &fetch_from("spread", index),
        )
        .await;
        let fp = &fetched.responses[0].partitions[0];
        assert_eq!((fp.error_code, fp.high_watermark), (0, 1));
        let records = fp.records.clone().unwrap();
        assert!(
            records.windows(value.len()).any(|w| w == value.as_bytes()),
            "partition {index} returned its record"
        );

        let other = addrs.keys().find(|id| **id != leader).copied().unwrap();
        let mut to_other = TcpStream::connect(addrs[&other]).await.unwrap();
        let refused: ProduceResponse = call_settled(
            &mut to_other,
            ApiKey::Produce,
            9,
            &produce_to("spread", index, batch(&["nope"])),
            produce_code,
            NOT_LEADER_OR_FOLLOWER,
        )
        .await;
        assert_eq!(
            refused.responses[0].partition_responses[0].error_code,
            NOT_LEADER_OR_FOLLOWER
        );
        let refused: FetchResponse = call_settled(
            &mut to_other,
            ApiKey::Fetch,
            12,
            &fetch_from("spread", index),
            fetch_code,
            NOT_LEADER_OR_FOLLOWER,
        )
        .await;
        assert_eq!(
            refused.responses[0].partitions[0].error_code,
            NOT_LEADER_OR_FOLLOWER
        );
    }

    // Every broker knows the topic, and the group coordinator is the leader of the group's
    // __consumer_offsets partition.
    for addr in addrs.values() {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let md = metadata(&mut c, Some(&["spread"])).await;
        assert_eq!(md.topics[0].partitions.len(), 6);
    }
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_static_str("g1")]);
    let found: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 4, &find).await;
    let coordinator = &found.coordinators[0];
    assert_eq!(coordinator.error_code, 0, "{coordinator:?}");
    let md = metadata(&mut conn, Some(&["__consumer_offsets"])).await;
    let leaders: BTreeSet<i32> = md.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert!(leaders.contains(&coordinator.node_id.0));
    assert_eq!(
        coordinator.port,
        addrs[&coordinator.node_id.0].port() as i32
    );

    for b in brokers {
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_registers_again_and_leads_its_partitions_with_its_data() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs);
    let mut brokers = start_cluster(&configs).await;
    let mut conn = TcpStream::connect(brokers[0].local_addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("kept")))
            .with_num_partitions(3)
            .with_replication_factor(1)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0);
    let md = metadata(&mut conn, Some(&["kept"])).await;
    let on_two = md.topics[0]
        .partitions
        .iter()
        .find(|p| p.leader_id.0 == 2)
        .map(|p| p.partition_index)
        .unwrap();
    let mut to_two = TcpStream::connect(brokers[1].local_addr).await.unwrap();
    let resp: ProduceResponse = call_settled(
        &mut to_two,
        ApiKey::Produce,
        9,
        &produce_to("kept", on_two, batch(&["survives-restart"])),
        produce_code,
        0,
    )
    .await;
    assert_eq!(produce_code(&resp), 0);

    // Restart broker 2 on the same data directory; its client port changes.
    let two = brokers.remove(1);
    two.shutdown().await;
    let two = Broker::start(configs[1].clone()).await.unwrap();
    let new_port = two.local_addr.port() as i32;

    // Broker 1 learns the new endpoint, and broker 2 leads its partition again, in a new
    // leader epoch (its new incarnation was fenced, then unfenced).
    let mut settled = None;
    for _ in 0..50 {
        let md = metadata(&mut conn, Some(&["kept"])).await;
        let p = md.topics[0].partitions[on_two as usize].clone();
        let port = md.brokers.iter().find(|b| b.node_id.0 == 2).map(|b| b.port);
        if p.leader_id.0 == 2 && port == Some(new_port) {
            settled = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let p = settled.expect("broker 2 leads its partition again");
    assert!(p.leader_epoch >= 1, "leader epoch {}", p.leader_epoch);

    let mut to_two = TcpStream::connect(two.local_addr).await.unwrap();
    let fetched: FetchResponse = call_settled(
        &mut to_two,
        ApiKey::Fetch,
        12,
        &fetch_from("kept", on_two),
        fetch_code,
        0,
    )
    .await;
    let fp = &fetched.responses[0].partitions[0];
    assert_eq!((fp.error_code, fp.high_watermark), (0, 1));
    let records = fp.records.clone().unwrap();
    assert!(records.windows(16).any(|w| w == b"survives-restart"));

    two.shutdown().await;
    for b in brokers {
        b.shutdown().await;
    }
}
