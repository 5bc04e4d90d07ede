//! AlterUserScramCredentials (key 51): upsert (from a salted password) or delete each user's
//! SCRAM credentials. One result per user; a user with any invalid alteration changes nothing.
//! The broker derives StoredKey and ServerKey here: the salted password goes no further.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use spate_meta::ScramUserChange;

use crate::context::Context;

type Refusal = (ResponseError, String);

pub async fn handle(
    ctx: &Context,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Users in request order, each with its change or why it is refused.
    let mut users: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, Result<ScramUserChange, Refusal>> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    let alterations = r
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(r.upsertions.iter().map(|u| {
            (
                u.name.to_string(),
                u.mechanism,
                Some((u.iterations, u.salt.to_vec(), u.salted_password.to_vec())),
            )
        }));
    for (user, code, upsert) in alterations {
        if !users.contains(&user) {
            users.push(user.clone());
        }
        let entry = changes.entry(user.clone()).or_insert_with(|| {
            Ok(ScramUserChange {
                user: user.clone(),
                deletions: vec![],
                upsertions: vec![],
            })
        });
        // Kafka refuses a user named twice in one request, whatever the mechanisms (so
        // kafka-configs changes one user's mechanisms in separate requests).
        let duplicate = seen.contains(&user);
        seen.push(user.clone());
        let checked = check(&user, code, duplicate, upsert.as_ref().map(|u| u.0));
        match checked {
            Err(refusal) => *entry = Err(refusal),
            Ok(mechanism) => match (upsert, entry) {
                (_, Err(_)) => {}
                (None, Ok(change)) => change.deletions.push(mechanism),
                (Some((iterations, salt, salted)), Ok(change)) => change.upsertions.push((
                    mechanism,
                    ScramCredential::from_salted_password(mechanism, &salted, salt, iterations),
                )),
            },
        }
    }
    let valid: Vec<ScramUserChange> = users
        .iter()
        .filter_map(|u| changes.get(u).and_then(|c| c.as_ref().ok()).cloned())
        .collect();
    let outcome = ctx.registry.admin_alter_scram(valid.clone()).await;
    let mut applied: BTreeMap<String, Option<Refusal>> = BTreeMap::new();
    match outcome {
        Ok(results) => {
            for (c, r) in valid.iter().zip(results) {
                applied.insert(
                    c.user.clone(),
                    r.map(|e| {
                        (
                            ResponseError::try_from_code(e.kafka_error_code())
                                .unwrap_or(ResponseError::UnknownServerError),
                            e.to_string(),
                        )
                    }),
                );
            }
        }
        Err(e) => {
            for c in &valid {
                applied.insert(c.user.clone(), Some((e.code, e.message.clone())));
            }
        }
    }
    let results = users
        .iter()
        .map(|u| {
            let refusal = match changes.get(u) {
                Some(Err(r)) => Some(r.clone()),
                _ => applied.get(u).cloned().flatten(),
            };
            let result = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(u.clone()));
            match refusal {
                None => result,
                Some((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Kafka's checks of one alteration (ControllerApis / ScramControlManager), with its messages.
fn check(
    user: &str,
    code: i8,
    duplicate: bool,
    iterations: Option<i32>,
) -> Result<ScramMechanism, Refusal> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    if duplicate {
        return Err((
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    let mechanism = ScramMechanism::from_code(code).ok_or((
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".to_string(),
    ))?;
    match iterations {
        Some(i) if i < MIN_ITERATIONS => Err((
            ResponseError::UnacceptableCredential,
            "Too few iterations".into(),
        )),
        Some(i) if i > MAX_ITERATIONS => Err((
            ResponseError::UnacceptableCredential,
            "Too many iterations".into(),
        )),
        _ => Ok(mechanism),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alterations_are_checked_as_kafka_checks_them() {
        assert_eq!(check("a", 2, false, Some(4096)), Ok(ScramMechanism::Sha512));
        assert_eq!(check("a", 1, false, None), Ok(ScramMechanism::Sha256));
        let code = |r: Result<ScramMechanism, Refusal>| r.unwrap_err().0;
        assert_eq!(
            code(check("", 2, false, None)),
            ResponseError::UnacceptableCredential
        );
        assert_eq!(
            code(check("a", 2, true, None)),
            ResponseError::DuplicateResource
        );
        assert_eq!(
            code(check("a", 0, false, None)),
            ResponseError::UnsupportedSaslMechanism
        );
        assert_eq!(
            code(check("a", 3, false, None)),
            ResponseError::UnsupportedSaslMechanism
        );
        assert_eq!(
            check("a", 2, false, Some(4095)).unwrap_err().1,
            "Too few iterations"
        );
        assert_eq!(
            check("a", 2, false, Some(16385)).unwrap_err().1,
            "Too many iterations"
        );
    }
}
