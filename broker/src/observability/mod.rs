//! What operators watch: Prometheus metrics, the HTTP health endpoints, logs and traces.

pub mod http;
pub mod metrics;
pub mod replication_trace;
pub mod telemetry;

pub use metrics::Metrics;
