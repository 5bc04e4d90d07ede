//! Helpers for tests that drive an in-process broker over real sockets.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset; a failed unwrap is a failed test

pub mod cluster;
pub mod jwt;
pub mod pki;
pub mod sasl;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_broker::config::BrokerConfig;
use spate_broker::testing::{record_batch, Writer};
use spate_broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> Broker {
    let mut cli = vec![
        ("listeners".to_string(), "127.0.0.1:0".to_string()),
        ("log.dirs".to_string(), dir.display().to_string()),
        ("offsets.topic.num.partitions".to_string(), "2".to_string()),
        ("http.listeners".to_string(), "127.0.0.1:0".to_string()),
    ];
    cli.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Broker::start(BrokerConfig::load(None, vec![], cli).unwrap())
        .await
        .unwrap()
}

/// A plain HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A connection to a broker: TCP, or TLS over it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Conn for S {}

pub async fn send_raw(conn: &mut impl Conn, body: &[u8]) {
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(body);
    conn.write_all(&frame).await.unwrap();
}

/// Reads one response frame; `None` if the broker closed the connection.
pub async fn read_frame(conn: &mut impl Conn) -> Option<Bytes> {
    let mut size = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut size))
        .await
        .expect("broker answered in time");
    read.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

pub fn request<T: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &T) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

pub async fn call<Req: Encodable, Resp: Decodable>(
    conn: &mut impl Conn,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    send_raw(conn, &request(api, version, 42, req)).await;
    let mut frame = read_frame(conn).await.expect("a response");
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 42);
    Resp::decode(&mut frame, version).unwrap()
}

pub fn batch(values: &[&str]) -> Bytes {
    let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
    let records: Vec<(Option<&[u8]>, &[u8])> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| (Some(k.as_bytes()), v.as_bytes()))
        .collect();
    record_batch(Writer::PLAIN, 1_700_000_000_000, &records)
}

pub fn produce(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

pub fn produce_error(resp: &ProduceResponse) -> i16 {
    resp.responses[0].partition_responses[0].error_code
}

pub async fn end_offset(conn: &mut impl Conn, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let resp: ListOffsetsResponse = call(conn, ApiKey::ListOffsets, 7, &req).await;
    resp.topics[0].partitions[0].offset
}

/// FindCoordinator for a group (`key_type` 0) or a transactional id (1), as clients ask
/// before any group or transaction request: the first one creates `__consumer_offsets` or
/// `__transaction_state`.
pub async fn find_coordinator(conn: &mut TcpStream, key_type: i8, key: &str) {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.into()))
        .with_key_type(key_type);
    let resp: FindCoordinatorResponse = call(conn, ApiKey::FindCoordinator, 3, &req).await;
    assert_eq!(resp.error_code, 0, "FindCoordinator({key}): {resp:?}");
}
