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

/// An HTTPS server answering every request with `body` (the JWKS), with a certificate for
/// 127.0.0.1 from `ca`; returns its URL and how many requests it served.
async fn jwks_server(
    ca: &common::pki::Ca,
    body: std::sync::Arc<parking_lot::Mutex<String>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::AsyncWriteExt;
    let (cert, key, _) = common::pki::leaf(ca, "jwks", &["127.0.0.1"], 7);
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/jwks.json", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.lock().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, served)
}

/// A broker whose OAUTH listener fetches its keys from `url`, trusting the PEM `ca_file`
/// through the listener's OAUTHBEARER JAAS login (as Kafka configures it).
async fn https_oauth_broker(dir: &std::path::Path, url: &str, ca_file: &std::path::Path) -> Broker {
    let cli: Vec<(String, String)> = [
        ("log.dirs", dir.join("data").display().to_string()),
        ("http.listeners", String::new()),
        ("listeners", "PLAINTEXT://127.0.0.1:0,OAUTH://127.0.0.1:0".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT".into(),
        ),
        (
            "listener.name.oauth.sasl.enabled.mechanisms",
            "OAUTHBEARER".into(),
        ),
        ("sasl.oauthbearer.jwks.endpoint.url", url.to_string()),
        (
            "listener.name.oauth.oauthbearer.sasl.jaas.config",
            format!(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\";",
                ca_file.display()
            ),
        ),
        ("sasl.oauthbearer.expected.audience", "spate".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Broker::start(BrokerConfig::load(None, vec![], cli).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_an_https_endpoint_trusted_through_the_jaas_login() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pki::ca("jwks-ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let issuer = Issuer::new("k1");
    let body = std::sync::Arc::new(parking_lot::Mutex::new(issuer.jwks.clone()));
    let (url, served) = jwks_server(&ca, body.clone()).await;
    let b = https_oauth_broker(dir.path(), &url, &ca_file).await;
    assert!(
        served.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "fetched at startup"
    );
    let (mut conn, r) = login(oauth_addr(&b), &issuer.token("alice", "spate", 600)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(metadata(&mut conn).await.brokers.len(), 1);

    // The issuer rotates to a new key: the first token with the unknown kid fails and asks
    // for an early refresh; a retry within seconds logs in.
    let rotated = Issuer::new("k2");
    *body.lock() = rotated.jwks.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_conn, r) = login(oauth_addr(&b), &rotated.token("bob", "spate", 600)).await;
        if r.error_code == 0 && r.auth_bytes.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn an_https_endpoint_with_an_untrusted_certificate_gives_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pki::ca("someone-else");
    let issuer = Issuer::new("k1");
    let body = std::sync::Arc::new(parking_lot::Mutex::new(issuer.jwks.clone()));
    let (url, _) = jwks_server(&ca, body).await;
    let trusted = common::pki::ca("trusted");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &trusted.pem).unwrap();
    // The broker starts (an identity provider being away must not stop it) but accepts no
    // token: it never got keys from a server it does not trust.
    let b = https_oauth_broker(dir.path(), &url, &ca_file).await;
    let (_conn, r) = login(oauth_addr(&b), &issuer.token("alice", "spate", 600)).await;
    assert_eq!(&r.auth_bytes[..], INVALID_TOKEN_CHALLENGE);
}
