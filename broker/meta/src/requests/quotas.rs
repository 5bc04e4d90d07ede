//! Client quotas (Kafka's `ClientQuotaRecord`): per entity, the values of `producer_byte_rate`,
//! `consumer_byte_rate` and `request_percentage`. Values are validated by the proposing broker.

use spate_auth::quota::QuotaChange;

use super::MetaResponse;
use crate::state_machine::ClusterMetadata;

/// Sets (`Some(f64 bits)`) or removes (`None`) each entity's keys; an entity left without
/// values is forgotten.
pub(super) fn alter(md: &mut ClusterMetadata, entries: &[QuotaChange]) -> MetaResponse {
    for (entity, ops) in entries {
        let at = md.client_quotas.iter().position(|(e, _)| e == entity);
        let mut values = at
            .map(|i| md.client_quotas[i].1.clone())
            .unwrap_or_default();
        for (key, value) in ops {
            match value {
                Some(v) => values.insert(key.clone(), *v),
                None => values.remove(key),
            };
        }
        match (at, values.is_empty()) {
            (Some(i), true) => {
                md.client_quotas.remove(i);
            }
            (Some(i), false) => md.client_quotas[i].1 = values,
            (None, true) => {}
            (None, false) => {
                md.client_quotas.push((entity.clone(), values));
                md.client_quotas.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
    }
    MetaResponse::Ok
}
