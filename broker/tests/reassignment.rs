//! Cluster mode: partition reassignment, preferred leader elections and replication
//! throttles, over the Kafka wire (AlterPartitionReassignments, ListPartitionReassignments,
//! ElectLeaders, IncrementalAlterConfigs) against three in-process brokers.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{addr, cluster_configs, eventually, start_all};
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::net::TcpStream;
use tokio::time::Instant;

fn configs(dirs: &[tempfile::TempDir]) -> Vec<BrokerConfig> {
    cluster_configs(
        dirs,
        &[
            ("offsets.topic.num.partitions", "1".into()),
            ("replica.lag.time.max.ms", "1500".into()),
            ("broker.heartbeat.interval.ms", "200".into()),
            // Only the ElectLeaders requests of these tests move leadership back.
            ("auto.leader.rebalance.enable", "false".into()),
        ],
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

/// (leader, replicas, ISR) of `topic`-0 as `addr` sees it; leader -1 when unknown.
async fn partition_state(addr: SocketAddr, topic: &str) -> (i32, Vec<i32>, Vec<i32>) {
    let Ok(mut conn) = TcpStream::connect(addr).await else {
        return (-1, vec![], vec![]);
    };
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let md: MetadataResponse = call(&mut conn, ApiKey::Metadata, 12, &req).await;
    let Some(p) = md.topics.first().and_then(|t| t.partitions.first()) else {
        return (-1, vec![], vec![]);
    };
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    (
        p.leader_id.0,
        p.replica_nodes.iter().map(|b| b.0).collect(),
        isr,
    )
}

async fn create_topic(addr: SocketAddr, topic: &str, rf: i16) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(rf)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
}

/// acks=all through `addr`: the values `values[i]` land at offsets `from + i`.
async fn produce(addr: SocketAddr, topic: &str, from: i64, values: &[String]) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 0;
    while next < values.len() {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&[values[next].as_str()]))),
                ])]);
        let resp: ProduceResponse = call(&mut conn, ApiKey::Produce, 9, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        if [3, 5, 6, 7, 19].contains(&p.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let offset = from + next as i64;
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, offset),
            "produce {offset}"
        );
        next += 1;
    }
}

/// Every (offset, value) a consumer reads from the leader at `addr`, once the high watermark
/// has reached `at_least`.
async fn read_all(addr: SocketAddr, topic: &str, at_least: i64) -> Vec<(i64, String)> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_max_bytes(8 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let fetched: FetchResponse = call(&mut conn, ApiKey::Fetch, 12, &fetch).await;
        let p = &fetched.responses[0].partitions[0];
        // Leadership news reaches the new leader itself a moment after the others.
        if [5, 6].contains(&p.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        if let Some(mut records) = p.records.clone().filter(|r| !r.is_empty()) {
            for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
                for r in set.records {
                    assert_eq!(r.offset, offset, "offsets are dense and in order");
                    offset = r.offset + 1;
                    let v = r.value.unwrap();
                    out.push((r.offset, String::from_utf8(v.to_vec()).unwrap()));
                }
            }
        }
        if offset >= p.high_watermark && p.high_watermark >= at_least {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "HW {} < {at_least}",
            p.high_watermark
        );
    }
}

/// AlterPartitionReassignments for `topic`-0; `None` cancels. Returns the partition's code.
async fn reassign(addr: SocketAddr, topic: &str, target: Option<&[i32]>) -> i16 {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        alter_partition_reassignments_request::ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(target.map(|t| t.iter().copied().map(BrokerId).collect())),
            ]),
    ]);
    let resp: AlterPartitionReassignmentsResponse =
        call(&mut conn, ApiKey::AlterPartitionReassignments, 0, &req).await;
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].error_code
}

/// Ongoing reassignments (all topics): (topic, partition, replicas, adding, removing).
async fn list_reassignments(addr: SocketAddr) -> Vec<(String, i32, Vec<i32>, Vec<i32>, Vec<i32>)> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = ListPartitionReassignmentsRequest::default().with_topics(None);
    let resp: ListPartitionReassignmentsResponse =
        call(&mut conn, ApiKey::ListPartitionReassignments, 0, &req).await;
    assert_eq!(resp.error_code, 0);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

/// ElectLeaders v2 for `topic`-0: the partition's error code.
async fn elect(addr: SocketAddr, topic: &str, election_type: i8) -> i16 {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(name(topic))
        .with_partitions(vec![0])]));
    let resp: ElectLeadersResponse = call(&mut conn, ApiKey::ElectLeaders, 2, &req).await;
    assert_eq!(resp.error_code, 0);
    resp.replica_election_results[0].partition_result[0].error_code
}

/// IncrementalAlterConfigs SET of one config on one resource (2 = topic, 4 = broker).
async fn set_config(addr: SocketAddr, resource_type: i8, resource: &str, key: &str, value: &str) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource.into()))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.into()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(value.into()))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        call(&mut conn, ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(
        resp.responses[0].error_code, 0,
        "{resource} {key}={value}: {:?}",
        resp.responses[0].error_message
    );
}

fn values(prefix: &str, n: usize, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut v = format!("{prefix}-{i}-");
            v.extend(std::iter::repeat_n('x', size.saturating_sub(v.len())));
            v
        })
        .collect()
}

fn numbered(values: &[String]) -> Vec<(i64, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_with_its_data_and_preferred_elections_follow_the_new_order() {
    const TOPIC: &str = "moving";
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs);
    let brokers = start_all(&configs).await;
    let first = addr(&brokers, 1);
    create_topic(first, TOPIC, 2).await;
    eventually(Duration::from_secs(20), "a full ISR", || async move {
        let (leader, _, isr) = partition_state(first, TOPIC).await;
        leader > 0 && isr.len() == 2
    })
    .await;
    let (leader, replicas, _) = partition_state(first, TOPIC).await;
    let (old, kept) = (replicas[0], replicas[1]);
    let new = (1..=3).find(|b| !replicas.contains(b)).unwrap();
    assert_eq!(leader, old);
    let data = values("v", 20, 100);
    produce(addr(&brokers, old), TOPIC, 0, &data).await;

    // Already preferred: nothing to elect; unclean elections never run while a leader lives.
    assert_eq!(elect(first, TOPIC, 0).await, 84);
    assert_eq!(elect(first, TOPIC, 1).await, 84);

    // [old, kept] → [kept, new]: the new replica copies the log, joins the ISR, the move
    // completes, leadership leaves the removed replica and its directory goes.
    assert_eq!(reassign(first, TOPIC, Some(&[kept, new])).await, 0);
    eventually(
        Duration::from_secs(30),
        "the move to complete",
        || async move {
            let (leader, replicas, isr) = partition_state(first, TOPIC).await;
            replicas == vec![kept, new]
                && leader == kept
                && isr == {
                    let mut v = vec![kept, new];
                    v.sort();
                    v
                }
        },
    )
    .await;
    let old_dir = dirs[(old - 1) as usize].path().join(format!("{TOPIC}-0"));
    eventually(
        Duration::from_secs(10),
        "the old replica's directory to go",
        || {
            let gone = !old_dir.exists();
            async move { gone }
        },
    )
    .await;
    assert!(dirs[(new - 1) as usize]
        .path()
        .join(format!("{TOPIC}-0"))
        .exists());
    assert!(list_reassignments(first).await.is_empty());
    assert_eq!(
        read_all(addr(&brokers, kept), TOPIC, 20).await,
        numbered(&data)
    );
    // Writes go on through the new leader; the new replica has everything.
    let more = values("w", 5, 100);
    produce(addr(&brokers, kept), TOPIC, 20, &more).await;

    // Same replicas: a successful no-op. Errors as Kafka names them.
    assert_eq!(reassign(first, TOPIC, Some(&[kept, new])).await, 0);
    assert_eq!(reassign(first, TOPIC, None).await, 85);
    assert_eq!(reassign(first, TOPIC, Some(&[kept, 9])).await, 39);
    assert_eq!(reassign(first, TOPIC, Some(&[kept, kept])).await, 39);
    assert_eq!(reassign(first, "no-such-topic", Some(&[1])).await, 3);
    assert_eq!(elect(first, "no-such-topic", 0).await, 3);

    // Reordering makes `new` the preferred replica: an election moves leadership there,
    // and a second one is not needed.
    assert_eq!(reassign(first, TOPIC, Some(&[new, kept])).await, 0);
    eventually(Duration::from_secs(10), "the reorder", || async move {
        partition_state(first, TOPIC).await.1 == vec![new, kept]
    })
    .await;
    assert_eq!(partition_state(first, TOPIC).await.0, kept);
    assert_eq!(elect(first, TOPIC, 0).await, 0);
    assert_eq!(partition_state(first, TOPIC).await.0, new);
    assert_eq!(elect(first, TOPIC, 0).await, 84);
    let mut all = data.clone();
    all.extend(more);
    assert_eq!(
        read_all(addr(&brokers, new), TOPIC, 25).await,
        numbered(&all)
    );

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_move_restores_the_replicas_and_a_throttled_one_still_completes() {
    const TOPIC: &str = "throttled";
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs);
    let mut brokers = start_all(&configs).await;
    create_topic(addr(&brokers, 1), TOPIC, 2).await;
    let first = addr(&brokers, 1);
    eventually(Duration::from_secs(20), "a full ISR", || async move {
        let (leader, _, isr) = partition_state(first, TOPIC).await;
        leader > 0 && isr.len() == 2
    })
    .await;
    let (_, replicas, _) = partition_state(first, TOPIC).await;
    let (a, b) = (replicas[0], replicas[1]);
    let c = (1..=3).find(|x| !replicas.contains(x)).unwrap();
    let live = addr(&brokers, a);

    // A move to a stopped broker cannot finish: it shows as ongoing until cancelled.
    let c_broker = brokers[(c - 1) as usize].take().unwrap();
    c_broker.shutdown().await;
    assert_eq!(reassign(live, TOPIC, Some(&[a, b, c])).await, 0);
    let ongoing = list_reassignments(live).await;
    assert_eq!(
        ongoing,
        vec![(TOPIC.to_string(), 0, vec![a, b, c], vec![c], vec![])]
    );
    // A second target while one is in progress is refused (cancel first).
    assert_eq!(reassign(live, TOPIC, Some(&[b, a])).await, 60);
    assert_eq!(reassign(live, TOPIC, None).await, 0);
    assert_eq!(partition_state(live, TOPIC).await.1, vec![a, b]);
    assert!(list_reassignments(live).await.is_empty());
    assert_eq!(reassign(live, TOPIC, None).await, 85);

    // C comes back. Throttle the move to it at 1 MiB/s on every broker (leader and follower
    // side), for the replicas Kafka's tool would name, and move 5 MiB.
    let i = (c - 1) as usize;
    brokers[i] = Some(Broker::start(configs[i].clone()).await.unwrap());
    const RATE: &str = "1048576";
    for id in 1..=3 {
        let at = addr(&brokers, id);
        set_config(
            at,
            4,
            &id.to_string(),
            "leader.replication.throttled.rate",
            RATE,
        )
        .await;
        set_config(
            at,
            4,
            &id.to_string(),
            "follower.replication.throttled.rate",
            RATE,
        )
        .await;
    }
    set_config(
        live,
        2,
        TOPIC,
        "leader.replication.throttled.replicas",
        &format!("0:{a},0:{b}"),
    )
    .await;
    set_config(
        live,
        2,
        TOPIC,
        "follower.replication.throttled.replicas",
        &format!("0:{c}"),
    )
    .await;
    let data = values("big", 50, 100 * 1024);
    produce(addr(&brokers, a), TOPIC, 0, &data).await;

    let started = Instant::now();
    assert_eq!(reassign(live, TOPIC, Some(&[b, c])).await, 0);
    let ongoing = list_reassignments(live).await;
    assert_eq!(
        ongoing,
        vec![(TOPIC.to_string(), 0, vec![b, c, a], vec![c], vec![a])]
    );
    eventually(
        Duration::from_secs(60),
        "the throttled move to complete",
        || async move {
            let (leader, replicas, _) = partition_state(live, TOPIC).await;
            replicas == vec![b, c] && leader == b
        },
    )
    .await;
    let took = started.elapsed();
    eprintln!("throttled move of 5 MiB at 1 MiB/s took {took:?}");
    assert!(
        took >= Duration::from_millis(2500),
        "the throttle held nothing back: {took:?}"
    );
    assert_eq!(
        read_all(addr(&brokers, b), TOPIC, 50).await,
        numbered(&data)
    );
    assert!(list_reassignments(live).await.is_empty());

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
}
