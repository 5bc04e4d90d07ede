//! Broker-level changes: dynamic broker configs (`throttle.rs`'s replication throttle rates)
//! and unregistering a decommissioned broker.
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::{MembershipChange, MetaRequest};

use super::super::quorum::APPLY_TIMEOUT;
use super::super::{AdminError, Registry};
use crate::replication::throttle;

impl Registry {
    /// Validates and stores dynamic broker configs for `resource` (a broker id, or `""` for
    /// the cluster default), then waits until this broker sees them (so a DescribeConfigs
    /// right after reads them back).
    pub async fn admin_alter_broker_configs(
        self: &Arc<Self>,
        resource: &str,
        changes: BTreeMap<String, Option<String>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let invalid = |m: String| AdminError::new(ResponseError::InvalidConfig, m);
        for (k, v) in &changes {
            match v {
                Some(v) => throttle::validate_broker_config(k, v).map_err(invalid)?,
                // Deleting is always allowed for the keys that can be set.
                None if throttle::DYNAMIC_BROKER_KEYS.contains(&k.as_str()) => {}
                None => throttle::validate_broker_config(k, "0").map_err(invalid)?,
            }
        }
        if validate_only || changes.is_empty() {
            return Ok(());
        }
        let q = self.quorum();
        let expected = changes.clone();
        q.propose_idempotent(MetaRequest::AlterBrokerConfigs {
            broker: resource.to_string(),
            configs: changes,
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            let stored = md.broker_configs.get(resource);
            expected
                .iter()
                .all(|(k, v)| stored.and_then(|c| c.get(k)) == v.as_ref())
        })
        .await;
        tracing::info!(broker = resource, "dynamic broker configs changed");
        Ok(())
    }

    /// Removes broker `id` from the cluster for good: its registration (it leaves every ISR
    /// and leadership; its replica assignments stay until reassigned, as in Kafka) and, for a
    /// broker-only node, its learner seat in the quorum so the leader stops replicating to it.
    pub async fn admin_unregister_broker(&self, id: i32) -> Result<(), AdminError> {
        let Ok(node_id) = u64::try_from(id) else {
            return Err(AdminError::new(
                ResponseError::BrokerIdNotRegistered,
                format!("no broker {id}"),
            ));
        };
        let q = self.quorum();
        let was_learner = q.raft_metrics().learners.contains(&node_id);
        if was_learner {
            q.change_membership(MembershipChange::RemoveLearner { node_id })
                .await
                .map_err(|e| AdminError::new(ResponseError::RequestTimedOut, e.to_string()))?;
        }
        match q.propose(MetaRequest::UnregisterBroker { id }).await {
            Ok(_) => Ok(()),
            // A learner that never registered (or was unregistered before): removing it was all.
            Err(e) if was_learner && e.code == ResponseError::BrokerIdNotRegistered => Ok(()),
            Err(e) => Err(e),
        }
    }
}
