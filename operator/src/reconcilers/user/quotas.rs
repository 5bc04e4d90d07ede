//! The user's client quotas (entity `user=<name>`): the three keys the spec has are set to
//! its values and removed when the spec drops them. Other quota keys of the entity are left
//! alone.

use kube::runtime::events::EventType;
use spate_auth::quota::{CONSUMER_BYTE_RATE, KEYS, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

use super::Problem;
use crate::crd::user::UserQuotas;
use crate::crd::User;
use crate::kafka::{KafkaAdmin, KafkaError, QuotaValues};
use crate::reconcilers::Context;

/// The quota values the spec asks for.
pub fn desired(quotas: Option<&UserQuotas>) -> QuotaValues {
    let Some(q) = quotas else {
        return QuotaValues::new();
    };
    // Byte rates are integers; f64 holds them exactly up to 2^53 bytes per second.
    #[allow(clippy::cast_precision_loss)]
    let rate = |v: Option<i64>| v.map(|v| v as f64);
    [
        (PRODUCER_BYTE_RATE, rate(q.producer_byte_rate)),
        (CONSUMER_BYTE_RATE, rate(q.consumer_byte_rate)),
        (REQUEST_PERCENTAGE, q.request_percentage),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v?)))
    .collect()
}

/// What makes `current` agree with `desired`: values to set, and managed keys to remove.
pub fn diff(desired: &QuotaValues, current: &QuotaValues) -> (QuotaValues, Vec<String>) {
    let set = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let remove = current
        .keys()
        .filter(|k| KEYS.contains(&k.as_str()) && !desired.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}

/// `producer_byte_rate=1048576, request_percentage=12.5`.
pub fn describe(values: &QuotaValues) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes the user's quotas agree with the spec; returns them.
pub async fn sync(
    user: &User,
    ctx: &Context,
    admin: &dyn KafkaAdmin,
    changes: &mut Vec<String>,
) -> Result<QuotaValues, Problem> {
    let name = user.username();
    let want = desired(user.spec.quotas.as_ref());
    let current = admin
        .describe_user_quotas(&name)
        .await
        .map_err(|e| Problem::from_kafka("QuotasRefused", &e))?;
    let (set, remove) = diff(&want, &current);
    if set.is_empty() && remove.is_empty() {
        return Ok(want);
    }
    admin
        .alter_user_quotas(&name, &set, &remove)
        .await
        .map_err(|e| Problem::from_kafka("QuotasRefused", &e))?;
    let what = match (set.is_empty(), remove.is_empty()) {
        (false, true) => format!("Set quotas {} of user {name}", describe(&set)),
        (true, false) => format!("Removed quotas {} of user {name}", remove.join(", ")),
        _ => format!(
            "Set quotas {} and removed {} of user {name}",
            describe(&set),
            remove.join(", ")
        ),
    };
    ctx.event(user, EventType::Normal, "QuotasChanged", what.clone())
        .await;
    changes.push(what);
    Ok(want)
}

/// Removes every quota of entity `user=<user>`; returns the keys removed.
pub async fn remove_all(admin: &dyn KafkaAdmin, user: &str) -> Result<Vec<String>, KafkaError> {
    let current = admin.describe_user_quotas(user).await?;
    let keys: Vec<String> = current.into_keys().collect();
    if !keys.is_empty() {
        admin
            .alter_user_quotas(user, &QuotaValues::new(), &keys)
            .await?;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, f64)]) -> QuotaValues {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn desired_has_only_the_keys_the_spec_sets() {
        let q = UserQuotas {
            producer_byte_rate: Some(1_048_576),
            consumer_byte_rate: None,
            request_percentage: Some(12.5),
        };
        assert_eq!(
            desired(Some(&q)),
            values(&[
                ("producer_byte_rate", 1_048_576.0),
                ("request_percentage", 12.5)
            ])
        );
        assert!(desired(None).is_empty());
    }

    #[test]
    fn diff_sets_changed_values_and_removes_dropped_keys() {
        let want = values(&[("producer_byte_rate", 2048.0), ("consumer_byte_rate", 10.0)]);
        let current = values(&[
            ("producer_byte_rate", 1024.0),
            ("consumer_byte_rate", 10.0),
            ("request_percentage", 50.0),
            ("controller_mutation_rate", 5.0),
        ]);
        let (set, remove) = diff(&want, &current);
        assert_eq!(set, values(&[("producer_byte_rate", 2048.0)]));
        assert_eq!(
            remove,
            vec!["request_percentage".to_string()],
            "keys the spec does not manage stay"
        );
        let (set, remove) = diff(&want, &want);
        assert!(set.is_empty() && remove.is_empty());
    }

    #[test]
    fn describe_lists_key_value_pairs() {
        assert_eq!(
            describe(&values(&[("a", 1048576.0), ("b", 12.5)])),
            "a=1048576, b=12.5"
        );
    }
}
