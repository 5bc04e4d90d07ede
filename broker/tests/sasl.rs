//! SASL listeners end to end over real sockets: SCRAM logins with Spate's own client
//! (spate-auth), credentials changed through the admin APIs, what a connection may send before
//! it logs in, and credentials replicated across a three-broker cluster.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::{cluster_configs, eventually};
use common::sasl::{authenticate, handshake, scram_login};
use common::{call, read_frame, request, send_raw, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_auth::ScramMechanism;
use spate_broker::config::BrokerConfig;
use spate_broker::security::scram_bootstrap::BootstrapScram;
use spate_broker::Broker;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SASL_LISTENERS: [(&str, &str); 4] = [
    ("listeners", "PLAINTEXT://127.0.0.1:0,SASL://127.0.0.1:0"),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT",
    ),
    ("inter.broker.listener.name", "PLAINTEXT"),
    (
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    ),
];

fn sasl_addr(b: &Broker) -> SocketAddr {
    b.listeners.iter().find(|(n, _)| n == "SASL").unwrap().1
}

/// A broker whose only user is admin/admin-secret (SCRAM-SHA-512), given as `--add-scram`.
async fn sasl_broker(dir: &std::path::Path, extra: &[(&str, &str)]) -> Broker {
    let mut cli: Vec<(String, String)> = [
        ("log.dirs", dir.display().to_string()),
        ("http.listeners", String::new()),
        ("offsets.topic.num.partitions", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(
        SASL_LISTENERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    .collect();
    cli.dedup_by(|a, b| a.0 == b.0);
    let mut config = BrokerConfig::load(None, vec![], cli).unwrap();
    config.bootstrap_scram =
        vec![BootstrapScram::parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap()];
    Broker::start(config).await.unwrap()
}

async fn metadata(conn: &mut TcpStream) -> MetadataResponse {
    call(conn, ApiKey::Metadata, 12, &MetadataRequest::default()).await
}

/// Reads until the broker closes; the bytes it sent first.
async fn drained(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
        .await
        .expect("the broker closed the connection")
        .ok();
    got
}

fn upsert(user: &str, m: ScramMechanism, password: &str) -> AlterUserScramCredentialsRequest {
    let salt = b"0123456789abcdef".to_vec();
    let salted = m.salted_password(password.as_bytes(), &salt, 4096);
    AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(m.code())
            .with_iterations(4096)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ])
}

#[tokio::test]
async fn the_bootstrap_user_logs_in_and_is_then_served() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path(), &[]).await;
    let mut conn = scram_login(
        sasl_addr(&b),
        ScramMechanism::Sha512,
        "admin",
        "admin-secret",
    )
    .await
    .unwrap();
    let md = metadata(&mut conn).await;
    assert_eq!(md.brokers.len(), 1);
    // The broker advertises its SASL listener to clients that came through it.
    assert_eq!(md.brokers[0].port as u16, sasl_addr(&b).port());
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path(), &[]).await;
    let addr = sasl_addr(&b);
    let wrong = scram_login(addr, ScramMechanism::Sha512, "admin", "guess")
        .await
        .unwrap_err();
    let unknown = scram_login(addr, ScramMechanism::Sha512, "nobody", "admin-secret")
        .await
        .unwrap_err();
    assert_eq!(wrong, unknown);
    assert_eq!(
        wrong,
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism SCRAM-SHA-512"
    );
    // admin has no SCRAM-SHA-256 credential.
    assert!(
        scram_login(addr, ScramMechanism::Sha256, "admin", "admin-secret")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn requests_before_a_login_close_the_connection_with_nothing_sent() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path(), &[("sasl.server.max.receive.size", "1024")]).await;
    let addr = sasl_addr(&b);

    let mut conn = TcpStream::connect(addr).await.unwrap();
    send_raw(
        &mut conn,
        &request(ApiKey::Metadata, 12, 1, &MetadataRequest::default()),
    )
    .await;
    assert!(drained(&mut conn).await.is_empty());

    // ApiVersions is answered before the login.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let versions: ApiVersionsResponse = call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(versions.error_code, 0);
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16));
    // A frame over sasl.server.max.receive.size closes it.
    send_raw(&mut conn, &vec![0u8; 2048]).await;
    assert!(drained(&mut conn).await.is_empty());

    // A request other than SaslAuthenticate in the middle of an exchange closes it too.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(handshake(&mut conn, "SCRAM-SHA-512").await.error_code, 0);
    send_raw(
        &mut conn,
        &request(ApiKey::Metadata, 12, 1, &MetadataRequest::default()),
    )
    .await;
    assert!(drained(&mut conn).await.is_empty());

    // A garbled SCRAM token: SASL_AUTHENTICATION_FAILED, then the close.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(handshake(&mut conn, "SCRAM-SHA-512").await.error_code, 0);
    let failed = authenticate(&mut conn, b"\xff\x00garbage").await;
    assert_eq!(failed.error_code, 58);
    assert!(drained(&mut conn).await.is_empty());

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones, then the close.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let refused = handshake(&mut conn, "GSSAPI").await;
    assert_eq!(refused.error_code, 33);
    assert_eq!(refused.mechanisms.len(), 3);
    assert!(drained(&mut conn).await.is_empty());

    // Nothing of that disturbed anyone else.
    let mut ok = scram_login(addr, ScramMechanism::Sha512, "admin", "admin-secret")
        .await
        .unwrap();
    assert_eq!(metadata(&mut ok).await.brokers.len(), 1);
}

#[tokio::test]
async fn handshake_v0_exchanges_raw_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(sasl_addr(&b)).await.unwrap();
    let r: SaslHandshakeResponse = call(
        &mut conn,
        ApiKey::SaslHandshake,
        0,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .await;
    assert_eq!(r.error_code, 0);
    send_raw(&mut conn, b"\0admin\0admin-secret").await;
    assert_eq!(read_frame(&mut conn).await.unwrap().len(), 0);
    assert_eq!(metadata(&mut conn).await.brokers.len(), 1);
}

#[tokio::test]
async fn credentials_altered_through_the_admin_api_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path(), &[]).await;
    let addr = sasl_addr(&b);
    let mut admin = scram_login(addr, ScramMechanism::Sha512, "admin", "admin-secret")
        .await
        .unwrap();
    let altered: AlterUserScramCredentialsResponse = call(
        &mut admin,
        ApiKey::AlterUserScramCredentials,
        0,
        &upsert("alice", ScramMechanism::Sha256, "alice-secret"),
    )
    .await;
    assert_eq!(altered.results[0].error_code, 0);
    scram_login(addr, ScramMechanism::Sha256, "alice", "alice-secret")
        .await
        .unwrap();

    let described: DescribeUserScramCredentialsResponse = call(
        &mut admin,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            describe_user_scram_credentials_request::UserName::default()
                .with_name(StrBytes::from_static_str("alice")),
            describe_user_scram_credentials_request::UserName::default()
                .with_name(StrBytes::from_static_str("nobody")),
        ])),
    )
    .await;
    assert_eq!(described.results[0].error_code, 0);
    assert_eq!(described.results[0].credential_infos[0].mechanism, 1);
    assert_eq!(described.results[0].credential_infos[0].iterations, 4096);
    assert_eq!(described.results[1].error_code, 91, "RESOURCE_NOT_FOUND");

    // Deleting a credential that is not there changes nothing for that user.
    let delete = |m: ScramMechanism| {
        AlterUserScramCredentialsRequest::default().with_deletions(vec![
            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("alice"))
                .with_mechanism(m.code()),
        ])
    };
    let r: AlterUserScramCredentialsResponse = call(
        &mut admin,
        ApiKey::AlterUserScramCredentials,
        0,
        &delete(ScramMechanism::Sha512),
    )
    .await;
    assert_eq!(r.results[0].error_code, 91);
    let r: AlterUserScramCredentialsResponse = call(
        &mut admin,
        ApiKey::AlterUserScramCredentials,
        0,
        &delete(ScramMechanism::Sha256),
    )
    .await;
    assert_eq!(r.results[0].error_code, 0);
    assert!(
        scram_login(addr, ScramMechanism::Sha256, "alice", "alice-secret")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sasl_requests_on_a_plaintext_listener_are_an_illegal_state() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(b.local_addr).await.unwrap();
    let r = handshake(&mut conn, "PLAIN").await;
    assert_eq!(r.error_code, 34, "ILLEGAL_SASL_STATE");
    let r = authenticate(&mut conn, b"\0a\0b").await;
    assert_eq!(r.error_code, 34);
    // The connection stays usable, as in Kafka.
    assert_eq!(metadata(&mut conn).await.error_code(), 0);
}

trait TopLevelError {
    fn error_code(&self) -> i16;
}

impl TopLevelError for MetadataResponse {
    fn error_code(&self) -> i16 {
        if self.brokers.is_empty() {
            -1
        } else {
            0
        }
    }
}

#[tokio::test]
async fn credentials_apply_on_every_broker_and_survive_restarts() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let extra: Vec<(&str, String)> = SASL_LISTENERS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    let mut configs = cluster_configs(&dirs, &extra);
    configs[0].bootstrap_scram =
        vec![BootstrapScram::parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap()];
    let brokers = common::cluster::start_all(&configs).await;
    let sasl = |i: usize| sasl_addr(brokers[i].as_ref().unwrap());

    // The bootstrap user given to broker 1 logs in on broker 3.
    eventually(Duration::from_secs(5), "admin on broker 3", || async {
        scram_login(sasl(2), ScramMechanism::Sha512, "admin", "admin-secret")
            .await
            .is_ok()
    })
    .await;
    // A user added through broker 2 logs in on broker 3 within a second.
    let mut admin = scram_login(sasl(1), ScramMechanism::Sha512, "admin", "admin-secret")
        .await
        .unwrap();
    let altered: AlterUserScramCredentialsResponse = call(
        &mut admin,
        ApiKey::AlterUserScramCredentials,
        0,
        &upsert("alice", ScramMechanism::Sha512, "alice-secret"),
    )
    .await;
    assert_eq!(altered.results[0].error_code, 0);
    eventually(Duration::from_secs(1), "alice on broker 3", || async {
        scram_login(sasl(2), ScramMechanism::Sha512, "alice", "alice-secret")
            .await
            .is_ok()
    })
    .await;

    // Every broker stops; the credentials come back with the metadata log.
    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
    let brokers = common::cluster::start_all(&configs).await;
    let sasl = |i: usize| sasl_addr(brokers[i].as_ref().unwrap());
    for i in 0..3 {
        eventually(Duration::from_secs(10), "alice after a restart", || async {
            scram_login(sasl(i), ScramMechanism::Sha512, "alice", "alice-secret")
                .await
                .is_ok()
        })
        .await;
    }
}
