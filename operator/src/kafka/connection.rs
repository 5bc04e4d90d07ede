//! One connection to a broker: size-prefixed frames, correlation ids, ApiVersions.
//!
//! # Format
//!
//! Each request is `int32 size | request header | body` and each response
//! `int32 size | response header | body`; the header versions depend on the API and version
//! (`HeaderVersion`), except that ApiVersions responses always use header v0. Requests on a
//! connection are answered in order, so one request is in flight at a time.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{codes, KafkaError};

/// Largest response accepted (a full Metadata of a big cluster fits easily).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A byte stream to a broker: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A negotiated connection to one broker.
pub struct Connection {
    addr: String,
    stream: Box<dyn Stream>,
    correlation_id: i32,
    timeout: Duration,
    /// Broker's supported `(min, max)` per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` (over TLS with `tls`, checking the certificate names the host) and
    /// negotiates versions with ApiVersions.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, KafkaError> {
        let io = |source| KafkaError::Io {
            addr: addr.to_string(),
            source,
        };
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| KafkaError::Timeout(addr.to_string()))?
            .map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| KafkaError::Protocol(format!("{addr}: {e}")))?;
                let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
                let tls = tokio::time::timeout(timeout, handshake)
                    .await
                    .map_err(|_| KafkaError::Timeout(addr.to_string()))?
                    .map_err(io)?;
                Box::new(tls)
            }
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            correlation_id: 0,
            timeout,
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("spate-operator"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = conn.exchange(&request, 3).await?;
        if response.error_code == codes::UNSUPPORTED_VERSION {
            // KIP-511: the broker answered in v0 with its ranges; retry at v0.
            response = conn.exchange(&request, 0).await?;
        }
        if response.error_code != 0 {
            return Err(KafkaError::Api {
                api: "ApiVersions",
                resource: addr.to_string(),
                code: response.error_code,
                message: String::new(),
            });
        }
        conn.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both sides support.
    pub fn version_for<R: Request>(&self, name: &'static str) -> Result<i16, KafkaError> {
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or(KafkaError::Unsupported(name))?;
        let ours = R::VERSIONS;
        let high = max.min(ours.max);
        if high < min.max(ours.min) {
            return Err(KafkaError::Unsupported(name));
        }
        Ok(high)
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(
        &mut self,
        name: &'static str,
        request: &R,
    ) -> Result<R::Response, KafkaError> {
        let version = self.version_for::<R>(name)?;
        self.exchange(request, version).await
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame = encode_request(request, version, correlation_id)?;
        let addr = self.addr.clone();
        let io = |source| KafkaError::Io {
            addr: addr.clone(),
            source,
        };
        let timeout = self.timeout;
        let body = tokio::time::timeout(timeout, async {
            self.stream.write_all(&frame).await.map_err(io)?;
            let size = self.stream.read_i32().await.map_err(io)?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| KafkaError::Protocol(format!("bad response size {size}")))?;
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await.map_err(io)?;
            Ok::<_, KafkaError>(body)
        })
        .await
        .map_err(|_| KafkaError::Timeout(self.addr.clone()))??;
        decode_response::<R>(Bytes::from(body), version, correlation_id)
    }
}

/// Encodes one request frame (size prefix included).
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<BytesMut, KafkaError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("spate-operator")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let proto = |e: anyhow::Error| KafkaError::Protocol(e.to_string());
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(proto)?;
    request.encode(&mut buf, version).map_err(proto)?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| KafkaError::Protocol("request too large".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Decodes a response body (size prefix stripped) and checks its correlation id.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, KafkaError> {
    let proto = |e: anyhow::Error| KafkaError::Protocol(e.to_string());
    let header_version = if R::KEY == ApiKey::ApiVersions as i16 {
        0
    } else {
        <R::Response as HeaderVersion>::header_version(version)
    };
    let header = ResponseHeader::decode(&mut body, header_version).map_err(proto)?;
    if header.correlation_id != correlation_id {
        return Err(KafkaError::Protocol(format!(
            "correlation id {} does not match request {correlation_id}",
            header.correlation_id
        )));
    }
    <R::Response as Decodable>::decode(&mut body, version).map_err(proto)
}
