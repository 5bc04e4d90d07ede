//! Client quotas: AlterClientQuotas' changes proposed to the quorum.
use std::sync::Arc;

use spate_auth::quota::QuotaChange;
use spate_meta::MetaRequest;

use super::super::quorum::APPLY_TIMEOUT;
use super::super::{AdminError, Registry};

impl Registry {
    /// Sets (`Some(f64 bits)`) or removes each entity's keys, then waits until this broker
    /// applies them (a DescribeClientQuotas right after reads them back).
    pub async fn admin_alter_quotas(
        self: &Arc<Self>,
        entries: Vec<QuotaChange>,
    ) -> Result<(), AdminError> {
        if entries.is_empty() {
            return Ok(());
        }
        let q = self.quorum();
        q.propose(MetaRequest::AlterClientQuotas {
            entries: entries.clone(),
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            entries.iter().all(|(e, ops)| {
                let values = md
                    .client_quotas
                    .iter()
                    .find(|(q, _)| q == e)
                    .map(|(_, v)| v);
                ops.iter()
                    .all(|(k, v)| values.and_then(|vals| vals.get(k)).copied() == *v)
            })
        })
        .await;
        tracing::info!(entities = entries.len(), "client quotas changed");
        Ok(())
    }
}
