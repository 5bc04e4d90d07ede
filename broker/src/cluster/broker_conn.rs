//! Connections one broker opens to another's inter-broker listener (follower fetches,
//! transaction markers and verification), secured as that listener is: plain TCP, TLS (with
//! this broker's certificate, for mutual TLS) and/or a SASL login (SCRAM or PLAIN with the
//! credentials of `listener.name.<l>.<mechanism>.sasl.jaas.config`, as Kafka's brokers do).
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::ServerName;
use spate_auth::{ScramClient, ScramMechanism};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::broker_rpc::{Call, RpcError};
use crate::config::BrokerConfig;
use crate::security::sasl::Mechanism;

/// A connection to another broker.
pub enum BrokerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for BrokerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BrokerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            BrokerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// This broker's login on other brokers' SASL listeners.
#[derive(Clone)]
struct SaslLogin {
    mechanism: Mechanism,
    username: String,
    password: String,
}

/// How to reach the inter-broker listener of other brokers.
#[derive(Clone, Default)]
pub struct Connector {
    tls: Option<TlsConnector>,
    sasl: Option<Arc<SaslLogin>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Connector(tls: {}, sasl: {:?})",
            self.tls.is_some(),
            self.sasl.as_ref().map(|s| s.mechanism.name())
        )
    }
}

impl Connector {
    /// From the inter-broker listener's settings: its TLS settings (as a client) and, for SASL
    /// listeners, `sasl.mechanism.inter.broker.protocol` with its JAAS credentials.
    pub fn from_config(config: &BrokerConfig) -> Result<Self, String> {
        let listener = config.listeners.inter_broker();
        let tls = match config.tls.get(&listener.name) {
            Some(settings) => Some(TlsConnector::from(Arc::new(
                settings.client_config().map_err(|e| e.to_string())?,
            ))),
            None => None,
        };
        let sasl = config.inter_broker_sasl.as_ref().map(|l| {
            Arc::new(SaslLogin {
                mechanism: l.mechanism,
                username: l.username.clone(),
                password: l.password.clone(),
            })
        });
        Ok(Self { tls, sasl })
    }

    /// Opens a connection to `ep`, secured and logged in, within `timeout`.
    pub async fn connect(
        &self,
        ep: &(String, u16),
        timeout: Duration,
    ) -> Result<BrokerStream, RpcError> {
        let open = async {
            let tcp = TcpStream::connect((ep.0.as_str(), ep.1)).await?;
            tcp.set_nodelay(true)?;
            let mut stream = match &self.tls {
                None => BrokerStream::Plain(tcp),
                Some(tls) => {
                    let name = ServerName::try_from(ep.0.clone()).map_err(|e| {
                        RpcError::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("{} is no TLS server name: {e}", ep.0),
                        ))
                    })?;
                    BrokerStream::Tls(Box::new(tls.connect(name, tcp).await?))
                }
            };
            if let Some(login) = &self.sasl {
                sasl_login(&mut stream, login).await?;
            }
            Ok::<_, RpcError>(stream)
        };
        tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| RpcError::Timeout(timeout))?
    }
}

fn refused(what: String) -> RpcError {
    RpcError::Io(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        what,
    ))
}

async fn sasl_login(stream: &mut BrokerStream, login: &SaslLogin) -> Result<(), RpcError> {
    let call = |api, version| Call::new(api, version, "spate-broker");
    let hs = call(ApiKey::SaslHandshake, 1);
    let req = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
    let r: SaslHandshakeResponse = hs.exchange(stream, &hs.encode(&req, [])?).await?;
    if r.error_code != 0 {
        return Err(refused(format!(
            "SaslHandshake for {} refused: error {}",
            login.mechanism.name(),
            r.error_code
        )));
    }
    let auth = call(ApiKey::SaslAuthenticate, 2);
    let mut send = |token: Vec<u8>| {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        auth.encode(&req, [])
    };
    let check = |r: &SaslAuthenticateResponse| {
        if r.error_code == 0 {
            Ok(())
        } else {
            Err(refused(format!(
                "SASL login to another broker failed: {}",
                r.error_message.as_deref().unwrap_or("")
            )))
        }
    };
    match login.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
            let r: SaslAuthenticateResponse = auth.exchange(stream, &send(token)?).await?;
            check(&r)
        }
        Mechanism::Scram(m) => scram(stream, &auth, &mut send, login, m, check).await,
        Mechanism::OAuthBearer => Err(refused(
            "OAUTHBEARER between brokers is not supported".into(),
        )),
    }
}

async fn scram(
    stream: &mut BrokerStream,
    auth: &Call,
    send: &mut impl FnMut(Vec<u8>) -> Result<bytes::BytesMut, RpcError>,
    login: &SaslLogin,
    m: ScramMechanism,
    check: impl Fn(&SaslAuthenticateResponse) -> Result<(), RpcError>,
) -> Result<(), RpcError> {
    let mut client = ScramClient::new(
        m,
        &login.username,
        &login.password,
        &spate_auth::random_nonce(24),
    );
    let first: SaslAuthenticateResponse = auth
        .exchange(stream, &send(client.first_message().into_bytes())?)
        .await?;
    check(&first)?;
    let last = client
        .final_message(&first.auth_bytes)
        .map_err(|e| refused(format!("SCRAM with another broker: {e}")))?;
    let done: SaslAuthenticateResponse = auth.exchange(stream, &send(last.into_bytes())?).await?;
    check(&done)?;
    client
        .verify_server_final(&done.auth_bytes)
        .map_err(|e| refused(format!("the other broker failed SCRAM's server proof: {e}")))
}
