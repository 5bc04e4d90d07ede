//! Spate's Kubernetes operator: `Cluster`, `Topic` and `User` custom resources.
//!
//! # Layout
//!
//! - `crd/`: the custom resource types (`spate.dev/v1alpha1`); `crdgen` renders them.
//! - `builders/`: pure functions from a `Cluster` to the Kubernetes objects it needs
//!   (ConfigMap, Services, broker Pods, PVCs, PodDisruptionBudget, ServiceAccount), and
//!   `external.rs`, which reads the external listener's addresses back from applied Services.
//! - `plan/`: pure planning: broker membership, reassignment/drain plans, restart safety,
//!   and which step a Cluster pass takes.
//! - `kafka/`: a small async Kafka admin client (`kafka-protocol` codecs over TCP) and the
//!   `KafkaAdmin` trait the reconcilers use, so tests can swap in a fake cluster.
//! - `reconcilers/`: one reconciler per resource, driven by `kube::runtime::Controller`:
//!   `cluster/` (a folder: objects, status, one file per step), `topic.rs` and `user/`.
//! - `leader_election.rs`: a coordination.k8s.io Lease elector, so two replicas can run.
//! - `metrics.rs`: Prometheus metrics and the /healthz, /readyz, /metrics server.

pub mod builders;
pub mod crd;
pub mod kafka;
pub mod leader_election;
pub mod metrics;
pub mod pki;
pub mod plan;
pub mod reconcilers;

/// The binary's log filter unless `RUST_LOG` says otherwise: the reconcilers' decisions
/// (`info`) and only warnings from kube's own crates, which are chatty at `info`.
pub const DEFAULT_LOG_FILTER: &str = "info,kube=warn";

/// Everything that can fail in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Kafka admin call failed (the cluster refused or could not be reached).
    #[error("kafka: {0}")]
    Kafka(#[from] kafka::KafkaError),
    /// Adding, running or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A resource cannot be handled as written.
    #[error("invalid resource: {0}")]
    Invalid(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Kafka(_) => "kafka",
            Error::Finalizer(_) => "finalizer",
            Error::Invalid(_) => "invalid",
        }
    }
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
