//! The ConfigMap with every broker's `server.properties` (key `broker-<id>.properties`).
//!
//! The operator owns the settings that wire a broker into the cluster (`node.id`, listeners,
//! `log.dirs`, the metadata quorum); a user's `spec.config` value for one of those is ignored.
//! `broker.rack` comes from the pod's environment (see `pods.rs`), not from this file.
//!
//! A broker has one unnamed listener, or, once its external address is known (see
//! `external.rs`), two: `PLAINTEXT` for in-cluster clients and replication, and `EXTERNAL`.
//! A secured cluster (`security.rs`) names them `INTERNAL`, `EXTERNAL` and `REPLICATION`.

/// The in-cluster client listener's name on a secured cluster.
pub const SECURED_INTERNAL_NAME: &str = "INTERNAL";

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::external::{ExternalEndpoints, EXTERNAL_NAME, EXTERNAL_PORT, INTERNAL_NAME};
use super::security::{self, REPLICATION_NAME, REPLICATION_PORT};
use super::{broker_host, configmap_name, labels, object_meta, DATA_MOUNT, HTTP_PORT, RAFT_PORT};
use crate::crd::Cluster;

/// Keys the operator sets itself; user values for them are ignored.
pub const OPERATOR_KEYS: [&str; 9] = [
    "node.id",
    "listeners",
    "http.listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "log.dirs",
    "controller.quorum.voters",
    "controller.listener",
];

/// The ConfigMap key of one broker's properties file.
pub fn properties_key(id: i32) -> String {
    format!("broker-{id}.properties")
}

/// The metadata-quorum voters: the `voter_count` lowest broker ids. Lowest ids are stable
/// across scale-up, so adding brokers never changes the quorum; `broker_ids` includes brokers
/// being removed, so asking for fewer brokers does not change it either (removing a voter is
/// refused instead).
pub fn voters(c: &Cluster, broker_ids: &[i32]) -> Vec<i32> {
    let mut ids = broker_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let count = c
        .spec
        .voter_count_for(i32::try_from(ids.len()).unwrap_or(i32::MAX));
    ids.truncate(usize::try_from(count).unwrap_or(1));
    ids
}

/// `controller.quorum.voters`: `id@host:port,...`.
pub fn quorum_voters(c: &Cluster, broker_ids: &[i32]) -> String {
    voters(c, broker_ids)
        .iter()
        .map(|id| format!("{id}@{}:{RAFT_PORT}", broker_host(c, *id)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The listener settings of broker `id`: one unnamed listener, or named ones when the broker
/// has an external endpoint or the cluster is secured (`security.rs`).
fn listener_settings(c: &Cluster, id: i32, external: &ExternalEndpoints) -> Vec<(String, String)> {
    let port = c.spec.listeners.internal.port;
    let internal = format!("{}:{port}", broker_host(c, id));
    let ext_spec = c.spec.listeners.external.as_ref();
    let endpoint = external.get(&id).filter(|_| ext_spec.is_some());
    let secured = security::secured(c);
    if !secured && endpoint.is_none() {
        return vec![
            ("listeners".into(), format!("0.0.0.0:{port}")),
            ("advertised.listeners".into(), internal),
        ];
    }
    let internal_name = internal_listener_name(c);
    let int_spec = &c.spec.listeners.internal;
    let mut named: Vec<NamedListener> = vec![(
        internal_name,
        format!("0.0.0.0:{port}"),
        internal,
        security::protocol(int_spec.tls.as_ref(), int_spec.authentication),
    )];
    let mut extra = Vec::new();
    if secured {
        extra.extend(security::client_listener_settings(
            internal_name,
            id,
            int_spec.tls.as_ref(),
            int_spec.authentication,
        ));
    }
    if let (Some(ext), Some(spec)) = (endpoint, ext_spec) {
        named.push((
            EXTERNAL_NAME,
            format!("0.0.0.0:{EXTERNAL_PORT}"),
            format!("{}:{}", ext.host, ext.port),
            security::protocol(spec.tls.as_ref(), spec.authentication),
        ));
        extra.extend(security::client_listener_settings(
            EXTERNAL_NAME,
            id,
            spec.tls.as_ref(),
            spec.authentication,
        ));
    }
    if secured {
        named.push((
            REPLICATION_NAME,
            format!("0.0.0.0:{REPLICATION_PORT}"),
            format!("{}:{REPLICATION_PORT}", broker_host(c, id)),
            "SSL",
        ));
        extra.extend(security::broker_settings(c, id));
    }
    let join =
        |f: &dyn Fn(&NamedListener) -> String| named.iter().map(f).collect::<Vec<_>>().join(",");
    let mut protocols = join(&|(n, _, _, p)| format!("{n}:{p}"));
    if secured {
        protocols.push_str(",CONTROLLER:SSL");
    }
    let inter_broker = if secured {
        REPLICATION_NAME
    } else {
        internal_name
    };
    let mut out = vec![
        (
            "listeners".into(),
            join(&|(n, b, _, _)| format!("{n}://{b}")),
        ),
        (
            "advertised.listeners".into(),
            join(&|(n, _, a, _)| format!("{n}://{a}")),
        ),
        ("listener.security.protocol.map".into(), protocols),
        ("inter.broker.listener.name".into(), inter_broker.into()),
    ];
    out.extend(extra);
    out
}

/// A named listener: (name, bind address, advertised address, security protocol).
type NamedListener = (&'static str, String, String, &'static str);

/// The name of the in-cluster client listener: `PLAINTEXT` as it always was, `INTERNAL` once
/// it may be something else.
pub fn internal_listener_name(c: &Cluster) -> &'static str {
    if security::secured(c) {
        SECURED_INTERNAL_NAME
    } else {
        INTERNAL_NAME
    }
}

/// One broker's settings: the user's `spec.config` overlaid with the operator's keys.
/// `external` holds the brokers' known external endpoints (empty without an external listener).
pub fn broker_settings(
    c: &Cluster,
    id: i32,
    broker_ids: &[i32],
    external: &ExternalEndpoints,
) -> BTreeMap<String, String> {
    let secured = security::secured(c);
    let mut settings: BTreeMap<String, String> = c
        .spec
        .config
        .iter()
        .filter(|(k, _)| !OPERATOR_KEYS.contains(&k.as_str()))
        .filter(|(k, _)| !(secured && security::owned(k)))
        .map(|(k, v)| (k.clone(), v.replace(['\n', '\r'], " ")))
        .collect();
    let operator = [
        ("node.id", id.to_string()),
        ("http.listeners", format!("0.0.0.0:{HTTP_PORT}")),
        ("log.dirs", format!("{DATA_MOUNT}/data")),
        ("controller.quorum.voters", quorum_voters(c, broker_ids)),
        ("controller.listener", format!("0.0.0.0:{RAFT_PORT}")),
    ];
    for (k, v) in operator {
        settings.insert(k.to_string(), v);
    }
    settings.extend(listener_settings(c, id, external));
    settings
}

/// Renders settings as a `server.properties` file, sorted by key.
pub fn render_properties(settings: &BTreeMap<String, String>) -> String {
    let mut out = String::from("# Managed by spate-operator; edit spec.config of the Cluster.\n");
    for (k, v) in settings {
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// The ConfigMap for all `broker_ids`, with their known external endpoints.
pub fn build(c: &Cluster, broker_ids: &[i32], external: &ExternalEndpoints) -> ConfigMap {
    let data = broker_ids
        .iter()
        .map(|id| {
            (
                properties_key(*id),
                render_properties(&broker_settings(c, *id, broker_ids, external)),
            )
        })
        .collect();
    ConfigMap {
        metadata: object_meta(c, configmap_name(c), labels(c)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::external::ExternalEndpoint;
    use crate::builders::test_support::{cluster, with_external};
    use crate::crd::cluster::ExternalType;

    fn none() -> ExternalEndpoints {
        ExternalEndpoints::new()
    }

    fn endpoint(host: &str, port: i32) -> ExternalEndpoint {
        ExternalEndpoint {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn each_broker_gets_its_own_file_with_its_node_id() {
        let c = cluster(3);
        let cm = build(&c, &[0, 1, 2], &none());
        let data = cm.data.expect("data");
        assert_eq!(data.len(), 3);
        let b1 = &data["broker-1.properties"];
        assert!(b1.contains("\nnode.id=1\n"));
        assert!(b1.contains("advertised.listeners=spate-1.spate-brokers.kafka.svc:9092\n"));
        assert!(b1.contains("listeners=0.0.0.0:9092\n"));
        assert!(b1.contains("http.listeners=0.0.0.0:9644\n"));
        assert!(!b1.contains("replication.enable"), "retired setting");
        assert!(b1.contains("log.dirs=/var/lib/spate/data\n"));
        assert!(!b1.contains("listener.security.protocol.map"));
        assert!(!b1.contains("inter.broker.listener.name"));
        assert_eq!(cm.metadata.name.as_deref(), Some("spate-config"));
    }

    #[test]
    fn node_port_broker_advertises_its_node_ip_reference_and_node_port() {
        let c = with_external(cluster(2), ExternalType::NodePort);
        let ext = ExternalEndpoints::from([(1, endpoint("${env:SPATE_NODE_IP}", 31001))]);
        let s = broker_settings(&c, 1, &[0, 1], &ext);
        assert_eq!(
            s["listeners"],
            "PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094"
        );
        assert_eq!(
            s["advertised.listeners"],
            "PLAINTEXT://spate-1.spate-brokers.kafka.svc:9092,EXTERNAL://${env:SPATE_NODE_IP}:31001"
        );
        assert_eq!(
            s["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT"
        );
        assert_eq!(s["inter.broker.listener.name"], "PLAINTEXT");
    }

    #[test]
    fn load_balancer_broker_advertises_its_address_once_known() {
        let c = with_external(cluster(2), ExternalType::LoadBalancer);
        let ext = ExternalEndpoints::from([(0, endpoint("203.0.113.7", 19092))]);
        let cm = build(&c, &[0, 1], &ext);
        let data = cm.data.expect("data");
        assert!(data["broker-0.properties"].contains(
            "advertised.listeners=PLAINTEXT://spate-0.spate-brokers.kafka.svc:9092,EXTERNAL://203.0.113.7:19092\n"
        ));
        // Broker 1's load balancer has no address yet: no EXTERNAL listener at all, exactly
        // the config it would have without an external listener.
        let pending = &data["broker-1.properties"];
        assert!(!pending.contains("EXTERNAL"), "{pending}");
        assert_eq!(
            pending,
            &render_properties(&broker_settings(&cluster(2), 1, &[0, 1], &none()))
        );
    }

    #[test]
    fn user_values_for_listener_wiring_are_ignored() {
        let mut c = with_external(cluster(1), ExternalType::NodePort);
        for k in [
            "listener.security.protocol.map",
            "inter.broker.listener.name",
        ] {
            c.spec.config.insert(k.into(), "X".into());
        }
        let plain = broker_settings(&c, 0, &[0], &none());
        assert!(!plain.contains_key("inter.broker.listener.name"));
        let ext = ExternalEndpoints::from([(0, endpoint("${env:SPATE_NODE_IP}", 31001))]);
        let named = broker_settings(&c, 0, &[0], &ext);
        assert_eq!(named["inter.broker.listener.name"], "PLAINTEXT");
    }

    #[test]
    fn stale_endpoints_are_ignored_once_the_external_listener_is_removed() {
        let c = cluster(1);
        let ext = ExternalEndpoints::from([(0, endpoint("203.0.113.7", 19092))]);
        assert_eq!(
            broker_settings(&c, 0, &[0], &ext),
            broker_settings(&c, 0, &[0], &none())
        );
    }

    #[test]
    fn user_config_is_kept_but_cannot_override_wiring() {
        let c = cluster(3);
        let s = broker_settings(&c, 2, &[0, 1, 2], &none());
        assert_eq!(s["log.retention.ms"], "3600000");
        assert_eq!(s["node.id"], "2", "spec.config node.id=99 is ignored");
    }

    #[test]
    fn voters_are_the_lowest_ids_and_stable_on_scale_up() {
        let c = cluster(3);
        let before = quorum_voters(&c, &[0, 1, 2]);
        let after = quorum_voters(&c, &[4, 3, 2, 1, 0]);
        assert_eq!(before, after);
        assert_eq!(
            before,
            "0@spate-0.spate-brokers.kafka.svc:9093,1@spate-1.spate-brokers.kafka.svc:9093,2@spate-2.spate-brokers.kafka.svc:9093"
        );
        let single = cluster(1);
        assert_eq!(voters(&single, &[0]), vec![0]);
    }

    #[test]
    fn asking_for_fewer_brokers_keeps_the_quorum() {
        // replicas lowered from 3 to 2: broker 2 is still there (being drained or refused),
        // and it still votes, so no broker's voter list changes.
        let c = cluster(2);
        assert_eq!(voters(&c, &[0, 1, 2]), vec![0, 1, 2]);
        assert_eq!(
            quorum_voters(&c, &[0, 1, 2]),
            quorum_voters(&cluster(3), &[0, 1, 2])
        );
    }

    #[test]
    fn values_cannot_inject_extra_lines() {
        let mut c = cluster(1);
        c.spec
            .config
            .insert("log.retention.ms".into(), "1\nnode.id=7".into());
        let text = render_properties(&broker_settings(&c, 0, &[0], &none()));
        assert!(text.contains("node.id=0\n"));
        assert!(!text.contains("\nnode.id=7"));
    }
}
