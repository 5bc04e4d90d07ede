//! A single node's data directory from before its metadata lived in a one-voter quorum
//! (`topics.json` and `producer-id-block`) is carried over on first start: topics keep their
//! ids, partitions, configs and records; the cluster id, committed offsets and producer ids
//! continue. `fixtures/legacy-single-node.tgz` was written by that release with
//! `fixtures/legacy-single-node.py` (30 keyed idempotent records and a committed transaction
//! in `orders`, 3 partitions; a compacted `users`; group `fixture-group` committed offset 5 on
//! every `orders` partition).
//!
//! Integration test: an in-process broker on a temporary data dir, driven over real sockets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::call;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;
use uuid::Uuid;

const CLUSTER_ID: &str = "JQs-t--Aqyb-EdU0eQIPuB";
const ORDERS_ID: &str = "de0bb0f1-bae0-417e-9eeb-80111b19e660";
/// The end offsets the old release reported for `orders` 0..3 and `users` 0.
const ORDERS_ENDS: [i64; 3] = [10, 8, 16];
const USERS_END: i64 = 5;

fn unpack(into: &Path) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-single-node.tgz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", fixture.display());
}

async fn start(data: &Path) -> Broker {
    let cli = [
        ("listeners", "127.0.0.1:0"),
        ("log.dirs", data.to_str().unwrap()),
        ("http.listeners", ""),
        // As the fixture was written: its internal topics have these counts already.
        ("offsets.topic.num.partitions", "3"),
        ("transaction.state.log.num.partitions", "2"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    Broker::start(BrokerConfig::load(None, vec![], cli).unwrap())
        .await
        .unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn end_offsets(conn: &mut TcpStream, topic: &str, count: i32) -> Vec<i64> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(
                (0..count)
                    .map(|i| {
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(i)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    let resp: ListOffsetsResponse = call(conn, ApiKey::ListOffsets, 7, &req).await;
    let mut parts = resp.topics[0].partitions.clone();
    parts.sort_by_key(|p| p.partition_index);
    parts
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{topic}-{}", p.partition_index);
            p.offset
        })
        .collect()
}

async fn committed(conn: &mut TcpStream) -> Vec<i64> {
    let find = FindCoordinatorRequest::default()
        .with_key(s("fixture-group"))
        .with_key_type(0);
    let found: FindCoordinatorResponse = call(conn, ApiKey::FindCoordinator, 3, &find).await;
    assert_eq!(found.error_code, 0, "{found:?}");
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("fixture-group")))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("orders")))
                .with_partition_indexes(vec![0, 1, 2]),
        ]));
    // The coordinator loads its partition as it comes to lead it: ask until it answers.
    for _ in 0..100 {
        let resp: OffsetFetchResponse = call(conn, ApiKey::OffsetFetch, 7, &req).await;
        if resp.error_code == 0 {
            let mut parts = resp.topics[0].partitions.clone();
            parts.sort_by_key(|p| p.partition_index);
            return parts.iter().map(|p| p.committed_offset).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the group coordinator never answered");
}

async fn check(conn: &mut TcpStream) {
    let md: MetadataResponse = call(
        conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(md.cluster_id.as_deref(), Some(CLUSTER_ID));
    let orders = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "orders"))
        .expect("orders carried over");
    assert_eq!(orders.topic_id, Uuid::parse_str(ORDERS_ID).unwrap());
    assert_eq!(orders.partitions.len(), 3);
    assert!(orders.partitions.iter().all(|p| p.error_code == 0));
    assert_eq!(end_offsets(conn, "orders", 3).await, ORDERS_ENDS);
    assert_eq!(end_offsets(conn, "users", 1).await, [USERS_END]);

    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("users"))
            .with_configuration_keys(Some(vec![s("cleanup.policy")])),
    ]);
    let configs: DescribeConfigsResponse = call(conn, ApiKey::DescribeConfigs, 4, &describe).await;
    let policy = &configs.results[0].configs[0];
    assert_eq!(policy.value.as_deref(), Some("compact"));

    assert_eq!(committed(conn).await, [5, 5, 5]);

    // The old release handed out producer ids below 1000.
    let init = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let id: InitProducerIdResponse = call(conn, ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(id.error_code, 0);
    assert!(id.producer_id.0 >= 1000, "{:?}", id.producer_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_single_node_data_dir_is_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path());
    let data = dir.path().join("data");
    let broker = start(&data).await;
    assert!(!data.join("topics.json").exists());
    assert!(data.join("topics.json.migrated").exists());
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    check(&mut conn).await;
    broker.shutdown().await;

    // Started again it is simply a one-voter quorum with those topics.
    let broker = start(&data).await;
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    check(&mut conn).await;
    broker.shutdown().await;
}
