//! One client connection: read frames, answer each request in order, write responses.
//!
//! Requests on a connection are handled one at a time, as Kafka does, so responses keep the
//! request order; pipelined requests wait in the read buffer, and responses to a pipelined
//! burst are written with one flush.
//!
//! On an SSL listener the TLS handshake comes first (at most 10 s), then the same loop runs over
//! the TLS stream. A first byte that is no TLS handshake record (a plaintext Kafka client) gets
//! no answer: the connection is closed. On a SASL listener every request passes the
//! connection's authenticator first (`security::sasl::authenticator`).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use super::throttle;
use crate::context::Context;
use crate::handlers::{api_versions, dispatch};
use crate::protocol::{decode_request, encode_response, DecodeError, FrameDecoder, Response};
use crate::security::sasl::authenticator::{Authenticator, RawStep, Step};
use crate::security::sasl::SaslSettings;
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
    sasl: Option<Arc<SaslSettings>>,
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
        return serve_requests(ctx, stream, rc, sasl.map(Authenticator::new), shutdown).await;
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
    serve_requests(ctx, stream, rc, sasl.map(Authenticator::new), shutdown).await
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

/// The request loop, over TCP or TLS; with `auth` on SASL listeners.
async fn serve_requests<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: Arc<Context>,
    mut stream: S,
    mut rc: RequestContext,
    mut auth: Option<Authenticator>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = rc.peer;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    let mut mute = Duration::ZERO;
    loop {
        loop {
            // Before a SASL login only small frames are read (sasl.server.max.receive.size).
            let max = auth
                .as_ref()
                .and_then(Authenticator::max_frame)
                .unwrap_or(ctx.config.socket_request_max_bytes);
            let frame = match FrameDecoder::new(max).decode(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    return;
                }
            };
            if let Some(a) = auth.as_mut().filter(|a| a.expects_raw_token()) {
                let md = ctx.registry.quorum().metadata();
                let step =
                    a.on_raw_token(&frame, &*md, &spate_auth::random_nonce(32), Instant::now());
                after_sasl_step(&ctx, &mut rc, a);
                match step {
                    RawStep::Reply(token) => {
                        output.put_u32(token.len() as u32);
                        output.extend_from_slice(&token);
                    }
                    RawStep::Close(why) => {
                        tracing::debug!(%peer, "closing connection: {why}");
                        return;
                    }
                }
                continue;
            }
            let env = match decode_request(frame) {
                Ok(env) => env,
                Err(DecodeError::UnsupportedVersion {
                    api: ApiKey::ApiVersions,
                    version,
                    correlation_id,
                }) => {
                    tracing::debug!(%peer, version, "ApiVersions version unsupported; answering v0 (KIP-511)");
                    let r = Response::ApiVersions(api_versions::unsupported_version());
                    if !encode(&mut output, peer, correlation_id, 0, &r) {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // Kafka closes the connection on requests it cannot parse.
                    tracing::warn!(%peer, "closing connection: {e}");
                    return;
                }
            };
            let mut env = match auth.as_mut() {
                None => env,
                Some(a) => {
                    let md = ctx.registry.quorum().metadata();
                    let nonce = match env.api_key {
                        ApiKey::SaslAuthenticate => spate_auth::random_nonce(32),
                        _ => String::new(),
                    };
                    let step = a.on_request(env, &*md, &nonce, Instant::now());
                    after_sasl_step(&ctx, &mut rc, a);
                    match step {
                        Step::Dispatch(env) => env,
                        Step::Reply(r) => {
                            if !encode(&mut output, peer, r.correlation_id, r.version, &r.response)
                            {
                                return;
                            }
                            continue;
                        }
                        Step::ReplyAndClose(r, delay) => {
                            if encode(&mut output, peer, r.correlation_id, r.version, &r.response) {
                                let _ = stream.write_all(&output).await;
                                let _ = stream.flush().await;
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => {}
                                _ = shutdown.changed() => {}
                            }
                            return;
                        }
                        Step::Close(why) => {
                            tracing::debug!(%peer, "closing connection: {why}");
                            return;
                        }
                    }
                }
            };
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
            let usage = throttle::before(&ctx, &rc, &mut env);
            let mut handled = tokio::select! {
                r = dispatch(&ctx, env, &rc).instrument(span) => r,
                _ = shutdown.changed() => return,
            };
            timer.observe_duration();
            mute = mute.max(throttle::after(&ctx, &rc, usage, handled.as_mut()));
            if let Some(response) = handled {
                if !encode(&mut output, peer, correlation_id, version, &response) {
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
        if !mute.is_zero() {
            // Over a quota: the connection is muted for the throttle time (KIP-219), so even
            // clients that ignore throttle_time_ms slow down. Never closed for it.
            tokio::select! {
                _ = tokio::time::sleep(mute) => {}
                _ = shutdown.changed() => return,
            }
            mute = Duration::ZERO;
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

/// Appends a response frame; false (logged) when it cannot be encoded.
fn encode(
    output: &mut BytesMut,
    peer: SocketAddr,
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> bool {
    match encode_response(output, correlation_id, version, response) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(%peer, api = ?response.api_key(), version, "encoding response: {e:#}");
            false
        }
    }
}

/// Counts a finished login and makes its principal the connection's.
fn after_sasl_step(ctx: &Context, rc: &mut RequestContext, auth: &mut Authenticator) {
    if let Some(outcome) = auth.take_outcome() {
        let result = if outcome.success {
            "success"
        } else {
            "failure"
        };
        ctx.metrics
            .authentications
            .with_label_values(&[&rc.listener, outcome.mechanism, result])
            .inc();
        if outcome.success {
            tracing::debug!(peer = %rc.peer, listener = %rc.listener, mechanism = outcome.mechanism, principal = ?auth.principal(), "SASL authentication succeeded");
        } else {
            tracing::info!(peer = %rc.peer, listener = %rc.listener, mechanism = outcome.mechanism, "SASL authentication failed");
        }
    }
    if let Some(p) = auth.principal() {
        if *p != rc.principal {
            rc.principal = p.clone();
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
