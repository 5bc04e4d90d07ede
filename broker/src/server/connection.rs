//! One client connection: read frames, answer each request in order, write responses.
//!
//! Requests on a connection are handled one at a time, as Kafka does, so responses keep the
//! request order; pipelined requests wait in the read buffer, and responses to a pipelined
//! burst are written with one flush.
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::context::Context;
use crate::handlers::{api_versions, dispatch};
use crate::protocol::{decode_request, encode_response, DecodeError, FrameDecoder, Response};
use crate::trace_context::{self, TRACE_TARGET};
use tracing::Instrument;

pub async fn serve(
    ctx: Arc<Context>,
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    ctx.metrics.connections.inc();
    ctx.metrics.connections_total.inc();
    let _open = OpenConnection(ctx.clone());
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
                        spate.node.id = ctx.config.node_id,
                    );
                    if let Some(parent) = &env.traceparent {
                        trace_context::continue_trace(&span, parent);
                    }
                    let handled = tokio::select! {
                        r = dispatch(&ctx, env, peer, &listener).instrument(span) => r,
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
