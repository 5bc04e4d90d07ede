//! Why a resource does not match its spec: what reconcilers report in `Ready=False` instead
//! of failing the reconcile, when retrying soon would not help.

use std::time::Duration;

use crate::kafka::KafkaError;

/// A `Ready=False` reason, its message, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Ready` condition reason.
    pub reason: &'static str,
    /// Human-readable detail (never a secret).
    pub message: String,
    /// When to look again.
    pub retry: Duration,
}

impl Problem {
    /// A problem retried in 30 s.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
            retry: Duration::from_secs(30),
        }
    }

    /// A failed Kafka call: `ClusterUnreachable` (retried in 10 s) when the brokers could
    /// not be reached, else `reason`.
    pub fn from_kafka(reason: &'static str, err: &KafkaError) -> Self {
        if err.is_unreachable() {
            Problem {
                reason: "ClusterUnreachable",
                message: err.to_string(),
                retry: Duration::from_secs(10),
            }
        } else {
            Problem::new(reason, err.to_string())
        }
    }
}
