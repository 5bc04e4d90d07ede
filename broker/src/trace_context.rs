//! W3C trace context carried between brokers: a follower's Fetch names the span it was sent
//! from, so the leader's handling of it joins the follower's trace. With no trace layer
//! installed (`observability/telemetry.rs`) every span is disabled and these do nothing.
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of spans exported as traces (produce, fetch, replication, raft RPCs);
/// the metadata quorum's spans use the same one.
pub const TRACE_TARGET: &str = spate_meta::network::TRACE_TARGET;

/// `span`'s context as a W3C `traceparent`, for requests that have no metadata of their own
/// (a follower's Fetch). `None` with tracing off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes the remote span named by `traceparent` the parent of `span` (not yet entered).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if span.is_disabled() {
        return;
    }
    let carrier =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}
