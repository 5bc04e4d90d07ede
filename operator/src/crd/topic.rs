//! The `Topic` resource: one Kafka topic on one `Cluster`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A topic on a Spate cluster, created, altered and (per `deletionPolicy`) deleted by the
/// operator through the Kafka admin API.
// `printcolumn(type_ = ...)` repeats per column; clippy mistakes that for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "spate.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    shortname = "spt",
    category = "spate",
    doc = "A Kafka topic on a Spate Cluster",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(name = "RF", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)"
).message("topicName is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Name of the `Cluster` (same namespace) that holds the topic.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: String,

    /// Kafka topic name; the resource name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,

    /// Number of partitions; may grow, never shrink.
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions cannot be decreased"))]
    pub partitions: i32,

    /// Replicas per partition.
    #[schemars(range(min = 1))]
    pub replication_factor: i32,

    /// Topic-level settings (`retention.ms`, `cleanup.policy`, ...). Settings not listed here
    /// are reset to the broker default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// What happens to the Kafka topic when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over a topic that already exists on the cluster. Without it, an existing topic
    /// that this resource did not create is left alone and reported in a condition.
    #[serde(default)]
    pub adopt: bool,
}

/// What happens to the Kafka topic when its resource is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the topic and its data.
    #[default]
    Delete,
    /// Keep the topic; only the resource goes.
    Retain,
}

/// Observed state of a Topic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// `Ready`, `metav1.Condition`-style; its reason says what is wrong when it is `False`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kafka topic id (UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor on the cluster (replicas of partition 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Partitions whose ISR is smaller than their replica set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated_partitions: Option<i32>,
}

impl Topic {
    /// The Kafka topic name: `spec.topicName` or the resource name.
    pub fn topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .unwrap_or_else(|| self.name_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn topic(partitions: i32, cluster: &str) -> Topic {
        let mut t = Topic::new(
            "orders",
            serde_json::from_value(serde_json::json!({
                "clusterRef": cluster,
                "partitions": partitions,
                "replicationFactor": 3,
            }))
            .expect("spec parses"),
        );
        t.metadata.namespace = Some("default".into());
        t
    }

    #[test]
    fn topic_name_defaults_to_resource_name() {
        let mut t = topic(3, "spate");
        assert_eq!(t.topic_name(), "orders");
        t.spec.topic_name = Some("orders.v2".into());
        assert_eq!(t.topic_name(), "orders.v2");
        assert_eq!(t.spec.deletion_policy, DeletionPolicy::Delete);
    }

    #[test]
    fn crd_carries_cel_rules() {
        let json = serde_json::to_string(&Topic::crd()).expect("crd serializes");
        for rule in [
            "self >= oldSelf",
            "clusterRef is immutable",
            "topicName is immutable",
        ] {
            assert!(json.contains(rule), "missing {rule}");
        }
    }

    #[test]
    fn cel_refuses_fewer_partitions() {
        let old = topic(6, "spate");
        let new = topic(3, "spate");
        let err =
            kube::core::cel::validate_cel_update(&new, &old).expect_err("decrease must be refused");
        assert!(format!("{err:?}").contains("partitions cannot be decreased"));
        kube::core::cel::validate_cel_update(&topic(12, "spate"), &old)
            .expect("increase is allowed");
    }

    #[test]
    fn cel_refuses_moving_to_another_cluster() {
        let err = kube::core::cel::validate_cel_update(&topic(3, "other"), &topic(3, "spate"))
            .expect_err("cluster change must be refused");
        assert!(format!("{err:?}").contains("clusterRef is immutable"));
    }

    #[test]
    fn cel_refuses_renaming_the_topic() {
        let old = topic(3, "spate");
        let mut new = topic(3, "spate");
        new.spec.topic_name = Some("renamed".into());
        assert!(kube::core::cel::validate_cel_update(&new, &old).is_err());
    }
}
