//! SASL logins for tests: SaslHandshake v1, SaslAuthenticate v2, SCRAM with spate-auth's client.
use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_auth::{ScramClient, ScramMechanism};
use tokio::net::TcpStream;

use super::call;

pub async fn handshake(conn: &mut TcpStream, mechanism: &'static str) -> SaslHandshakeResponse {
    call(
        conn,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    )
    .await
}

pub async fn authenticate(conn: &mut TcpStream, token: &[u8]) -> SaslAuthenticateResponse {
    call(
        conn,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
    .await
}

/// A SCRAM login: Ok with the connection ready for requests, or the broker's error message.
pub async fn scram_login(
    addr: SocketAddr,
    m: ScramMechanism,
    user: &str,
    password: &str,
) -> Result<TcpStream, String> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(handshake(&mut conn, m.name()).await.error_code, 0);
    let mut client = ScramClient::new(m, user, password, &spate_auth::random_nonce(24));
    let first = authenticate(&mut conn, client.first_message().as_bytes()).await;
    if first.error_code != 0 {
        return Err(first.error_message.unwrap().to_string());
    }
    let last = client.final_message(&first.auth_bytes).unwrap();
    let done = authenticate(&mut conn, last.as_bytes()).await;
    if done.error_code != 0 {
        assert_eq!(done.error_code, 58, "SASL_AUTHENTICATION_FAILED");
        return Err(done.error_message.unwrap().to_string());
    }
    client.verify_server_final(&done.auth_bytes).unwrap();
    Ok(conn)
}
