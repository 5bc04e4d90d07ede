//! Pure builders: a `Cluster` in, the Kubernetes objects it needs out.
//!
//! Nothing here talks to the API server; the cluster reconciler server-side-applies what these
//! functions return. Names and labels live here so every object agrees on them.

pub mod certs;
pub mod configmap;
pub mod external;
pub mod pdb;
pub mod pods;
pub mod pvc;
pub mod security;
pub mod service_account;
pub mod services;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::Cluster;

/// Port of the broker's metadata-quorum (raft, gRPC) listener.
pub const RAFT_PORT: i32 = 9093;
/// Port of the broker's HTTP endpoint (/healthz, /readyz, /metrics).
pub const HTTP_PORT: i32 = 9644;
/// Where the data volume is mounted in a broker pod.
pub const DATA_MOUNT: &str = "/var/lib/spate";
/// Where the ConfigMap is mounted in a broker pod.
pub const CONFIG_MOUNT: &str = "/etc/spate";

/// Label: the owning Cluster's name.
pub const LABEL_CLUSTER: &str = "spate.dev/cluster";
/// Label: a broker pod's or volume's `node.id`.
pub const LABEL_BROKER_ID: &str = "spate.dev/broker-id";
/// Label on the external listener's Services (`external`), so stale ones can be found.
pub const LABEL_LISTENER: &str = "spate.dev/listener";
/// Label on claims kept after their broker was removed (reclaimPolicy Retain).
pub const LABEL_RETAINED: &str = "spate.dev/retained";
/// Annotation: hash of everything that needs a restart to take effect.
pub const ANNOTATION_REVISION: &str = "spate.dev/revision";

/// The cluster's name.
pub fn cluster_name(c: &Cluster) -> String {
    c.name_any()
}

/// The cluster's namespace ("default" when unset, as in tests).
pub fn namespace(c: &Cluster) -> String {
    c.namespace().unwrap_or_else(|| "default".into())
}

/// Headless Service giving each broker a stable DNS name.
pub fn headless_service_name(c: &Cluster) -> String {
    format!("{}-brokers", c.name_any())
}

/// ClusterIP Service clients bootstrap from.
pub fn bootstrap_service_name(c: &Cluster) -> String {
    format!("{}-bootstrap", c.name_any())
}

/// NodePort/LoadBalancer Service outside clients bootstrap from.
pub fn external_bootstrap_service_name(c: &Cluster) -> String {
    format!("{}-external-bootstrap", c.name_any())
}

/// NodePort/LoadBalancer Service reaching one broker from outside.
pub fn external_service_name(c: &Cluster, id: i32) -> String {
    format!("{}-external", pod_name(c, id))
}

/// Broker pod name.
pub fn pod_name(c: &Cluster, id: i32) -> String {
    format!("{}-{id}", c.name_any())
}

/// Broker data claim name.
pub fn pvc_name(c: &Cluster, id: i32) -> String {
    format!("data-{}-{id}", c.name_any())
}

/// ConfigMap holding every broker's `server.properties`.
pub fn configmap_name(c: &Cluster) -> String {
    format!("{}-config", c.name_any())
}

/// ServiceAccount the broker pods run as.
pub fn service_account_name(c: &Cluster) -> String {
    format!("{}-broker", c.name_any())
}

/// DNS name of one broker (through the headless Service).
pub fn broker_host(c: &Cluster, id: i32) -> String {
    format!(
        "{}.{}.{}.svc",
        pod_name(c, id),
        headless_service_name(c),
        namespace(c)
    )
}

/// `host:port` clients inside Kubernetes bootstrap from.
pub fn bootstrap_address(c: &Cluster) -> String {
    format!(
        "{}.{}.svc:{}",
        bootstrap_service_name(c),
        namespace(c),
        c.spec.listeners.internal.port
    )
}

/// Labels on every object of the cluster.
pub fn labels(c: &Cluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "spate".into()),
        ("app.kubernetes.io/instance".into(), c.name_any()),
        (
            "app.kubernetes.io/managed-by".into(),
            "spate-operator".into(),
        ),
        (LABEL_CLUSTER.into(), c.name_any()),
    ])
}

/// Selector matching every broker pod of the cluster.
pub fn broker_selector(c: &Cluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_CLUSTER.into(), c.name_any()),
        ("app.kubernetes.io/component".into(), "broker".into()),
    ])
}

/// Label selector string for list calls (`spate.dev/cluster=<name>`).
pub fn list_selector(c: &Cluster) -> String {
    format!("{LABEL_CLUSTER}={}", c.name_any())
}

/// Labels of one broker's pod.
pub fn broker_labels(c: &Cluster, id: i32) -> BTreeMap<String, String> {
    let mut l = labels(c);
    l.extend(broker_selector(c));
    l.insert(LABEL_BROKER_ID.into(), id.to_string());
    l
}

/// The Cluster as controller owner, so objects are garbage-collected with it.
pub fn owner_reference(c: &Cluster) -> Option<OwnerReference> {
    c.controller_owner_ref(&())
}

/// Metadata shared by the cluster's objects: name, namespace, labels, owner.
pub fn object_meta(c: &Cluster, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace(c)),
        labels: Some(labels),
        owner_references: owner_reference(c).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// FNV-1a, 64 bit: a hash that is stable across Rust releases (unlike `DefaultHasher`), so
/// revision annotations do not change when the operator is rebuilt.
pub fn stable_hash(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::crd::cluster::{ExternalListener, ExternalType};
    use crate::crd::{Cluster, ClusterSpec};

    /// A three-broker cluster `spate` in namespace `kafka`, with a uid so owner references work.
    pub fn cluster(replicas: i32) -> Cluster {
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": replicas,
            "image": "spate:test",
            "storage": {"size": "10Gi", "storageClassName": "fast"},
            "config": {"log.retention.ms": "3600000", "node.id": "99"},
        }))
        .expect("spec parses");
        let mut c = Cluster::new("spate", spec);
        c.metadata.namespace = Some("kafka".into());
        c.metadata.uid = Some("0000-uid".into());
        c.metadata.generation = Some(1);
        c
    }

    /// `c` with an external listener of `type_` on Service port 19092.
    pub fn with_external(mut c: Cluster, type_: ExternalType) -> Cluster {
        c.spec.listeners.external = Some(ExternalListener {
            type_,
            port: 19092,
            node_port_base: None,
            annotations: Default::default(),
            tls: None,
            authentication: Default::default(),
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::cluster;
    use super::*;

    #[test]
    fn names_and_addresses_follow_the_cluster() {
        let c = cluster(3);
        assert_eq!(pod_name(&c, 2), "spate-2");
        assert_eq!(pvc_name(&c, 2), "data-spate-2");
        assert_eq!(broker_host(&c, 1), "spate-1.spate-brokers.kafka.svc");
        assert_eq!(bootstrap_address(&c), "spate-bootstrap.kafka.svc:9092");
        assert_eq!(external_service_name(&c, 2), "spate-2-external");
        assert_eq!(
            external_bootstrap_service_name(&c),
            "spate-external-bootstrap"
        );
    }

    #[test]
    fn objects_are_owned_by_the_cluster() {
        let c = cluster(3);
        let meta = object_meta(&c, "x".into(), labels(&c));
        let owner = &meta.owner_references.expect("owner set")[0];
        assert_eq!(owner.kind, "Cluster");
        assert_eq!(owner.api_version, "spate.dev/v1alpha1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.uid, "0000-uid");
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), "cbf29ce484222325");
        assert_eq!(stable_hash(b"a"), "af63dc4c8601ec8c");
        assert_ne!(stable_hash(b"x=1"), stable_hash(b"x=2"));
    }
}
