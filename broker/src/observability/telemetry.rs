//! Logs and traces. Logs go to stderr (text or JSON). Traces go over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise no trace layer is installed, and since
//! every trace span is declared under `TRACE_TARGET`, which no other layer enables, those
//! spans are disabled at their call sites and cost nothing.
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::prelude::*;

pub use crate::trace_context::TRACE_TARGET;

/// Keeps the exporter alive; `shutdown` flushes spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("flushing traces: {e}");
            }
        }
    }
}

/// An OTLP/gRPC exporter to `endpoint` (e.g. `http://collector:4317`), for the broker
/// `node_id` (the `service.instance.id` resource attribute; `None` when several brokers share
/// one process, as in tests: their spans carry `spate.node.id` anyway). Must run inside the
/// tokio runtime: the gRPC channel's I/O runs on it.
pub fn tracer_provider(endpoint: &str, node_id: Option<i32>) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let resource = Resource::builder().with_service_name("spate-broker");
    let resource = match node_id {
        Some(id) => resource.with_attribute(KeyValue::new("service.instance.id", id.to_string())),
        None => resource,
    };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The layer that turns `TRACE_TARGET` spans into OpenTelemetry spans. Also installs the W3C
/// trace-context propagator, with which raft RPCs carry their caller's trace to the peer.
pub fn trace_layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("spate-broker"))
        .with_filter(Targets::new().with_target(TRACE_TARGET, LevelFilter::TRACE))
}

/// Installs the global subscriber: stderr logs filtered by `RUST_LOG` (default info), plus
/// OTLP traces from broker `node_id` when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(json: bool, node_id: i32) -> Telemetry {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"))
            // Trace spans are for the exporter, never for the log.
            .add_directive(format!("{TRACE_TARGET}=off").parse().unwrap_or_default())
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(filter()).boxed()
    } else {
        fmt.with_filter(filter()).boxed()
    };
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    let provider = endpoint.and_then(|e| match tracer_provider(&e, Some(node_id)) {
        Ok(p) => Some(p),
        Err(err) => {
            eprintln!("OTLP exporter to {e} not started: {err}");
            None
        }
    });
    let registry = tracing_subscriber::registry().with(fmt);
    match &provider {
        Some(p) => registry.with(trace_layer(p)).init(),
        None => registry.init(),
    }
    Telemetry { provider }
}
