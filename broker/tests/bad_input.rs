//! Bad input over a real socket: each case gets the Kafka answer (an error code, or a closed
//! connection where Kafka closes it), other connections keep working, and nothing stored is
//! lost.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn api_versions_newer_than_ours_gets_the_kip_511_answer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    // ApiVersions v99 with a body we could not parse anyway.
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(99);
    body.put_i32(5);
    body.put_slice(b"\x00\x03abc\xff\xff\xff");
    send_raw(&mut conn, &body).await;
    let mut frame = read_frame(&mut conn).await.expect("answered, not closed");
    assert_eq!(frame.get_i32(), 5, "correlation id");
    let resp = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    let own = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((own.min_version, own.max_version), (0, 4));
    // The client retries with a version we speak, on the same connection.
    let resp: ApiVersionsResponse = call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(resp.error_code, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn unparseable_requests_close_only_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("socket.request.max.bytes", "1024")]).await;
    let mut healthy = TcpStream::connect(broker.local_addr).await.unwrap();
    let ok: ProduceResponse = call(
        &mut healthy,
        ApiKey::Produce,
        9,
        &produce("t", batch(&["before"])),
    )
    .await;
    assert_eq!(
        produce_error(&ok),
        ResponseError::UnknownTopicOrPartition.code(),
        "no auto-create on produce"
    );
    let _: MetadataResponse = call(
        &mut healthy,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))])),
    )
    .await;
    let ok: ProduceResponse = call(
        &mut healthy,
        ApiKey::Produce,
        9,
        &produce("t", batch(&["kept"])),
    )
    .await;
    assert_eq!(produce_error(&ok), 0);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown api key", vec![0x7f, 0x00, 0, 0, 0, 0, 0, 1]),
        // Produce v2 predates record format v2; Kafka 4 refuses it too.
        (
            "unsupported produce version",
            vec![
                0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 0,
            ],
        ),
        ("truncated header", vec![0, 3]),
        ("truncated metadata body", {
            let mut b = request(
                ApiKey::Metadata,
                1,
                1,
                &MetadataRequest::default().with_topics(Some(vec![])),
            )
            .to_vec();
            b.truncate(b.len() - 2);
            b
        }),
        ("huge array count", {
            let mut b = BytesMut::new();
            b.put_i16(ApiKey::Metadata as i16);
            b.put_i16(1);
            b.put_i32(1);
            b.put_i16(-1);
            b.put_i32(i32::MAX);
            b.to_vec()
        }),
    ];
    for (name, body) in cases {
        let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
        send_raw(&mut conn, &body).await;
        assert!(
            read_frame(&mut conn).await.is_none(),
            "{name}: connection should be closed"
        );
    }
    // An oversized frame is refused from its size prefix alone.
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    conn.write_all(&(1_000_000i32).to_be_bytes()).await.unwrap();
    assert!(
        read_frame(&mut conn).await.is_none(),
        "oversized frame: connection should be closed"
    );

    // The first connection never noticed, and the stored record is intact.
    assert_eq!(end_offset(&mut healthy, "t").await, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn corrupt_batches_and_bad_topics_get_kafka_error_codes_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    let create = |name: &str, partitions: i32, configs: Vec<(&str, &str)>| {
        CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.into()))
                                .with_value(Some(StrBytes::from_string(v.into())))
                        })
                        .collect(),
                )])
    };
    let code = |r: &CreateTopicsResponse| r.topics[0].error_code;
    let r: CreateTopicsResponse =
        call(&mut conn, ApiKey::CreateTopics, 7, &create("ok", 1, vec![])).await;
    assert_eq!(code(&r), 0);
    let r: CreateTopicsResponse = call(
        &mut conn,
        ApiKey::CreateTopics,
        7,
        &create("bad/name", 1, vec![]),
    )
    .await;
    assert_eq!(code(&r), ResponseError::InvalidTopicException.code());
    let r: CreateTopicsResponse =
        call(&mut conn, ApiKey::CreateTopics, 7, &create("ok", 1, vec![])).await;
    assert_eq!(code(&r), ResponseError::TopicAlreadyExists.code());
    let r: CreateTopicsResponse =
        call(&mut conn, ApiKey::CreateTopics, 7, &create("p", 0, vec![])).await;
    assert_eq!(code(&r), ResponseError::InvalidPartitions.code());
    let r: CreateTopicsResponse = call(
        &mut conn,
        ApiKey::CreateTopics,
        7,
        &create("c", 1, vec![("retention.ms", "soon")]),
    )
    .await;
    assert_eq!(code(&r), ResponseError::InvalidConfig.code());
    let r: CreateTopicsResponse = call(
        &mut conn,
        ApiKey::CreateTopics,
        7,
        &create("c", 1, vec![("no.such.config", "1")]),
    )
    .await;
    assert_eq!(code(&r), ResponseError::InvalidConfig.code());

    let good = batch(&["a", "b"]);
    let r: ProduceResponse =
        call(&mut conn, ApiKey::Produce, 9, &produce("ok", good.clone())).await;
    assert_eq!(produce_error(&r), 0);
    // Flip one byte inside the CRC-covered part.
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r: ProduceResponse =
        call(&mut conn, ApiKey::Produce, 9, &produce("ok", bad.freeze())).await;
    assert_eq!(produce_error(&r), ResponseError::CorruptMessage.code());
    // A batch cut short.
    let r: ProduceResponse = call(
        &mut conn,
        ApiKey::Produce,
        9,
        &produce("ok", good.slice(..good.len() - 3)),
    )
    .await;
    assert_eq!(produce_error(&r), ResponseError::CorruptMessage.code());
    // Too large for max.message.bytes.
    let big = "x".repeat(2 * 1024 * 1024);
    let r: ProduceResponse = call(
        &mut conn,
        ApiKey::Produce,
        9,
        &produce("ok", batch(&[&big])),
    )
    .await;
    assert_eq!(produce_error(&r), ResponseError::MessageTooLarge.code());
    // Unknown partition.
    let mut req = produce("ok", good.clone());
    req.topic_data[0].partition_data[0].index = 7;
    let r: ProduceResponse = call(&mut conn, ApiKey::Produce, 9, &req).await;
    assert_eq!(
        produce_error(&r),
        ResponseError::UnknownTopicOrPartition.code()
    );

    assert_eq!(
        end_offset(&mut conn, "ok").await,
        2,
        "only the good batch is stored"
    );
    broker.shutdown().await;
}
