//! SCRAM credentials (Kafka's `UserScramCredentialRecord`): per user and mechanism, the salt,
//! iteration count, StoredKey and ServerKey. Proposers derive the keys; the log never carries a
//! password or a salted password.
//!
//! Checks that need no state (names, mechanisms, iteration bounds, duplicates) are the
//! proposing broker's, with Kafka's messages; here only what needs the committed credentials.

use serde::{Deserialize, Serialize};
use spate_auth::{ScramCredential, ScramMechanism};

use super::{MetaResponse, RequestError};
use crate::state_machine::ClusterMetadata;

/// One user's part of an AlterUserScramCredentials request: applied whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUserChange {
    pub user: String,
    pub deletions: Vec<ScramMechanism>,
    pub upsertions: Vec<(ScramMechanism, ScramCredential)>,
}

/// Applies each user's change; one result per user, in order.
pub(super) fn alter(md: &mut ClusterMetadata, changes: &[ScramUserChange]) -> MetaResponse {
    let results = changes
        .iter()
        .map(|c| {
            let missing = c.deletions.iter().find(|m| {
                !md.scram
                    .get(&c.user)
                    .is_some_and(|creds| creds.contains_key(m))
            });
            if let Some(m) = missing {
                return Some(RequestError::ScramCredentialNotFound {
                    user: c.user.clone(),
                    mechanism: m.name().to_string(),
                });
            }
            let creds = md.scram.entry(c.user.clone()).or_default();
            for m in &c.deletions {
                creds.remove(m);
            }
            for (m, cred) in &c.upsertions {
                creds.insert(*m, cred.clone());
            }
            if creds.is_empty() {
                md.scram.remove(&c.user);
            }
            None
        })
        .collect();
    MetaResponse::ScramAltered(results)
}

/// The first admin (`--add-scram`): set unless the user already has this mechanism's
/// credential, so a restart with the same flag never overwrites a changed password.
pub(super) fn add_if_absent(
    md: &mut ClusterMetadata,
    user: &str,
    mechanism: ScramMechanism,
    credential: &ScramCredential,
) -> Result<MetaResponse, RequestError> {
    let creds = md.scram.entry(user.to_string()).or_default();
    if creds.contains_key(&mechanism) {
        return Err(RequestError::ScramCredentialExists {
            user: user.to_string(),
            mechanism: mechanism.name().to_string(),
        });
    }
    creds.insert(mechanism, credential.clone());
    Ok(MetaResponse::Ok)
}
