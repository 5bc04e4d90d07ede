//! Client quotas on the request path: what a request used (produced bytes, fetched bytes,
//! handling time), recorded against the connection's quotas (`security::quotas`), and the
//! throttle it earned set on the response. The connection then reads nothing for that long.
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::protocol::{Request, RequestEnvelope, Response};
use crate::security::quotas::QuotaKind;
use crate::security::RequestContext;

/// Taken before a request is handled (`before` gives none when no client quota is configured).
pub struct Usage {
    client_id: String,
    started: Instant,
    /// Record bytes of a Produce.
    produced: Option<usize>,
    /// A consumer's (not a follower's) Fetch.
    consumer_fetch: bool,
    acks_zero: bool,
}

/// Notes what the request will use; caps a consumer's fetch to what its quota allows in a
/// window, as Kafka does.
pub fn before(ctx: &Context, rc: &RequestContext, env: &mut RequestEnvelope) -> Option<Usage> {
    if !ctx.quotas.active() {
        return None;
    }
    let client_id = env.client_id.clone().unwrap_or_default();
    let (produced, acks_zero) = match &env.body {
        Request::Produce(r) => (
            Some(
                r.topic_data
                    .iter()
                    .flat_map(|t| &t.partition_data)
                    .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
                    .sum(),
            ),
            r.acks == 0,
        ),
        _ => (None, false),
    };
    let consumer_fetch = match &mut env.body {
        Request::Fetch(r) if r.replica_id.0 < 0 && r.replica_state.replica_id.0 < 0 => {
            if let Some(cap) = ctx.quotas.max_fetch_bytes(&rc.principal.name, &client_id) {
                r.max_bytes = r.max_bytes.min(cap);
                r.min_bytes = r.min_bytes.min(r.max_bytes);
            }
            true
        }
        _ => false,
    };
    Some(Usage {
        client_id,
        started: Instant::now(),
        produced,
        consumer_fetch,
        acks_zero,
    })
}

/// Records the usage and sets the throttle on the response; the delay to apply.
pub fn after(
    ctx: &Context,
    rc: &RequestContext,
    usage: Option<Usage>,
    response: Option<&mut Response>,
) -> Duration {
    let Some(usage) = usage else {
        return Duration::ZERO;
    };
    let client_id = usage.client_id.as_str();
    let quotas = &ctx.quotas;
    let user = rc.principal.name.as_str();
    let mut throttle = Duration::ZERO;
    let mut earned = |kind: QuotaKind, t: Duration| {
        if !t.is_zero() {
            ctx.metrics
                .throttle_seconds
                .with_label_values(&[kind.label()])
                .inc_by(t.as_secs_f64());
        }
        throttle = throttle.max(t);
    };
    if let Some(bytes) = usage.produced {
        earned(
            QuotaKind::Produce,
            quotas.record(user, client_id, QuotaKind::Produce, bytes as f64),
        );
    }
    let mut response = response;
    if usage.consumer_fetch {
        if let Some(Response::Fetch(f)) = response.as_deref_mut() {
            let bytes: usize = f
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
                .sum();
            let t = quotas.record(user, client_id, QuotaKind::Fetch, bytes as f64);
            if !t.is_zero() {
                // As Kafka: a throttled fetch is answered without records, which then do not
                // count against the quota.
                quotas.unrecord(user, client_id, QuotaKind::Fetch, bytes as f64);
                for p in f.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                    p.records = None;
                }
            }
            earned(QuotaKind::Fetch, t);
        }
    }
    // Handling time, in percent of one thread over the window (Kafka's request quota);
    // acks=0 produces are exempt, as in Kafka.
    if !usage.acks_zero {
        let percent_seconds = usage.started.elapsed().as_secs_f64() * 100.0;
        earned(
            QuotaKind::Request,
            quotas.record(user, client_id, QuotaKind::Request, percent_seconds),
        );
    }
    if !throttle.is_zero() {
        if let Some(r) = response {
            r.set_throttle_time_ms(throttle.as_millis().min(i32::MAX as u128) as i32);
        }
    }
    throttle
}
