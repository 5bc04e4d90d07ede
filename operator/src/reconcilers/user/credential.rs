//! The user's SCRAM credential. A password cannot be read back from the brokers, so every
//! pass writes it again (a fresh salt, 4096 iterations): a credential deleted or changed by
//! hand is restored within one resync. A credential of the other SCRAM mechanism (the spec
//! switched between SHA-256 and SHA-512, or to TLS) is deleted.

use kube::runtime::events::EventType;

use super::secret::Password;
use super::Problem;
use crate::crd::User;
use crate::kafka::{KafkaAdmin, ScramMechanism, ScramUpsert};
use crate::reconcilers::Context;

/// PBKDF2 iterations: Kafka's minimum, as `kafka-configs` uses by default.
pub const ITERATIONS: i32 = 4096;

/// The credentials to delete when `keep` is the user's mechanism (`None`: a TLS user keeps
/// none).
pub fn stale(existing: &[ScramMechanism], keep: Option<ScramMechanism>) -> Vec<ScramMechanism> {
    existing
        .iter()
        .copied()
        .filter(|m| Some(*m) != keep)
        .collect()
}

/// Writes the user's credential for `mechanism` and deletes any other; returns what was
/// done when it was more than rewriting an existing credential.
pub async fn sync(
    user: &User,
    ctx: &Context,
    admin: &dyn KafkaAdmin,
    mechanism: Option<ScramMechanism>,
    password: Option<&Password>,
    changes: &mut Vec<String>,
) -> Result<(), Problem> {
    let name = user.username();
    let refused = |e| Problem::from_kafka("CredentialRefused", &e);
    let existing = admin
        .describe_scram_credentials(&name)
        .await
        .map_err(refused)?;
    for old in stale(&existing, mechanism) {
        admin
            .delete_scram_credential(&name, old)
            .await
            .map_err(refused)?;
        let what = format!("Deleted the {} credential of {name}", old.name());
        ctx.event(user, EventType::Normal, "CredentialDeleted", what.clone())
            .await;
        changes.push(what);
    }
    let (Some(mechanism), Some(password)) = (mechanism, password) else {
        return Ok(());
    };
    let credential = ScramUpsert::new(mechanism, password.expose(), ITERATIONS);
    admin
        .upsert_scram_credential(&name, &credential)
        .await
        .map_err(refused)?;
    if !existing.contains(&mechanism) {
        let (reason, what) = if had_it(user) {
            (
                "CredentialRestored",
                format!(
                    "Restored the missing {} credential of {name}",
                    mechanism.name()
                ),
            )
        } else {
            (
                "CredentialCreated",
                format!("Created the {} credential of {name}", mechanism.name()),
            )
        };
        ctx.event(user, EventType::Normal, reason, what.clone())
            .await;
        changes.push(what);
    }
    Ok(())
}

/// Whether the last pass left this very spec Ready, so its credential existed and someone
/// deleted it on the cluster (rather than the spec asking for a new mechanism).
fn had_it(user: &User) -> bool {
    user.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == user.metadata.generation
            && crate::crd::conditions::is_true(&s.conditions, crate::crd::conditions::READY)
    })
}

/// Deletes both SCRAM credentials of `user` (missing ones are not an error).
pub async fn remove_all(
    admin: &dyn KafkaAdmin,
    user: &str,
) -> Result<(), crate::kafka::KafkaError> {
    for m in ScramMechanism::ALL {
        admin.delete_scram_credential(user, m).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_other_mechanism_is_stale() {
        use ScramMechanism::{Sha256, Sha512};
        assert_eq!(stale(&[Sha256, Sha512], Some(Sha512)), vec![Sha256]);
        assert_eq!(stale(&[Sha512], Some(Sha512)), vec![]);
        assert_eq!(stale(&[Sha256, Sha512], None), vec![Sha256, Sha512]);
    }
}
