//! Trace spans for raft RPCs, and W3C trace context carried in gRPC metadata, so that a
//! proposal forwarded from a follower shows as one trace with the leader's handling of it.
//!
//! Spans are declared under [`TRACE_TARGET`], which only the broker's OTLP layer enables; with
//! tracing off they are disabled at their call sites, and injection and extraction are
//! skipped. The propagator is OpenTelemetry's global one, which the broker installs with its
//! exporter (the default, a no-op, propagates nothing).
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of spans meant for trace export (shared with the broker).
pub const TRACE_TARGET: &str = "spate::trace";

/// The gRPC service name, for the `rpc.service` attribute.
pub(crate) const SERVICE: &str = "spate.meta.v1.RaftService";

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes `span`'s context into outgoing request metadata (`traceparent`).
pub(crate) fn inject(span: &Span, metadata: &mut MetadataMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MetadataInjector(metadata))
    });
}

/// Makes the caller's span, read from incoming request metadata, the parent of `span`.
pub(crate) fn continue_remote(span: &Span, metadata: &MetadataMap) {
    if span.is_disabled() {
        return;
    }
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataExtractor(metadata)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Marks `span` as failed with `message`.
pub(crate) fn fail(span: &Span, message: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.message", message);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;

    #[test]
    fn metadata_carries_what_the_propagator_writes() {
        let mut md = MetadataMap::new();
        MetadataInjector(&mut md).set(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        let ex = MetadataExtractor(&md);
        assert_eq!(
            ex.get("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(ex.keys(), vec!["traceparent"]);
    }

    #[test]
    fn a_disabled_span_injects_nothing() {
        let mut md = MetadataMap::new();
        inject(&Span::none(), &mut md);
        assert!(md.is_empty());
    }
}
