//! What every request handler can reach.
use std::sync::Arc;

use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use spate_meta::ListenerEndpoint;

use crate::cluster::Registry;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::observability::replication_trace::AckWaits;
use crate::observability::Metrics;
use crate::security::authz::Authz;
use crate::security::quotas::Quotas;
use crate::txn::TxnCoordinator;

pub struct Context {
    pub registry: Arc<Registry>,
    pub config: Arc<BrokerConfig>,
    pub groups: Arc<GroupCoordinator>,
    pub txn: Arc<TxnCoordinator>,
    pub metrics: Arc<Metrics>,
    /// acks=all produces waiting for replicas, for linking traces (tracing on only).
    pub ack_waits: AckWaits,
    /// What clients are told to use, per listener (the inter-broker listener first).
    pub advertised: Vec<ListenerEndpoint>,
    /// What each connection's principal may do.
    pub authz: Authz,
    /// Client quotas and their rates.
    pub quotas: Quotas,
}

impl Context {
    pub fn node_id(&self) -> BrokerId {
        BrokerId(self.config.node_id)
    }

    /// This broker's address for clients of `listener` (the inter-broker one if unknown).
    pub fn advertised(&self, listener: &str) -> (StrBytes, i32) {
        let e = self
            .advertised
            .iter()
            .find(|e| e.name == listener)
            .or(self.advertised.first());
        e.map(|e| (str_bytes(e.host.clone()), i32::from(e.port)))
            .unwrap_or_else(|| (str_bytes(""), -1))
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
