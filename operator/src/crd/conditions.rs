//! `metav1.Condition` bookkeeping shared by both resources.
//!
//! Conditions are what GitOps tools wait on (`kubectl wait --for=condition=Ready`), so a
//! condition's `lastTransitionTime` only moves when its status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The resource is serving: brokers ready (Cluster) or the topic matches its spec (Topic).
pub const READY: &str = "Ready";
/// The operator is changing something (rolling, draining, rebalancing, creating).
pub const RECONCILING: &str = "Reconciling";
/// Data is at risk: partitions under-replicated or offline, or a broker is down.
pub const DEGRADED: &str = "Degraded";

/// Sets (or replaces) the condition of type `type_`, keeping its transition time when the
/// status did not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Whether `conditions` has `type_` with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition of type `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut c = Vec::new();
        set(&mut c, READY, true, "Ok", "fine", Some(1), at(100));
        set(&mut c, READY, true, "Ok", "still fine", Some(2), at(200));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(at(100)));
        assert_eq!(c[0].message, "still fine");
        assert_eq!(c[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let mut c = Vec::new();
        set(&mut c, READY, true, "Ok", "", None, at(100));
        set(&mut c, READY, false, "Broken", "", None, at(300));
        assert_eq!(c[0].last_transition_time, Time(at(300)));
        assert!(!is_true(&c, READY));
    }

    #[test]
    fn conditions_are_sorted_by_type() {
        let mut c = Vec::new();
        set(&mut c, READY, true, "Ok", "", None, at(1));
        set(&mut c, DEGRADED, false, "Healthy", "", None, at(1));
        set(&mut c, RECONCILING, false, "Idle", "", None, at(1));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [DEGRADED, READY, RECONCILING]);
        assert_eq!(
            get(&c, DEGRADED).map(|c| c.reason.as_str()),
            Some("Healthy")
        );
    }
}
