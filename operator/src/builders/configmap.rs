//! The ConfigMap with every broker's `server.properties` (key `broker-<id>.properties`).
//!
//! The operator owns the settings that wire a broker into the cluster (`node.id`, listeners,
//! `log.dirs`, the metadata quorum); a user's `spec.config` value for one of those is ignored.
//! `broker.rack` comes from the pod's environment (see `pods.rs`), not from this file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{broker_host, configmap_name, labels, object_meta, DATA_MOUNT, HTTP_PORT, RAFT_PORT};
use crate::crd::Cluster;

/// Keys the operator sets itself; user values for them are ignored.
pub const OPERATOR_KEYS: [&str; 7] = [
    "node.id",
    "listeners",
    "http.listeners",
    "advertised.listeners",
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

/// One broker's settings: the user's `spec.config` overlaid with the operator's keys.
pub fn broker_settings(c: &Cluster, id: i32, broker_ids: &[i32]) -> BTreeMap<String, String> {
    let port = c.spec.listeners.internal.port;
    let mut settings: BTreeMap<String, String> = c
        .spec
        .config
        .iter()
        .filter(|(k, _)| !OPERATOR_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.replace(['\n', '\r'], " ")))
        .collect();
    let operator = [
        ("node.id", id.to_string()),
        ("listeners", format!("0.0.0.0:{port}")),
        ("http.listeners", format!("0.0.0.0:{HTTP_PORT}")),
        (
            "advertised.listeners",
            format!("{}:{port}", broker_host(c, id)),
        ),
        ("log.dirs", format!("{DATA_MOUNT}/data")),
        ("controller.quorum.voters", quorum_voters(c, broker_ids)),
        ("controller.listener", format!("0.0.0.0:{RAFT_PORT}")),
    ];
    for (k, v) in operator {
        settings.insert(k.to_string(), v);
    }
    // Replication is opt-in on the broker while it matures; a Cluster wants it unless the
    // user says otherwise.
    settings
        .entry("replication.enable".to_string())
        .or_insert_with(|| "true".to_string());
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

/// The ConfigMap for all `broker_ids`.
pub fn build(c: &Cluster, broker_ids: &[i32]) -> ConfigMap {
    let data = broker_ids
        .iter()
        .map(|id| {
            (
                properties_key(*id),
                render_properties(&broker_settings(c, *id, broker_ids)),
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
    use crate::builders::test_support::cluster;

    #[test]
    fn each_broker_gets_its_own_file_with_its_node_id() {
        let c = cluster(3);
        let cm = build(&c, &[0, 1, 2]);
        let data = cm.data.expect("data");
        assert_eq!(data.len(), 3);
        let b1 = &data["broker-1.properties"];
        assert!(b1.contains("\nnode.id=1\n"));
        assert!(b1.contains("advertised.listeners=spate-1.spate-brokers.kafka.svc:9092\n"));
        assert!(b1.contains("listeners=0.0.0.0:9092\n"));
        assert!(b1.contains("http.listeners=0.0.0.0:9644\n"));
        assert!(b1.contains("replication.enable=true\n"));
        assert!(b1.contains("log.dirs=/var/lib/spate/data\n"));
        assert_eq!(cm.metadata.name.as_deref(), Some("spate-config"));
    }

    #[test]
    fn user_config_is_kept_but_cannot_override_wiring() {
        let c = cluster(3);
        let s = broker_settings(&c, 2, &[0, 1, 2]);
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
        let text = render_properties(&broker_settings(&c, 0, &[0]));
        assert!(text.contains("node.id=0\n"));
        assert!(!text.contains("\nnode.id=7"));
    }
}
