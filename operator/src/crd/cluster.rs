//! The `Cluster` resource: a set of Spate brokers and everything they need.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::security::{
    AuthorizationSpec, AuthorizationType, CertificatesSpec, ClientAuth, ListenerAuthentication,
    ListenerTls,
};

/// CEL: whether the spec at `$s` is secured (a listener with tls or authentication, or
/// authorization), as `builders::security::secured` decides.
macro_rules! secured_cel {
    ($s:literal) => {
        concat!(
            "(has(",
            $s,
            ".authorization) || (has(",
            $s,
            ".listeners) && ((has(",
            $s,
            ".listeners.internal) && ((has(",
            $s,
            ".listeners.internal.tls) && ",
            $s,
            ".listeners.internal.tls.enabled) || (has(",
            $s,
            ".listeners.internal.authentication) && ",
            $s,
            ".listeners.internal.authentication != 'none'))) || (has(",
            $s,
            ".listeners.external) && ((has(",
            $s,
            ".listeners.external.tls) && ",
            $s,
            ".listeners.external.tls.enabled) || (has(",
            $s,
            ".listeners.external.authentication) && ",
            $s,
            ".listeners.external.authentication != 'none'))))))"
        )
    };
}

/// A Spate cluster: `replicas` brokers, each a pod with its own volume, owned by the operator.
// `printcolumn(type_ = ...)` repeats per column; clippy mistakes that for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "spate.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    shortname = "spc",
    category = "spate",
    doc = "A Spate cluster: brokers, their volumes, services and configuration",
    // The scale subresource: `kubectl scale spc/<name> --replicas=N`, and what the disruption
    // controller reads to size the brokers' PodDisruptionBudget (the pods' controller is the
    // Cluster; without it the budget never syncs: "does not implement the scale subresource").
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyBrokers"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "URP",
        type_ = "integer",
        description = "under-replicated partitions",
        json_path = ".status.underReplicatedPartitions"
    ),
    printcolumn(
        name = "Bootstrap",
        type_ = "string",
        priority = 1,
        json_path = ".status.bootstrapAddress"
    ),
    printcolumn(
        name = "External",
        type_ = "string",
        priority = 1,
        json_path = ".status.listeners[?(@.name==\"external\")].bootstrapServers"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.metadataVoters) || self.metadataVoters <= self.replicas"
).message("metadataVoters cannot exceed replicas"))]
// On the spec, not the field: a field's transition rule only runs when the old and new objects
// both have the field, so adding or removing it would slip through.
#[x_kube(validation = Rule::new(
    "has(self.metadataVoters) == has(oldSelf.metadataVoters) && (!has(self.metadataVoters) || self.metadataVoters == oldSelf.metadataVoters)"
).message("metadataVoters is immutable: it fixes the brokers' static metadata quorum (controller.quorum.voters); set it when creating the Cluster"))]
// Whether the brokers run secured (`builders::security::secured`) cannot change: secured
// brokers replicate and run the quorum over mutual TLS, so a rolling change would split them.
#[x_kube(validation = Rule::new(concat!(
    secured_cel!("self"), " == ", secured_cel!("oldSelf")
)).message("security is fixed when the Cluster is created: whether any listener has tls or authentication, or authorization is set, cannot change (the brokers' replication and quorum would split between plaintext and TLS); create a new Cluster instead"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of brokers.
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Broker ids to remove first when `replicas` goes down (instead of the highest ids).
    /// Ids listed here are never given to new brokers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_brokers: Vec<i32>,

    /// Container image holding `spate-broker`.
    #[serde(default = "default_image")]
    pub image: String,

    /// Image pull policy (`Always`, `IfNotPresent`, `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,

    /// CPU and memory for each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Each broker's data volume.
    pub storage: StorageSpec,

    /// Broker settings (`server.properties` names, e.g. `log.retention.ms`). Changing them
    /// rolls the brokers one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// How clients reach the brokers.
    #[serde(default)]
    pub listeners: ListenersSpec,

    /// Spread brokers over this node label and report it as `broker.rack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,

    /// Number of brokers (the lowest ids) that vote in the metadata quorum. Defaults to 3, or
    /// 1 when there are fewer than 3 brokers. Set only when creating the Cluster: changing it
    /// would restart the brokers into a different static quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub metadata_voters: Option<i32>,

    /// The PodDisruptionBudget for the brokers.
    #[serde(default)]
    pub disruption_budget: DisruptionBudgetSpec,

    /// Authorize client requests with ACLs. Brokers and the operator are super users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,

    /// Validity and renewal of the certificates the operator issues (used once a listener
    /// has TLS or authentication, or authorization is on).
    #[serde(default)]
    pub certificates: CertificatesSpec,
}

fn default_image() -> String {
    format!("spate:{}", env!("CARGO_PKG_VERSION"))
}

impl ClusterSpec {
    /// How many brokers vote in the metadata quorum.
    pub fn voter_count(&self) -> i32 {
        self.voter_count_for(self.replicas)
    }

    /// How many brokers vote when `brokers` exist or are wanted. The reconciler passes the
    /// brokers that exist too (those being removed included), so lowering `replicas` never
    /// shrinks the quorum: that would rewrite every broker's voter list.
    pub fn voter_count_for(&self, brokers: i32) -> i32 {
        let n = brokers.max(self.replicas).max(1);
        let default = if n >= 3 { 3 } else { 1 };
        self.metadata_voters.unwrap_or(default).clamp(1, n)
    }
}

/// A broker's data volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size, e.g. `10Gi`. Fixed at creation: resizing claims (volume expansion) is not
    /// done by the operator yet, so a change is refused rather than silently ignored.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "storage.size is immutable: volume expansion is not supported yet"
    ))]
    pub size: String,

    /// StorageClass of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName is immutable"))]
    pub storage_class_name: Option<String>,

    /// What happens to a broker's volume when the broker is removed (scale-down) or the
    /// Cluster is deleted.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// What happens to a removed broker's volume.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReclaimPolicy {
    /// The claim is deleted with the broker (and with the Cluster).
    Delete,
    /// The claim is kept, unowned, labelled `spate.dev/retained=true`.
    #[default]
    Retain,
}

/// Client listeners.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// The in-cluster listener (always on).
    #[serde(default)]
    pub internal: InternalListener,
    /// An optional listener reachable from outside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,
}

/// The in-cluster Kafka listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(TLS_AUTH_NEEDS_TLS).message(TLS_AUTH_NEEDS_TLS_MESSAGE))]
pub struct InternalListener {
    /// Kafka port on every broker and on the bootstrap Service. Not 9091, 9093, 9094 or
    /// 9644: the brokers' replication, raft, external and HTTP listeners use them.
    #[serde(default = "default_kafka_port")]
    #[schemars(range(min = 1, max = 65535))]
    // Keep in step with REPLICATION_PORT, RAFT_PORT, EXTERNAL_PORT and HTTP_PORT in `builders`.
    #[x_kube(validation = Rule::new("self != 9091 && self != 9093 && self != 9094 && self != 9644")
        .message("port 9091, 9093, 9094 and 9644 are taken by the broker's replication, raft, external and HTTP listeners"))]
    pub port: i32,
    /// TLS on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// How its clients authenticate.
    #[serde(default)]
    pub authentication: ListenerAuthentication,
}

/// CEL: `authentication: tls` is only possible on a TLS listener.
const TLS_AUTH_NEEDS_TLS: &str =
    "!has(self.authentication) || self.authentication != 'tls' || (has(self.tls) && self.tls.enabled)";
const TLS_AUTH_NEEDS_TLS_MESSAGE: &str = "authentication: tls needs tls.enabled: true";

impl Default for InternalListener {
    fn default() -> Self {
        Self {
            port: default_kafka_port(),
            tls: None,
            authentication: ListenerAuthentication::None,
        }
    }
}

fn default_kafka_port() -> i32 {
    9092
}

/// A listener exposed outside the cluster: one Service per broker plus a bootstrap Service.
/// Brokers get a second listener (`EXTERNAL`) that advertises each broker's external address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(TLS_AUTH_NEEDS_TLS).message(TLS_AUTH_NEEDS_TLS_MESSAGE))]
pub struct ExternalListener {
    /// Service type for the external Services.
    #[serde(rename = "type")]
    pub type_: ExternalType,
    /// Port of the external Services; with `LoadBalancer`, the port clients connect to.
    #[serde(default = "default_kafka_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// `NodePort` only: pin the node ports instead of letting Kubernetes pick them. The
    /// external bootstrap Service gets this port and broker `id` gets `nodePortBase + 1 + id`;
    /// all must lie in the API server's node-port range (default 30000-32767).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port_base: Option<i32>,
    /// Annotations for the external Services (cloud load-balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// TLS on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// How its clients authenticate.
    #[serde(default)]
    pub authentication: ListenerAuthentication,
}

/// How an external listener is exposed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalType {
    /// A NodePort Service per broker; each broker advertises its node's IP (`status.hostIP`)
    /// and its Service's node port.
    NodePort,
    /// A LoadBalancer Service per broker; each broker advertises its load balancer's address.
    LoadBalancer,
}

impl ExternalType {
    /// The Service `type`.
    pub fn service_type(self) -> &'static str {
        match self {
            ExternalType::NodePort => "NodePort",
            ExternalType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Rack awareness.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is the broker's rack, e.g. `topology.kubernetes.io/zone`.
    pub topology_key: String,
}

/// The brokers' PodDisruptionBudget.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Create the PodDisruptionBudget.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Brokers that voluntary disruptions (node drains) may take down at once.
    #[serde(default = "default_one")]
    #[schemars(range(min = 0))]
    pub max_unavailable: i32,
}

impl Default for DisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: 1,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_one() -> i32 {
    1
}

/// Observed state of a Cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `Ready`, `Reconciling` and `Degraded`, `metav1.Condition`-style.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Brokers that exist (pods).
    #[serde(default)]
    pub replicas: i32,
    /// Brokers whose pod passes its readiness probe.
    #[serde(default)]
    pub ready_brokers: i32,
    /// Per-broker state.
    #[serde(default)]
    pub brokers: Vec<BrokerStatus>,
    /// `host:port` for clients inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_address: Option<String>,
    /// Where clients bootstrap, per listener (`internal`, and `external` once its address is
    /// known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// Partitions whose ISR is smaller than their replica set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated_partitions: Option<i32>,
    /// Partitions without a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_partitions: Option<i32>,
    /// The broker set partitions were last balanced over; a different set of brokers
    /// triggers a rebalance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balanced_brokers: Vec<i32>,
    /// Up to 20 affected partitions (`topic-partition`), offline first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected_partitions: Vec<String>,
}

/// How clients of one listener bootstrap.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// `internal` or `external`.
    pub name: String,
    /// Comma-separated `host:port` list for the client's `bootstrap.servers`.
    pub bootstrap_servers: String,
}

/// One broker's state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// `node.id` of the broker.
    pub id: i32,
    /// Pod name.
    pub pod: String,
    /// `Pending`, `Running`, `Ready`, `Restarting`, `Draining`, `Missing`.
    pub phase: String,
    /// Whether it votes in the metadata quorum.
    #[serde(default)]
    pub voter: bool,
    /// Partition replicas hosted, when the cluster answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Partitions led, when the cluster answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaders: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn spec(replicas: i32) -> ClusterSpec {
        serde_json::from_value(serde_json::json!({
            "replicas": replicas,
            "storage": {"size": "1Gi"},
        }))
        .expect("minimal spec parses")
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let s = spec(3);
        assert_eq!(s.listeners.internal.port, 9092);
        assert!(s.disruption_budget.enabled);
        assert_eq!(s.disruption_budget.max_unavailable, 1);
        assert_eq!(s.storage.reclaim_policy, ReclaimPolicy::Retain);
        assert!(s.image.starts_with("spate:"));
    }

    #[test]
    fn voter_count_defaults_to_three_or_one() {
        assert_eq!(spec(1).voter_count(), 1);
        assert_eq!(spec(2).voter_count(), 1);
        assert_eq!(spec(5).voter_count(), 3);
        let mut s = spec(2);
        s.metadata_voters = Some(5);
        assert_eq!(s.voter_count(), 2, "never more voters than brokers");
    }

    #[test]
    fn crd_has_group_version_short_name_and_status() {
        let crd = Cluster::crd();
        assert_eq!(crd.spec.group, "spate.dev");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert_eq!(crd.spec.names.short_names, Some(vec!["spc".to_string()]));
        let yaml = serde_json::to_string(&crd).expect("crd serializes");
        assert!(yaml.contains("\"status\":{}"), "status subresource enabled");
        assert!(yaml.contains("metadataVoters cannot exceed replicas"));
        assert!(yaml.contains("storageClassName is immutable"));
        assert!(yaml.contains("metadataVoters is immutable"));
    }

    fn with_voters(voters: Option<i32>) -> Cluster {
        let mut s = spec(5);
        s.metadata_voters = voters;
        Cluster::new("spate", s)
    }

    #[test]
    fn cel_refuses_changing_adding_or_removing_metadata_voters() {
        use kube::core::cel::validate_cel_update;
        for (old, new) in [(Some(3), Some(5)), (None, Some(3)), (Some(3), None)] {
            let err = validate_cel_update(&with_voters(new), &with_voters(old))
                .expect_err("a different quorum must be refused");
            assert!(
                format!("{err:?}").contains("metadataVoters is immutable"),
                "{old:?} -> {new:?}: {err:?}"
            );
        }
        for same in [Some(3), None] {
            let mut scaled = with_voters(same);
            scaled.spec.replicas = 7;
            validate_cel_update(&scaled, &with_voters(same))
                .expect("other fields still change with metadataVoters kept");
        }
        kube::core::cel::validate_cel(&with_voters(Some(5))).expect("set on creation");
    }

    #[test]
    fn cel_refuses_resizing_storage() {
        use kube::core::cel::validate_cel_update;
        let old = with_voters(None);
        let mut bigger = old.clone();
        bigger.spec.storage.size = "20Gi".into();
        let err = validate_cel_update(&bigger, &old).expect_err("a resize must be refused");
        assert!(
            format!("{err:?}").contains("storage.size is immutable"),
            "{err:?}"
        );
        let mut scaled = old.clone();
        scaled.spec.replicas = 7;
        validate_cel_update(&scaled, &old).expect("other fields still change");
    }

    fn with_internal_port(port: i32) -> Cluster {
        let mut s = spec(3);
        s.listeners.internal.port = port;
        Cluster::new("spate", s)
    }

    #[test]
    fn cel_refuses_an_internal_port_the_broker_already_uses() {
        use crate::builders::{external::EXTERNAL_PORT, HTTP_PORT, RAFT_PORT};
        for taken in [RAFT_PORT, EXTERNAL_PORT, HTTP_PORT] {
            let err = kube::core::cel::validate_cel(&with_internal_port(taken))
                .expect_err("reserved port refused");
            assert!(format!("{err:?}").contains("are taken"), "{taken}: {err:?}");
        }
        kube::core::cel::validate_cel(&with_internal_port(19092)).expect("a free port is fine");
    }

    #[test]
    fn cel_refuses_turning_security_on_or_off_but_not_changing_it() {
        use kube::core::cel::validate_cel_update;
        let plain = with_voters(None);
        let mut scram = plain.clone();
        scram.spec.listeners.internal.authentication = ListenerAuthentication::ScramSha512;
        let mut authz = plain.clone();
        authz.spec.authorization = Some(AuthorizationSpec {
            type_: AuthorizationType::Simple,
            super_users: vec![],
        });
        for (old, new) in [(&plain, &scram), (&scram, &plain), (&plain, &authz)] {
            let err = validate_cel_update(new, old).expect_err("on/off refused");
            assert!(format!("{err:?}").contains("security is fixed"), "{err:?}");
        }
        let mut tls = scram.clone();
        tls.spec.listeners.internal.tls = Some(ListenerTls {
            enabled: true,
            ..ListenerTls::default()
        });
        validate_cel_update(&tls, &scram).expect("secured stays secured: allowed");
        let mut scaled = plain.clone();
        scaled.spec.replicas = 7;
        validate_cel_update(&scaled, &plain).expect("plain stays plain");
    }

    #[test]
    fn external_listener_parses_with_defaults() {
        let s: ClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3,
            "storage": {"size": "1Gi"},
            "listeners": {"external": {"type": "NodePort", "nodePortBase": 31000}},
        }))
        .expect("spec parses");
        let ext = s.listeners.external.expect("external");
        assert_eq!(ext.type_.service_type(), "NodePort");
        assert_eq!(ext.port, 9092);
        assert_eq!(ext.node_port_base, Some(31000));
    }
}
