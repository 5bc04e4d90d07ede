//! Broker security settings: listener protocols, certificates, authorization.
//!
//! A Cluster is *secured* once a listener has TLS or authentication, or authorization is on.
//! Secured brokers get a third listener, `REPLICATION` (port 9091, mutual TLS with the cluster
//! CA), for replication and for the operator, and the metadata quorum runs mutual TLS
//! (`CONTROLLER:SSL`). Brokers present `CN=spate-broker` and the operator `CN=spate-operator`,
//! both issued by the cluster CA and both super users; client listeners trust only the clients
//! CA, so no client certificate can pass for either. Unsecured clusters keep their settings
//! exactly as before (no roll).

use kube::ResourceExt;

use crate::crd::security::{ClientAuth, ListenerAuthentication, ListenerTls};
use crate::crd::Cluster;

/// The replication listener's name.
pub const REPLICATION_NAME: &str = "REPLICATION";
/// The replication listener's port.
pub const REPLICATION_PORT: i32 = 9091;
/// Where the brokers' certificate Secret is mounted.
pub const TLS_MOUNT: &str = "/etc/spate-tls";
/// Common name of every broker certificate.
pub const BROKER_CN: &str = "spate-broker";
/// Common name of the operator's client certificate.
pub const OPERATOR_CN: &str = "spate-operator";
/// Key of the cluster CA bundle in the brokers' certificate Secret.
pub const CLUSTER_CA_KEY: &str = "cluster-ca.crt";
/// Key of the clients CA bundle in the brokers' certificate Secret.
pub const CLIENTS_CA_KEY: &str = "clients-ca.crt";
/// The StandardAuthorizer class name Kafka's configs use.
pub const AUTHORIZER_CLASS: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// Maps a clients-CA certificate subject `CN=<user>` to the principal `User:<user>`.
pub const TLS_USER_MAPPING: &str = "RULE:^CN=([^,]+)$/$1/,DEFAULT";

/// Whether the brokers run with certificates (see the module docs).
pub fn secured(c: &Cluster) -> bool {
    let l = &c.spec.listeners;
    let internal = is_secured(l.internal.tls.as_ref(), l.internal.authentication);
    let external = l
        .external
        .as_ref()
        .is_some_and(|e| is_secured(e.tls.as_ref(), e.authentication));
    internal || external || c.spec.authorization.is_some()
}

fn tls_on(tls: Option<&ListenerTls>) -> bool {
    tls.is_some_and(|t| t.enabled)
}

fn is_secured(tls: Option<&ListenerTls>, auth: ListenerAuthentication) -> bool {
    tls_on(tls) || auth != ListenerAuthentication::None
}

/// The Kafka security protocol of a client listener.
pub fn protocol(tls: Option<&ListenerTls>, auth: ListenerAuthentication) -> &'static str {
    match (tls_on(tls), auth.sasl_mechanism().is_some()) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// The Secret with the brokers' keys, certificates and CA bundles.
pub fn certs_secret_name(c: &Cluster) -> String {
    format!("{}-broker-certs", c.name_any())
}

/// The Secret with the cluster CA (signs brokers and the operator).
pub fn cluster_ca_secret_name(c: &Cluster) -> String {
    format!("{}-cluster-ca", c.name_any())
}

/// The Secret with the cluster CA's certificates only, for clients to trust the brokers.
pub fn cluster_ca_cert_secret_name(c: &Cluster) -> String {
    format!("{}-cluster-ca-cert", c.name_any())
}

/// The Secret with the clients CA (signs `User` certificates).
pub fn clients_ca_secret_name(c: &Cluster) -> String {
    format!("{}-clients-ca", c.name_any())
}

/// Key of broker `id`'s PEM (private key, certificate, CA) in the certificate Secret.
pub fn broker_pem_key(id: i32) -> String {
    format!("broker-{id}.pem")
}

/// Key of a user-provided listener certificate (`tls.certificateSecret`) in the Secret.
pub fn listener_pem_key(listener: &str) -> String {
    format!("listener-{}.pem", listener.to_ascii_lowercase())
}

/// The settings of one secured client listener (`listener.name.<l>.*`).
pub fn client_listener_settings(
    listener: &str,
    id: i32,
    tls: Option<&ListenerTls>,
    auth: ListenerAuthentication,
) -> Vec<(String, String)> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    let mut out = Vec::new();
    if let Some(t) = tls.filter(|t| t.enabled) {
        let keystore = match t.certificate_secret {
            Some(_) => listener_pem_key(listener),
            None => broker_pem_key(id),
        };
        let client_auth = if auth == ListenerAuthentication::Tls {
            ClientAuth::Required
        } else {
            t.client_auth
        };
        out.push(("ssl.keystore.location", format!("{TLS_MOUNT}/{keystore}")));
        out.push(("ssl.client.auth", client_auth.setting().to_string()));
        if client_auth != ClientAuth::None {
            out.push((
                "ssl.truststore.location",
                format!("{TLS_MOUNT}/{CLIENTS_CA_KEY}"),
            ));
            out.push(("ssl.principal.mapping.rules", TLS_USER_MAPPING.to_string()));
        }
    }
    if let Some(mechanism) = auth.sasl_mechanism() {
        out.push(("sasl.enabled.mechanisms", mechanism.to_string()));
    }
    out.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

/// Broker-wide security settings of a secured broker `id`: the replication listener, the
/// quorum's mutual TLS and the authorizer. Listener names and addresses are set by the caller.
pub fn broker_settings(c: &Cluster, id: i32) -> Vec<(String, String)> {
    let keystore = format!("{TLS_MOUNT}/{}", broker_pem_key(id));
    let cluster_ca = format!("{TLS_MOUNT}/{CLUSTER_CA_KEY}");
    let mut out = Vec::new();
    for l in ["replication", "controller"] {
        out.push((
            format!("listener.name.{l}.ssl.keystore.location"),
            keystore.clone(),
        ));
        out.push((
            format!("listener.name.{l}.ssl.truststore.location"),
            cluster_ca.clone(),
        ));
        out.push((
            format!("listener.name.{l}.ssl.client.auth"),
            "required".to_string(),
        ));
        // Brokers and the operator are known by their certificates' exact subjects.
        out.push((
            format!("listener.name.{l}.ssl.principal.mapping.rules"),
            "DEFAULT".to_string(),
        ));
    }
    if let Some(authz) = &c.spec.authorization {
        out.push(("authorizer.class.name".into(), AUTHORIZER_CLASS.into()));
        let mut users = vec![
            format!("User:CN={BROKER_CN}"),
            format!("User:CN={OPERATOR_CN}"),
        ];
        users.extend(authz.super_users.iter().map(|u| {
            if u.contains(':') {
                u.clone()
            } else {
                format!("User:{u}")
            }
        }));
        out.push(("super.users".into(), users.join(";")));
    }
    out
}

/// Settings the operator owns on a secured broker; a user's `spec.config` value for one of
/// these is ignored. Broker-wide key and trust settings are included: listeners fall back to
/// them, so one would reach the replication and quorum listeners.
pub fn owned(key: &str) -> bool {
    const EXACT: [&str; 4] = [
        "authorizer.class.name",
        "super.users",
        "ssl.client.auth",
        "ssl.principal.mapping.rules",
    ];
    const PREFIXES: [&str; 8] = [
        "ssl.keystore.",
        "ssl.truststore.",
        "ssl.key.",
        "listener.name.replication.",
        "listener.name.controller.",
        "listener.name.internal.ssl.",
        "listener.name.external.ssl.",
        "listener.name.internal.sasl.enabled.mechanisms",
    ];
    EXACT.contains(&key)
        || key == "listener.name.external.sasl.enabled.mechanisms"
        || PREFIXES.iter().any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::security::{AuthorizationSpec, AuthorizationType};
    use crate::crd::ClusterSpec;

    fn cluster(listeners: serde_json::Value) -> Cluster {
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "storage": {"size": "1Gi"}, "listeners": listeners,
        }))
        .expect("spec parses");
        Cluster::new("spate", spec)
    }

    #[test]
    fn protocol_follows_tls_and_authentication() {
        let tls = ListenerTls {
            enabled: true,
            ..ListenerTls::default()
        };
        use ListenerAuthentication as A;
        assert_eq!(protocol(None, A::None), "PLAINTEXT");
        assert_eq!(protocol(Some(&tls), A::None), "SSL");
        assert_eq!(protocol(Some(&tls), A::Tls), "SSL");
        assert_eq!(protocol(None, A::ScramSha512), "SASL_PLAINTEXT");
        assert_eq!(protocol(Some(&tls), A::ScramSha512), "SASL_SSL");
        assert_eq!(protocol(Some(&tls), A::OAuth), "SASL_SSL");
    }

    #[test]
    fn unsecured_until_a_listener_or_authorization_asks() {
        let mut c = cluster(serde_json::json!({}));
        assert!(!secured(&c));
        c.spec.authorization = Some(AuthorizationSpec {
            type_: AuthorizationType::Simple,
            super_users: vec![],
        });
        assert!(secured(&c));
        let c = cluster(serde_json::json!({"internal": {"authentication": "scram-sha-512"}}));
        assert!(secured(&c));
        let c = cluster(serde_json::json!({
            "external": {"type": "NodePort", "tls": {"enabled": true}}
        }));
        assert!(secured(&c));
    }

    #[test]
    fn tls_clients_need_a_clients_ca_certificate_mapped_to_their_cn() {
        let c = cluster(serde_json::json!({
            "internal": {"tls": {"enabled": true}, "authentication": "tls"}
        }));
        let l = &c.spec.listeners.internal;
        let s: std::collections::BTreeMap<_, _> =
            client_listener_settings("INTERNAL", 2, l.tls.as_ref(), l.authentication)
                .into_iter()
                .collect();
        assert_eq!(
            s["listener.name.internal.ssl.keystore.location"],
            "/etc/spate-tls/broker-2.pem"
        );
        assert_eq!(s["listener.name.internal.ssl.client.auth"], "required");
        assert_eq!(
            s["listener.name.internal.ssl.truststore.location"],
            "/etc/spate-tls/clients-ca.crt"
        );
        assert!(!s.contains_key("listener.name.internal.sasl.enabled.mechanisms"));
    }

    #[test]
    fn scram_over_tls_names_the_mechanism_and_asks_no_certificate() {
        let tls = ListenerTls {
            enabled: true,
            certificate_secret: Some("my-cert".into()),
            ..ListenerTls::default()
        };
        let s: std::collections::BTreeMap<_, _> = client_listener_settings(
            "EXTERNAL",
            0,
            Some(&tls),
            ListenerAuthentication::ScramSha512,
        )
        .into_iter()
        .collect();
        assert_eq!(
            s["listener.name.external.sasl.enabled.mechanisms"],
            "SCRAM-SHA-512"
        );
        assert_eq!(s["listener.name.external.ssl.client.auth"], "none");
        assert_eq!(
            s["listener.name.external.ssl.keystore.location"],
            "/etc/spate-tls/listener-external.pem",
            "a user-provided certificate replaces the broker's"
        );
        assert!(!s.contains_key("listener.name.external.ssl.truststore.location"));
    }

    #[test]
    fn brokers_and_operator_are_super_users_with_the_users_listed() {
        let mut c = cluster(serde_json::json!({}));
        c.spec.authorization = Some(AuthorizationSpec {
            type_: AuthorizationType::Simple,
            super_users: vec!["admin".into(), "User:CN=ops".into()],
        });
        let s: std::collections::BTreeMap<_, _> = broker_settings(&c, 1).into_iter().collect();
        assert_eq!(s["authorizer.class.name"], AUTHORIZER_CLASS);
        assert_eq!(
            s["super.users"],
            "User:CN=spate-broker;User:CN=spate-operator;User:admin;User:CN=ops"
        );
        assert_eq!(
            s["listener.name.controller.ssl.truststore.location"],
            "/etc/spate-tls/cluster-ca.crt"
        );
        assert_eq!(s["listener.name.replication.ssl.client.auth"], "required");
        assert!(owned("listener.name.replication.ssl.client.auth"));
        assert!(owned("super.users"));
        assert!(
            owned("ssl.truststore.certificates"),
            "would reach the replication listener"
        );
        assert!(owned("ssl.principal.mapping.rules"));
        assert!(!owned("log.retention.ms"));
        assert!(!owned("ssl.enabled.protocols"));
        assert_eq!(
            s["listener.name.replication.ssl.principal.mapping.rules"],
            "DEFAULT"
        );
    }
}
