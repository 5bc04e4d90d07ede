//! What every request handler can reach.
use std::sync::Arc;

use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Registry;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::observability::replication_trace::AckWaits;
use crate::observability::Metrics;
use crate::txn::TxnCoordinator;

pub struct Context {
    pub registry: Arc<Registry>,
    pub config: Arc<BrokerConfig>,
    pub groups: Arc<GroupCoordinator>,
    pub txn: Arc<TxnCoordinator>,
    pub metrics: Arc<Metrics>,
    /// acks=all produces waiting for replicas, for linking traces (tracing on only).
    pub ack_waits: AckWaits,
    /// Host and port clients are told to use.
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl Context {
    pub fn node_id(&self) -> BrokerId {
        BrokerId(self.config.node_id)
    }
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
