//! The brokers' PodDisruptionBudget: node drains take down at most `maxUnavailable` brokers.
//! The operator's own restarts check in-sync replicas instead (see `plan::safety`).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{broker_selector, headless_service_name, labels, object_meta};
use crate::crd::Cluster;

/// The budget's name (that of the headless Service): what is deleted when it is turned off.
pub fn name(c: &Cluster) -> String {
    headless_service_name(c)
}

/// The PodDisruptionBudget, or `None` when `spec.disruptionBudget.enabled` is false.
pub fn build(c: &Cluster) -> Option<PodDisruptionBudget> {
    let budget = &c.spec.disruption_budget;
    budget.enabled.then(|| PodDisruptionBudget {
        metadata: object_meta(c, name(c), labels(c)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(budget.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(broker_selector(c)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;

    #[test]
    fn budget_selects_brokers_with_max_unavailable() {
        let pdb = build(&cluster(3)).expect("enabled by default");
        assert_eq!(
            pdb.metadata.name.as_deref(),
            Some(name(&cluster(3)).as_str())
        );
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        let sel = spec.selector.and_then(|s| s.match_labels).expect("labels");
        assert_eq!(sel["spate.dev/cluster"], "spate");
        assert_eq!(sel["app.kubernetes.io/component"], "broker");
    }

    #[test]
    fn disabled_budget_is_not_built() {
        let mut c = cluster(3);
        c.spec.disruption_budget.enabled = false;
        assert!(build(&c).is_none());
    }
}
