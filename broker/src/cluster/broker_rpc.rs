//! Kafka-protocol requests one broker sends another (follower fetches, transaction markers,
//! transaction verification): framing, header, one request/response exchange.
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_meta::ClusterMetadata;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::broker_conn::Connector;

/// A live broker's inter-broker address (replication, transaction markers, verification).
pub fn endpoint(md: &ClusterMetadata, broker: i32) -> Option<(String, u16)> {
    md.brokers
        .get(&broker)
        .filter(|b| !b.fenced)
        .map(|b| (b.host.clone(), b.port))
}

/// Why an inter-broker request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("broker {0} has no endpoint (unknown or fenced)")]
    NoEndpoint(i32),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("response frame of {0} bytes is over the limit")]
    FrameTooLarge(i64),
    #[error("correlation id {sent} answered as {got}")]
    Correlation { sent: i32, got: i32 },
    /// kafka-protocol's codecs report `anyhow` errors; their message is kept.
    #[error("encoding or decoding: {0}")]
    Codec(String),
}

fn codec(e: anyhow::Error) -> RpcError {
    RpcError::Codec(e.to_string())
}

/// What one request is: its API, version, correlation id and who sends it.
pub struct Call {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: &'static str,
    /// Larger response frames are refused.
    pub max_frame: usize,
    pub timeout: Duration,
}

impl Call {
    /// A call with correlation id 1, 16 MiB frames and a 10 s timeout.
    pub fn new(api: ApiKey, version: i16, client_id: &'static str) -> Self {
        Self {
            api,
            version,
            correlation_id: 1,
            client_id,
            max_frame: 16 << 20,
            timeout: Duration::from_secs(10),
        }
    }

    /// The size-prefixed request frame; `tags` go into the header's tagged fields.
    pub fn encode<R: Encodable>(
        &self,
        request: &R,
        tags: impl IntoIterator<Item = (i32, Bytes)>,
    ) -> Result<BytesMut, RpcError> {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let mut header = RequestHeader::default()
            .with_request_api_key(self.api as i16)
            .with_request_api_version(self.version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        header.unknown_tagged_fields.extend(tags);
        header
            .encode(&mut buf, self.api.request_header_version(self.version))
            .map_err(codec)?;
        request.encode(&mut buf, self.version).map_err(codec)?;
        let size = i32::try_from(buf.len() - 4)
            .map_err(|_| RpcError::Codec(format!("request of {} bytes", buf.len())))?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Ok(buf)
    }

    /// Writes `frame` (from [`Call::encode`]) and reads the response, within the timeout.
    pub async fn exchange<Resp: Decodable>(
        &self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        frame: &[u8],
    ) -> Result<Resp, RpcError> {
        let io = async {
            stream.write_all(frame).await?;
            let mut size = [0u8; 4];
            stream.read_exact(&mut size).await?;
            let size = i32::from_be_bytes(size);
            let size = usize::try_from(size)
                .ok()
                .filter(|n| *n <= self.max_frame)
                .ok_or(RpcError::FrameTooLarge(i64::from(size)))?;
            let mut body = vec![0u8; size];
            stream.read_exact(&mut body).await?;
            Ok::<_, RpcError>(Bytes::from(body))
        };
        let mut frame = tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| RpcError::Timeout(self.timeout))??;
        let header =
            ResponseHeader::decode(&mut frame, self.api.response_header_version(self.version))
                .map_err(codec)?;
        if header.correlation_id != self.correlation_id {
            return Err(RpcError::Correlation {
                sent: self.correlation_id,
                got: header.correlation_id,
            });
        }
        let response = Resp::decode(&mut frame, self.version).map_err(codec)?;
        if frame.has_remaining() {
            tracing::debug!(
                api = ?self.api,
                "{} trailing bytes in a response",
                frame.remaining()
            );
        }
        Ok(response)
    }

    /// One round trip on a fresh connection to `endpoint`, for rare requests.
    pub async fn once<Req: Encodable, Resp: Decodable>(
        &self,
        connector: &Connector,
        endpoint: &(String, u16),
        request: &Req,
    ) -> Result<Resp, RpcError> {
        let frame = self.encode(request, [])?;
        let mut stream = connector.connect(endpoint, self.timeout).await?;
        self.exchange(&mut stream, &frame).await
    }
}
