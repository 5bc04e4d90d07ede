//! TLS listeners: a broker with a PLAINTEXT and an SSL listener, certificates made here with
//! rcgen (a CA, a broker certificate for 127.0.0.1/localhost, client certificates from that CA
//! and from another one), and a rustls client.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::pki::{ca, leaf, Ca};
use common::{batch, call, produce, produce_error, read_frame, request, send_raw, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use spate_broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    /// The DER of the broker certificate first served.
    server_der: Vec<u8>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("spate-test-ca");
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        let (cert, key, server_der) = leaf(&ca, "broker", &["127.0.0.1", "localhost"], 1);
        write_keystore(&dir.path().join("broker.pem"), &key, &cert);
        Self {
            dir,
            ca,
            server_der,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Kafka's `ssl.keystore.location` PEM: the private key and the certificate chain.
fn write_keystore(path: &Path, key: &str, cert: &str) {
    // Replace atomically, as a Kubernetes Secret update does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{key}{cert}")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn start_tls(pki: &Pki, data: &Path, client_auth: &str) -> Broker {
    let keystore = pki.path("broker.pem").display().to_string();
    let truststore = pki.path("ca.pem").display().to_string();
    start(
        data,
        &[
            ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.keystore.location", &keystore),
            ("ssl.truststore.location", &truststore),
            ("listener.name.ssl.ssl.client.auth", client_auth),
            ("ssl.reload.interval.ms", "100"),
        ],
    )
    .await
}

fn ssl_addr(b: &Broker) -> SocketAddr {
    b.listeners.iter().find(|(n, _)| n == "SSL").unwrap().1
}

/// A client trusting `ca_pem`, presenting `identity` (certificate PEM, key PEM) if given.
fn connector(ca_pem: &str, identity: Option<(&str, &str)>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn connect_tls(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// What the broker answers an ApiVersions request with: `None` if it closed the connection.
async fn api_versions(conn: &mut (impl common::Conn + Send)) -> Option<ApiVersionsResponse> {
    send_raw(
        conn,
        &request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()),
    )
    .await;
    let mut frame = tokio::time::timeout(Duration::from_secs(10), read_frame_or_error(conn))
        .await
        .expect("the broker answered or closed in time")?;
    use kafka_protocol::protocol::Decodable;
    ResponseHeader::decode(&mut frame, 0).unwrap();
    Some(ApiVersionsResponse::decode(&mut frame, 3).unwrap())
}

/// One response frame; `None` on EOF or a TLS error (the broker refused us).
async fn read_frame_or_error(conn: &mut impl common::Conn) -> Option<bytes::Bytes> {
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut body).await.ok()?;
    Some(body.into())
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.into()))
}

async fn create_topic(conn: &mut impl common::Conn, topic: &str) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = call(conn, ApiKey::CreateTopics, 5, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

async fn fetch_values(conn: &mut impl common::Conn, topic: &str) -> Vec<String> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = call(conn, ApiKey::Fetch, 11, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut records = p.records.clone().unwrap();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_client_produces_and_fetches() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let broker = start_tls(&pki, data.path(), "required").await;
    let (cert, key, _) = leaf(&pki.ca, "alice", &[], 10);
    let tls = connector(&pki.ca.pem, Some((&cert, &key)));
    let mut conn = connect_tls(ssl_addr(&broker), &tls).await.unwrap();
    let served = conn.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(served, pki.server_der);
    let versions = api_versions(&mut conn)
        .await
        .expect("an ApiVersions answer");
    assert_eq!(versions.error_code, 0);
    // Metadata over TLS names the SSL listener's address.
    let md: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![])),
    )
    .await;
    assert_eq!(md.brokers[0].port as u16, ssl_addr(&broker).port());
    create_topic(&mut conn, "secure").await;
    let resp: ProduceResponse = call(
        &mut conn,
        ApiKey::Produce,
        9,
        &produce("secure", batch(&["over", "tls"])),
    )
    .await;
    assert_eq!(produce_error(&resp), 0);
    assert_eq!(fetch_values(&mut conn, "secure").await, ["over", "tls"]);
    // The PLAINTEXT listener is unchanged.
    let mut plain = TcpStream::connect(broker.local_addr).await.unwrap();
    assert_eq!(fetch_values(&mut plain, "secure").await, ["over", "tls"]);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_auth_refuses_missing_and_untrusted_certificates() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let broker = start_tls(&pki, data.path(), "required").await;
    let addr = ssl_addr(&broker);
    // No certificate: with TLS 1.3 the client learns it at its first read.
    let anonymous = connector(&pki.ca.pem, None);
    if let Ok(mut conn) = connect_tls(addr, &anonymous).await {
        assert!(
            api_versions(&mut conn).await.is_none(),
            "served without a certificate"
        );
    }
    // A certificate from a CA the broker does not trust.
    let rogue = ca("rogue-ca");
    let (cert, key, _) = leaf(&rogue, "mallory", &[], 66);
    let untrusted = connector(&pki.ca.pem, Some((&cert, &key)));
    if let Ok(mut conn) = connect_tls(addr, &untrusted).await {
        assert!(
            api_versions(&mut conn).await.is_none(),
            "served an untrusted certificate"
        );
    }
    // A trusted one still works.
    let (cert, key, _) = leaf(&pki.ca, "alice", &[], 10);
    let mut conn = connect_tls(addr, &connector(&pki.ca.pem, Some((&cert, &key))))
        .await
        .unwrap();
    assert!(api_versions(&mut conn).await.is_some());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_client_auth_serves_clients_without_a_certificate() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let broker = start_tls(&pki, data.path(), "requested").await;
    let mut conn = connect_tls(ssl_addr(&broker), &connector(&pki.ca.pem, None))
        .await
        .unwrap();
    assert!(api_versions(&mut conn).await.is_some());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_garbage_on_the_tls_port_get_nothing_back() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let broker = start_tls(&pki, data.path(), "none").await;
    let addr = ssl_addr(&broker);
    // A Kafka request in clear text: no answer, the connection is closed.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    send_raw(
        &mut conn,
        &request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()),
    )
    .await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
        .await
        .expect("closed in time");
    assert!(got.is_empty(), "answered plaintext with {got:?}");
    assert!(read.is_ok() || got.is_empty());
    // A handshake record full of garbage: closed (at most a TLS alert comes back).
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    hello.extend(std::iter::repeat_n(0xAB, 0x40));
    conn.write_all(&hello).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
        .await
        .expect("closed in time");
    assert!(got.len() <= 7, "more than an alert came back: {got:?}");
    // Both listeners still serve.
    let mut plain = TcpStream::connect(broker.local_addr).await.unwrap();
    assert!(read_frame_after_api_versions(&mut plain).await);
    let mut conn = connect_tls(addr, &connector(&pki.ca.pem, None))
        .await
        .unwrap();
    assert!(api_versions(&mut conn).await.is_some());
    broker.shutdown().await;
}

async fn read_frame_after_api_versions(conn: &mut TcpStream) -> bool {
    send_raw(
        conn,
        &request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()),
    )
    .await;
    read_frame(conn).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_is_served_to_new_connections_while_old_ones_keep_working() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let broker = start_tls(&pki, data.path(), "required").await;
    let addr = ssl_addr(&broker);
    let (cert, key, _) = leaf(&pki.ca, "alice", &[], 10);
    let tls = connector(&pki.ca.pem, Some((&cert, &key)));
    let mut old = connect_tls(addr, &tls).await.unwrap();
    create_topic(&mut old, "rotated").await;

    let (new_cert, new_key, new_der) =
        leaf(&pki.ca, "broker-renewed", &["127.0.0.1", "localhost"], 2);
    write_keystore(&pki.path("broker.pem"), &new_key, &new_cert);
    let served =
        |conn: &TlsStream<TcpStream>| conn.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let conn = connect_tls(addr, &tls).await.unwrap();
        if served(&conn) == new_der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the change still produces and fetches.
    let resp: ProduceResponse = call(
        &mut old,
        ApiKey::Produce,
        9,
        &produce("rotated", batch(&["still", "here"])),
    )
    .await;
    assert_eq!(produce_error(&resp), 0);
    assert_eq!(served(&old), pki.server_der);

    // A broken file keeps the certificate in use.
    std::fs::write(
        pki.path("broker.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot a key\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = connect_tls(addr, &tls).await.unwrap();
    assert_eq!(served(&conn), new_der);
    assert_eq!(fetch_values(&mut conn, "rotated").await, ["still", "here"]);
    broker.shutdown().await;
}
