//! The brokers' certificate Secret: what each broker's certificate must name, when it is
//! (re)issued, and the Secret itself. Issuing is in `crate::pki`; reading and writing the
//! Secrets in `reconcilers::cluster::certs`.
//!
//! Each broker's issue is recorded in an annotation `spate.dev/broker-<id>` as
//! `v<CA generation>/<not-after>/<names hash>`, so a new CA, an approaching expiry or a new
//! name (an external address becoming known) reissues exactly the brokers concerned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use super::external::ExternalEndpoints;
use super::security::{self, broker_pem_key, CLIENTS_CA_KEY, CLUSTER_CA_KEY};
use super::{
    bootstrap_service_name, broker_host, external_bootstrap_service_name, labels, namespace,
    object_meta, stable_hash,
};
use crate::crd::Cluster;

/// Annotation on the Cluster: a new value reissues every broker certificate now.
pub const ANNOTATION_RENEW: &str = "spate.dev/renew-certificates";
/// Annotation on the Secret: the `ANNOTATION_RENEW` value last acted on.
pub const ANNOTATION_RENEWED_FOR: &str = "spate.dev/renewed-for";

/// The annotation recording broker `id`'s certificate.
pub fn record_annotation(id: i32) -> String {
    format!("spate.dev/broker-{id}")
}

/// The names broker `id`'s certificate carries: its own DNS names, the bootstrap Services',
/// and its external address once known (a NodePort broker's node IP is only known to the
/// broker itself, so it cannot be named: use `tls.certificateSecret` or skip hostname checks).
pub fn broker_names(c: &Cluster, id: i32, external: &ExternalEndpoints) -> Vec<String> {
    let ns = namespace(c);
    let host = broker_host(c, id);
    let mut names = vec![host.clone(), format!("{host}.cluster.local")];
    let bootstrap = bootstrap_service_name(c);
    names.extend([
        bootstrap.clone(),
        format!("{bootstrap}.{ns}"),
        format!("{bootstrap}.{ns}.svc"),
        format!("{bootstrap}.{ns}.svc.cluster.local"),
    ]);
    if c.spec.listeners.external.is_some() {
        let ext = external_bootstrap_service_name(c);
        names.extend([
            format!("{ext}.{ns}.svc"),
            format!("{ext}.{ns}.svc.cluster.local"),
        ]);
        if let Some(e) = external.get(&id).filter(|e| !e.host.contains("${")) {
            names.push(e.host.clone());
        }
    }
    names
}

/// One broker's issue record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Generation of the cluster CA that signed it.
    pub ca_generation: u32,
    /// Expiry (Unix seconds).
    pub not_after: i64,
    /// Hash of the names it carries.
    pub names: String,
}

impl Record {
    /// The annotation value.
    pub fn render(&self) -> String {
        format!("v{}/{}/{}", self.ca_generation, self.not_after, self.names)
    }

    /// Parses an annotation value.
    pub fn parse(s: &str) -> Option<Record> {
        let mut it = s.splitn(3, '/');
        Some(Record {
            ca_generation: it.next()?.strip_prefix('v')?.parse().ok()?,
            not_after: it.next()?.parse().ok()?,
            names: it.next()?.to_string(),
        })
    }
}

/// Hash of a certificate's names, for its record.
pub fn names_hash(names: &[String]) -> String {
    stable_hash(names.join(",").as_bytes())
}

/// Why broker `id`'s certificate must be issued now, or `None` when it is fine.
pub fn reissue_reason(
    record: Option<&Record>,
    has_key: bool,
    ca_generation: u32,
    names: &str,
    now: i64,
    renewal_days: i64,
) -> Option<&'static str> {
    let Some(r) = record.filter(|_| has_key) else {
        return Some("new broker");
    };
    if r.ca_generation != ca_generation {
        Some("new cluster CA")
    } else if r.names != names {
        Some("new names")
    } else if r.not_after - renewal_days * 86_400 <= now {
        Some("expiring")
    } else {
        None
    }
}

/// The brokers' certificate Secret with `data` (PEM text by key) and `annotations`.
pub fn secret(
    c: &Cluster,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Secret {
    let mut meta = object_meta(c, security::certs_secret_name(c), secret_labels(c));
    meta.annotations = Some(annotations);
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A CA's Secret (owned by the Cluster, labelled like its other objects).
pub fn ca_secret(c: &Cluster, name: String, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: object_meta(c, name, secret_labels(c)),
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// What rolls broker `id` when it changes: the CA bundles it trusts, its own certificate's
/// record, and user-provided listener certificates. Other brokers' certificates do not.
pub fn broker_revision(data: &BTreeMap<String, String>, record: &str) -> String {
    let mut input = String::new();
    for (k, v) in data {
        if k == CLUSTER_CA_KEY || k == CLIENTS_CA_KEY || k.starts_with("listener-") {
            input.push_str(k);
            input.push_str(v);
        }
    }
    input.push_str(record);
    stable_hash(input.as_bytes())
}

/// The labels of the Secrets the operator owns for `c`.
pub fn secret_labels(c: &Cluster) -> BTreeMap<String, String> {
    labels(c)
}

/// Whether broker `id` has a key in `data`.
pub fn has_broker_key(data: &BTreeMap<String, String>, id: i32) -> bool {
    data.contains_key(&broker_pem_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::external::ExternalEndpoint;
    use crate::crd::ClusterSpec;

    fn cluster(external: bool) -> Cluster {
        let mut listeners = serde_json::json!({});
        if external {
            listeners = serde_json::json!({"external": {"type": "LoadBalancer"}});
        }
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "storage": {"size": "1Gi"}, "listeners": listeners,
        }))
        .expect("spec");
        let mut c = Cluster::new("spate", spec);
        c.metadata.namespace = Some("kafka".into());
        c
    }

    #[test]
    fn names_cover_the_broker_the_bootstrap_service_and_a_known_external_address() {
        let names = broker_names(&cluster(false), 1, &ExternalEndpoints::new());
        assert!(
            names.contains(&"spate-1.spate-brokers.kafka.svc".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"spate-bootstrap.kafka.svc".to_string()),
            "{names:?}"
        );
        let ext = ExternalEndpoints::from([(
            1,
            ExternalEndpoint {
                host: "203.0.113.9".into(),
                port: 9094,
            },
        )]);
        let with = broker_names(&cluster(true), 1, &ext);
        assert!(with.contains(&"203.0.113.9".to_string()));
        let placeholder = ExternalEndpoints::from([(
            1,
            ExternalEndpoint {
                host: "${env:SPATE_NODE_IP}".into(),
                port: 31001,
            },
        )]);
        assert!(!broker_names(&cluster(true), 1, &placeholder)
            .iter()
            .any(|n| n.contains('$')));
    }

    #[test]
    fn records_round_trip_and_decide_reissue() {
        let r = Record {
            ca_generation: 2,
            not_after: 1_000_000,
            names: "abc".into(),
        };
        assert_eq!(Record::parse(&r.render()), Some(r.clone()));
        assert_eq!(Record::parse("garbage"), None);
        let day = 86_400;
        assert_eq!(reissue_reason(Some(&r), true, 2, "abc", 0, 1), None);
        assert_eq!(
            reissue_reason(None, true, 2, "abc", 0, 1),
            Some("new broker")
        );
        assert_eq!(
            reissue_reason(Some(&r), false, 2, "abc", 0, 1),
            Some("new broker")
        );
        assert_eq!(
            reissue_reason(Some(&r), true, 3, "abc", 0, 1),
            Some("new cluster CA")
        );
        assert_eq!(
            reissue_reason(Some(&r), true, 2, "abd", 0, 1),
            Some("new names")
        );
        assert_eq!(
            reissue_reason(Some(&r), true, 2, "abc", 1_000_000 - day, 1),
            Some("expiring")
        );
    }

    #[test]
    fn a_broker_rolls_for_its_own_certificate_and_the_cas_only() {
        let data = BTreeMap::from([
            (CLUSTER_CA_KEY.to_string(), "ca1".to_string()),
            (CLIENTS_CA_KEY.to_string(), "cl1".to_string()),
            ("broker-0.pem".to_string(), "k0".to_string()),
            ("broker-1.pem".to_string(), "k1".to_string()),
        ]);
        let r0 = broker_revision(&data, "v1/5/a");
        let mut more = data.clone();
        more.insert("broker-2.pem".into(), "k2".into());
        assert_eq!(
            broker_revision(&more, "v1/5/a"),
            r0,
            "scale-up does not roll"
        );
        assert_ne!(broker_revision(&data, "v1/6/a"), r0, "renewal rolls");
        more.insert(CLUSTER_CA_KEY.into(), "ca1ca2".into());
        assert_ne!(
            broker_revision(&more, "v1/5/a"),
            r0,
            "a new CA bundle rolls"
        );
    }
}
