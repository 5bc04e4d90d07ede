//! OAUTHBEARER end to end: JWTs signed by a test issuer, validated against its JWKS file;
//! invalid tokens get RFC 7628's challenge then SASL_AUTHENTICATION_FAILED; a session ends
//! when its token expires.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::jwt::Issuer;
use common::sasl::{authenticate, handshake};
use common::{call, request, send_raw};
use kafka_protocol::messages::*;
use spate_auth::oauthbearer::{InitialResponse, INVALID_TOKEN_CHALLENGE};
use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn oauth_broker(dir: &std::path::Path, jwks: &str) -> Broker {
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let cli: Vec<(String, String)> = [
        ("log.dirs", dir.join("data").display().to_string()),
        ("http.listeners", String::new()),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,OAUTH://127.0.0.1:0".into(),
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT".into(),
        ),
        (
            "listener.name.oauth.sasl.enabled.mechanisms",
            "OAUTHBEARER".into(),
        ),
        (
            "sasl.oauthbearer.jwks.endpoint.url",
            format!("file://{}", jwks_file.display()),
        ),
        ("sasl.oauthbearer.expected.audience", "spate".into()),
        (
            "sasl.oauthbearer.expected.issuer",
            "https://issuer.test".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Broker::start(BrokerConfig::load(None, vec![], cli).unwrap())
        .await
        .unwrap()
}

fn oauth_addr(b: &Broker) -> std::net::SocketAddr {
    b.listeners.iter().find(|(n, _)| n == "OAUTH").unwrap().1
}

async fn login(addr: std::net::SocketAddr, token: &str) -> (TcpStream, SaslAuthenticateResponse) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(handshake(&mut conn, "OAUTHBEARER").await.error_code, 0);
    let r = authenticate(&mut conn, &InitialResponse::format(token)).await;
    (conn, r)
}

async fn metadata(conn: &mut TcpStream) -> MetadataResponse {
    call(conn, ApiKey::Metadata, 12, &MetadataRequest::default()).await
}

#[tokio::test]
async fn a_valid_token_logs_in_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    let b = oauth_broker(dir.path(), &issuer.jwks).await;
    let (mut conn, r) = login(oauth_addr(&b), &issuer.token("alice", "spate", 600)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(
        (590_000..=600_000).contains(&r.session_lifetime_ms),
        "{}",
        r.session_lifetime_ms
    );
    assert_eq!(metadata(&mut conn).await.brokers.len(), 1);

    // A token about to expire: the session ends with it; the next request closes the
    // connection, nothing sent back.
    let (mut short, r) = login(oauth_addr(&b), &issuer.token("alice", "spate", 2)).await;
    assert_eq!(r.error_code, 0);
    assert!(r.session_lifetime_ms <= 2000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        send_raw(
            &mut short,
            &request(ApiKey::Metadata, 12, 1, &MetadataRequest::default()),
        )
        .await;
        let mut size = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(5), short.read_exact(&mut size)).await {
            Ok(Ok(_)) => {
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                short.read_exact(&mut body).await.unwrap();
            }
            _ => break,
        }
        assert!(Instant::now() < deadline, "the session outlived its token");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn invalid_tokens_get_the_challenge_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("k1");
    let stranger = Issuer::new("k1");
    let b = oauth_broker(dir.path(), &issuer.jwks).await;
    for (why, token) in [
        ("expired", issuer.token("alice", "spate", -300)),
        ("wrong audience", issuer.token("alice", "elsewhere", 600)),
        (
            "another issuer's key",
            stranger.token("alice", "spate", 600),
        ),
        ("not a JWT", "abc".to_string()),
    ] {
        let (mut conn, r) = login(oauth_addr(&b), &token).await;
        assert_eq!(
            r.error_code, 0,
            "{why}: the challenge is a successful exchange step"
        );
        assert_eq!(&r.auth_bytes[..], INVALID_TOKEN_CHALLENGE, "{why}");
        let failed = authenticate(&mut conn, b"\x01").await;
        assert_eq!(failed.error_code, 58, "{why}");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        assert!(rest.is_empty(), "{why}: closed after the failure");
    }
}
