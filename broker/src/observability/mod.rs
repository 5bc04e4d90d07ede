//! What operators watch: Prometheus metrics and the HTTP health endpoints.

pub mod http;
pub mod metrics;
pub mod telemetry;

pub use metrics::Metrics;
