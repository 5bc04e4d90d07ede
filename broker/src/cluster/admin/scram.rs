//! SCRAM credentials: AlterUserScramCredentials' changes proposed to the quorum, and the
//! `--add-scram` bootstrap credentials.
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::{MetaRequest, MetaResponse, RequestError, ScramUserChange};

use super::super::quorum::APPLY_TIMEOUT;
use super::super::{AdminError, Registry};
use crate::security::scram_bootstrap::BootstrapScram;

impl Registry {
    /// Applies each user's change (atomically per user) and waits until this broker sees the
    /// result, so a login here right after uses the new credential. One result per change.
    pub async fn admin_alter_scram(
        self: &Arc<Self>,
        changes: Vec<ScramUserChange>,
    ) -> Result<Vec<Option<RequestError>>, AdminError> {
        if changes.is_empty() {
            return Ok(vec![]);
        }
        let q = self.quorum();
        let results = match q
            .propose(MetaRequest::AlterScramCredentials {
                changes: changes.clone(),
            })
            .await?
        {
            MetaResponse::ScramAltered(r) => r,
            other => {
                return Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    format!("unexpected answer to AlterScramCredentials: {other:?}"),
                ))
            }
        };
        let applied: Vec<&ScramUserChange> = changes
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_none())
            .map(|(c, _)| c)
            .collect();
        q.wait_for(APPLY_TIMEOUT, |md| {
            applied.iter().all(|c| {
                let stored = md.scram.get(&c.user);
                c.deletions
                    .iter()
                    .all(|m| !stored.is_some_and(|s| s.contains_key(m)))
                    && c.upsertions
                        .iter()
                        .all(|(m, cred)| stored.and_then(|s| s.get(m)) == Some(cred))
            })
        })
        .await;
        for c in &applied {
            tracing::info!(user = %c.user, "SCRAM credentials changed");
        }
        Ok(results)
    }

    /// Stores `--add-scram` credentials whose user has none for that mechanism yet.
    pub async fn bootstrap_scram(&self, credentials: &[BootstrapScram]) -> Result<(), AdminError> {
        let q = self.quorum();
        for b in credentials {
            let added = q
                .propose_idempotent(MetaRequest::AddScramCredentialIfAbsent {
                    user: b.user.clone(),
                    mechanism: b.mechanism,
                    credential: b.credential.clone(),
                })
                .await?;
            if added.is_some() {
                tracing::info!(user = %b.user, mechanism = b.mechanism.name(), "stored a SCRAM credential given at start");
            }
            let (user, m) = (b.user.as_str(), b.mechanism);
            q.wait_for(APPLY_TIMEOUT, |md| {
                md.scram.get(user).is_some_and(|s| s.contains_key(&m))
            })
            .await;
        }
        Ok(())
    }
}
