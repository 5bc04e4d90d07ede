//! `/metrics`, `/healthz` and `/readyz` over HTTP: the Prometheus text parses, and the numbers
//! move with real traffic.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

/// Parses the exposition with a Prometheus text-format parser and returns one sample.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_move_with_traffic_and_health_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("http.listeners", "127.0.0.1:0")]).await;
    let http = broker.http_addr.expect("http endpoint bound");
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    assert_eq!(http_get(http, "/readyz").await.0, 200);

    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    let topic = || {
        vec![metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("m"))))]
    };
    let _: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(topic())),
    )
    .await;
    let (_, before) = http_get(http, "/metrics").await;
    assert_eq!(
        sample(&before, "spate_records_in_total", &[("topic", "m")]),
        None,
        "no traffic yet"
    );

    let r: ProduceResponse = call(
        &mut conn,
        ApiKey::Produce,
        9,
        &produce("m", batch(&["a", "b", "c"])),
    )
    .await;
    assert_eq!(produce_error(&r), 0);
    let (_, after) = http_get(http, "/metrics").await;
    assert_eq!(
        sample(&after, "spate_records_in_total", &[("topic", "m")]),
        Some(3.0)
    );
    assert!(sample(&after, "spate_bytes_in_total", &[("topic", "m")]).unwrap() > 0.0);
    assert_eq!(
        sample(
            &after,
            "spate_log_end_offset",
            &[("topic", "m"), ("partition", "0")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&after, "spate_requests_total", &[("api", "Produce")]),
        Some(1.0)
    );
    assert_eq!(sample(&after, "spate_connections", &[]), Some(1.0));
    assert_eq!(
        sample(&after, "spate_under_replicated_partitions", &[]),
        Some(0.0)
    );

    // A consumer group commits offset 1 of 3, then stops: lag is 2.
    common::find_coordinator(&mut conn, 0, "g").await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("m")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let c: OffsetCommitResponse = call(&mut conn, ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(c.topics[0].partitions[0].error_code, 0);
    let (_, lagging) = http_get(http, "/metrics").await;
    assert_eq!(
        sample(
            &lagging,
            "spate_consumer_group_lag",
            &[("group", "g"), ("topic", "m"), ("partition", "0")]
        ),
        Some(2.0)
    );
    broker.shutdown().await;
}
