//! Named listeners: each broker binds an INTERNAL listener (replication, the metadata
//! registration) and an EXTERNAL one, and every answer that names brokers (Metadata,
//! DescribeCluster, FindCoordinator) uses the addresses of the listener the request came in on,
//! as Kafka does for clients outside a Kubernetes cluster.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{cluster_configs, eventually, start_all};
use common::{batch, call};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::Broker;
use tokio::net::TcpStream;

fn listener(b: &Broker, name: &str) -> SocketAddr {
    b.listeners.iter().find(|(n, _)| n == name).unwrap().1
}

async fn metadata_ports(addr: SocketAddr) -> BTreeSet<u16> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let resp: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![])),
    )
    .await;
    resp.brokers.iter().map(|b| b.port as u16).collect()
}

/// Polls `check` until it yields a value, for at most 20 s.
async fn until_some<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_listener_answers_with_its_own_addresses() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = cluster_configs(
        &dirs,
        &[
            (
                "listeners",
                "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0".into(),
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT".into(),
            ),
            ("inter.broker.listener.name", "INTERNAL".into()),
            ("offsets.topic.num.partitions", "3".into()),
        ],
    );
    let brokers = start_all(&configs).await;
    let brokers: Vec<&Broker> = brokers.iter().map(|b| b.as_ref().unwrap()).collect();
    let ports = |name: &str| -> BTreeSet<u16> {
        brokers.iter().map(|b| listener(b, name).port()).collect()
    };
    let (internal, external) = (ports("INTERNAL"), ports("EXTERNAL"));
    assert!(internal.is_disjoint(&external));
    for b in &brokers {
        assert_eq!(
            b.local_addr,
            listener(b, "INTERNAL"),
            "replication uses INTERNAL"
        );
        let (i, e) = (listener(b, "INTERNAL"), listener(b, "EXTERNAL"));
        eventually(
            Duration::from_secs(20),
            "all brokers registered",
            || async { metadata_ports(i).await.len() == 3 },
        )
        .await;
        assert_eq!(metadata_ports(i).await, internal);
        assert_eq!(metadata_ports(e).await, external);
    }

    // DescribeCluster and FindCoordinator through the external listener.
    let ext = listener(brokers[0], "EXTERNAL");
    let mut conn = TcpStream::connect(ext).await.unwrap();
    let cluster: DescribeClusterResponse = call(
        &mut conn,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    )
    .await;
    let described: BTreeSet<u16> = cluster.brokers.iter().map(|b| b.port as u16).collect();
    assert_eq!(described, external);
    let coordinator = until_some("a group coordinator", || async move {
        let mut conn = TcpStream::connect(ext).await.unwrap();
        let resp: FindCoordinatorResponse = call(
            &mut conn,
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        )
        .await;
        let c = &resp.coordinators[0];
        (c.error_code == 0).then_some(c.port as u16)
    })
    .await;
    assert!(external.contains(&coordinator), "coordinator on EXTERNAL");

    // acks=all through EXTERNAL: the followers replicate over INTERNAL.
    let create = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("two-doors")))
            .with_num_partitions(1)
            .with_replication_factor(3)])
        .with_timeout_ms(10_000);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );
    let leader_port = until_some("a leader with a full ISR", || async move {
        let mut conn = TcpStream::connect(ext).await.unwrap();
        let md: MetadataResponse = call(
            &mut conn,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("two-doors"))))])),
        )
        .await;
        let p = md.topics.first().and_then(|t| t.partitions.first())?;
        let leader = md.brokers.iter().find(|b| b.node_id == p.leader_id)?;
        (p.isr_nodes.len() == 3).then_some(leader.port as u16)
    })
    .await;
    let leader = SocketAddr::from(([127, 0, 0, 1], leader_port));
    assert!(external.contains(&leader.port()));
    let mut conn = TcpStream::connect(leader).await.unwrap();
    let produce = common::produce("two-doors", batch(&["a", "b"]));
    let resp: ProduceResponse = call(&mut conn, ApiKey::Produce, 9, &produce).await;
    assert_eq!(
        common::produce_error(&resp),
        0,
        "acks=all over the external door"
    );
}
