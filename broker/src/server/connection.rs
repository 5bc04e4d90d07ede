//! One client connection: read frames, answer each request in order, write responses.
//!
//! Requests on a connection are handled one at a time, as Kafka does, so responses keep the
//! request order; pipelined requests wait in the read buffer, and responses to a pipelined
//! burst are written with one flush.
//!
//! On an SSL listener the TLS handshake comes first (at most 10 s), then the same loop runs over
//! the TLS stream. A first byte that is no TLS handshake record (a plaintext Kafka client) gets
//! no answer: the connection is closed.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::context::Context;
use crate::handlers::{api_versions, dispatch};
use crate::protocol::{decode_request, encode_response, DecodeError, FrameDecoder, Response};
use crate::security::tls::TlsListener;
use crate::security::{KafkaPrincipal, RequestContext};
use crate::trace_context::{self, TRACE_TARGET};
use tracing::Instrument;

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The content type of a TLS record carrying a handshake message: a ClientHello starts so.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub async fn serve(
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    tls: Option<Arc<TlsListener>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    ctx.metrics.connections.inc();
    ctx.metrics.connections_total.inc();
    let _open = OpenConnection(ctx.clone());
    let Some(tls) = tls else {
        let rc = RequestContext {
            peer,
            listener,
            principal: KafkaPrincipal::anonymous(),
        };
        return serve_requests(ctx, stream, rc, shutdown).await;
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake(&tls, stream)) => r,
        _ = shutdown.changed() => return,
    };
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, %listener, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, %listener, "TLS handshake timed out");
            return;
        }
    };
    let principal = match tls.settings.principal(stream.get_ref().1) {
        Ok(p) => p,
        Err(e) => {
            // Kafka fails the authentication when no mapping rule applies.
            tracing::warn!(%peer, %listener, "closing TLS connection: {e}");
            return;
        }
    };
    tracing::debug!(%peer, %listener, %principal, "TLS session established");
    let rc = RequestContext {
        peer,
        listener,
        principal,
    };
    serve_requests(ctx, stream, rc, shutdown).await
}

/// The server side of a TLS handshake, with the listener's config current at its start.
async fn handshake(tls: &TlsListener, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 0 || first[0] != TLS_HANDSHAKE_RECORD {
        // Read what was sent so the close is a clean FIN rather than a reset.
        let mut sink = [0u8; 4096];
        while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a TLS handshake (a plaintext client on a TLS listener?)",
        ));
    }
    tls.acceptor().accept(stream).await
}

/// The request loop, over TCP or TLS.
async fn serve_requests<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: Arc<Context>,
    mut stream: S,
    rc: RequestContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = rc.peer;
    let decoder = FrameDecoder::new(ctx.config.socket_request_max_bytes);
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            let frame = match decoder.decode(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    return;
                }
            };
            let response = match decode_request(frame) {
                Ok(env) => {
                    let (correlation_id, version) = (env.correlation_id, env.version);
                    let api = crate::protocol::versions::name(env.api_key);
                    ctx.metrics.requests.with_label_values(&[api]).inc();
                    let timer = ctx
                        .metrics
                        .request_seconds
                        .with_label_values(&[api])
                        .start_timer();
                    let span = tracing::trace_span!(
                        target: TRACE_TARGET,
                        "kafka.request",
                        otel.name = api,
                        otel.kind = "server",
                        api,
                        api.version = version,
                        client.id = env.client_id.as_deref().unwrap_or(""),
                        correlation_id,
                        net.peer = %peer,
                        enduser.id = %rc.principal,
                        spate.node.id = ctx.config.node_id,
                    );
                    if let Some(parent) = &env.traceparent {
                        trace_context::continue_trace(&span, parent);
                    }
                    let handled = tokio::select! {
                        r = dispatch(&ctx, env, &rc).instrument(span) => r,
                        _ = shutdown.changed() => return,
                    };
                    timer.observe_duration();
                    handled.map(|r| (correlation_id, version, r))
                }
                Err(DecodeError::UnsupportedVersion {
                    api: ApiKey::ApiVersions,
                    version,
                    correlation_id,
                }) => {
                    tracing::debug!(%peer, version, "ApiVersions version unsupported; answering v0 (KIP-511)");
                    Some((
                        correlation_id,
                        0,
                        Response::ApiVersions(api_versions::unsupported_version()),
                    ))
                }
                Err(e) => {
                    // Kafka closes the connection on requests it cannot parse.
                    tracing::warn!(%peer, "closing connection: {e}");
                    return;
                }
            };
            if let Some((correlation_id, version, response)) = response {
                if let Err(e) = encode_response(&mut output, correlation_id, version, &response) {
                    tracing::error!(%peer, api = ?response.api_key(), version, "encoding response: {e:#}");
                    return;
                }
            }
        }
        if !output.is_empty() {
            if let Err(e) = stream.write_all(&output).await {
                tracing::debug!(%peer, "write failed: {e}");
                return;
            }
            output.clear();
        }
        tokio::select! {
            read = stream.read_buf(&mut input) => match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, "read failed: {e}");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Decrements the open-connection gauge however the connection ends.
struct OpenConnection(Arc<Context>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
    }
}
