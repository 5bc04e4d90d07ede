//! Client quotas over real sockets: AlterClientQuotas/DescribeClientQuotas, and a producer
//! over its byte rate throttled (throttle_time_ms set, connection kept) rather than refused.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{batch, call, produce, produce_error, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn set_quota(client: Option<&str>, key: &str, value: f64) -> AlterClientQuotasRequest {
    AlterClientQuotasRequest::default().with_entries(vec![
        alter_client_quotas_request::EntryData::default()
            .with_entity(vec![alter_client_quotas_request::EntityData::default()
                .with_entity_type(s("client-id"))
                .with_entity_name(client.map(s))])
            .with_ops(vec![alter_client_quotas_request::OpData::default()
                .with_key(s(key))
                .with_value(value)]),
    ])
}

#[tokio::test]
async fn quotas_are_stored_described_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(b.local_addr).await.unwrap();
    let r: AlterClientQuotasResponse = call(
        &mut conn,
        ApiKey::AlterClientQuotas,
        1,
        &set_quota(Some("app"), "producer_byte_rate", 1024.0),
    )
    .await;
    assert_eq!(r.entries[0].error_code, 0);
    for (key, value) in [
        ("producer_byte_rate", 10.5),
        ("bogus", 1.0),
        ("consumer_byte_rate", -1.0),
    ] {
        let r: AlterClientQuotasResponse = call(
            &mut conn,
            ApiKey::AlterClientQuotas,
            1,
            &set_quota(None, key, value),
        )
        .await;
        assert_eq!(r.entries[0].error_code, 42, "{key}={value}");
    }
    let d: DescribeClientQuotasResponse = call(
        &mut conn,
        ApiKey::DescribeClientQuotas,
        1,
        &DescribeClientQuotasRequest::default().with_components(vec![
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s("client-id"))
                .with_match_type(0)
                .with_match(Some(s("app"))),
        ]),
    )
    .await;
    let entries = d.entries.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(entries[0].values[0].value, 1024.0);
}

#[tokio::test]
async fn a_producer_over_its_quota_is_throttled_not_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), &[("num.partitions", "1")]).await;
    let mut admin = TcpStream::connect(b.local_addr).await.unwrap();
    // The test client's id (common::request) is `bad-input-test`; its default-client quota
    // applies to every client id without its own.
    let r: AlterClientQuotasResponse = call(
        &mut admin,
        ApiKey::AlterClientQuotas,
        1,
        &set_quota(None, "producer_byte_rate", 2048.0),
    )
    .await;
    assert_eq!(r.entries[0].error_code, 0);

    let mut conn = TcpStream::connect(b.local_addr).await.unwrap();
    let created: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(s("quota-topic"))))]))
            .with_allow_auto_topic_creation(true),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    let big = "x".repeat(8 * 1024);
    let mut throttled = None;
    for _ in 0..8 {
        let r: ProduceResponse = call(
            &mut conn,
            ApiKey::Produce,
            9,
            &produce("quota-topic", batch(&[&big])),
        )
        .await;
        assert_eq!(produce_error(&r), 0, "over-quota produces still succeed");
        if r.throttle_time_ms > 0 {
            throttled = Some(r.throttle_time_ms);
            break;
        }
    }
    let ms = throttled.expect("a produce well over 2 KiB/s is throttled");
    // 8 KiB in a window of at least 10 s is ~820 B/s... so more than one batch was needed;
    // the throttle is the delay that brings the rate back to the bound, at most 11 s.
    assert!((1..=11_000).contains(&ms), "{ms}");
    // The connection stays open and answers again after the mute.
    let md: MetadataResponse =
        call(&mut conn, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(md.brokers.len(), 1);
}
