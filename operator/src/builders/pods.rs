//! Broker pods, owned directly by the Cluster (no StatefulSet) so any chosen broker can be
//! drained and removed, not only the highest ordinal. See docs/operator.md.
//!
//! A pod spec is immutable, so the operator never patches a running broker: the pod carries
//! a `spate.dev/revision` hash of its spec and `server.properties`, and a broker whose hash is
//! stale is deleted (when safe) and recreated.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext,
    PodSpec, Probe, SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::{broker_settings, properties_key, render_properties};
use super::external::{ExternalEndpoints, EXTERNAL_PORT, NODE_IP_ENV};
use super::security::{self, REPLICATION_PORT, TLS_MOUNT};
use super::services::EXTERNAL;
use super::{
    broker_labels, broker_selector, configmap_name, headless_service_name, object_meta, pod_name,
    pvc_name, service_account_name, stable_hash, ANNOTATION_REVISION, CONFIG_MOUNT, DATA_MOUNT,
    HTTP_PORT, RAFT_PORT,
};
use crate::crd::cluster::ExternalType;
use crate::crd::Cluster;

/// The broker runs as this uid/gid (matches the Dockerfile's `spate` user).
pub const BROKER_UID: i64 = 10001;

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Probe::default()
    }
}

/// An environment variable read through the downward API.
fn field_env(name: &str, field_path: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path,
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// The pod spec of broker `id` (without the revision annotation).
pub fn pod_spec(c: &Cluster, id: i32) -> PodSpec {
    let kafka = c.spec.listeners.internal.port;
    let secured = security::secured(c);
    let mut env = Vec::new();
    let mut spread = vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(broker_selector(c)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }];
    if let Some(rack) = &c.spec.rack {
        // The node's topology label, copied onto the pod at binding time
        // (PodTopologyLabelsAdmission), read through the downward API as `broker.rack`.
        env.push(field_env(
            "SPATE_BROKER_RACK",
            format!("metadata.labels['{}']", rack.topology_key),
        ));
        spread.push(TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(broker_selector(c)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        });
    }
    let mut ports = vec![
        container_port("kafka", kafka),
        container_port("raft", RAFT_PORT),
        container_port("http", HTTP_PORT),
    ];
    if secured {
        ports.push(container_port("replication", REPLICATION_PORT));
    }
    if let Some(ext) = &c.spec.listeners.external {
        ports.push(container_port(EXTERNAL, EXTERNAL_PORT));
        if ext.type_ == ExternalType::NodePort {
            // Only the pod knows its node; `server.properties` names it as ${env:SPATE_NODE_IP}.
            env.push(field_env(NODE_IP_ENV, "status.hostIP".into()));
        }
    }
    PodSpec {
        hostname: Some(pod_name(c, id)),
        subdomain: Some(headless_service_name(c)),
        service_account_name: Some(service_account_name(c)),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(120),
        restart_policy: Some("Always".into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            ..PodSecurityContext::default()
        }),
        topology_spread_constraints: Some(spread),
        containers: vec![Container {
            name: "broker".into(),
            image: Some(c.spec.image.clone()),
            image_pull_policy: c.spec.image_pull_policy.clone(),
            command: Some(vec![
                "spate-broker".into(),
                "--config".into(),
                format!("{CONFIG_MOUNT}/{}", properties_key(id)),
            ]),
            env: (!env.is_empty()).then_some(env),
            ports: Some(ports),
            readiness_probe: Some(http_probe("/readyz", 5, 3)),
            liveness_probe: Some(Probe {
                initial_delay_seconds: Some(30),
                ..http_probe("/healthz", 10, 6)
            }),
            resources: c.spec.resources.clone(),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(
                vec![
                    VolumeMount {
                        name: "data".into(),
                        mount_path: DATA_MOUNT.into(),
                        ..VolumeMount::default()
                    },
                    VolumeMount {
                        name: "config".into(),
                        mount_path: CONFIG_MOUNT.into(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    },
                ]
                .into_iter()
                .chain(secured.then(|| VolumeMount {
                    name: "tls".into(),
                    mount_path: TLS_MOUNT.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }))
                .collect(),
            ),
            ..Container::default()
        }],
        volumes: Some(
            vec![
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: pvc_name(c, id),
                        ..PersistentVolumeClaimVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: configmap_name(c),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]
            .into_iter()
            // The whole Secret: the broker re-reads its files when Kubernetes updates them.
            .chain(secured.then(|| Volume {
                name: "tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(security::certs_secret_name(c)),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }))
            .collect(),
        ),
        ..PodSpec::default()
    }
}

/// The revision of broker `id`: a hash of its pod spec, its `server.properties` and its
/// certificates' revision (`certs.rs`) on a secured cluster. A pod whose annotation differs
/// must be restarted to pick up the change (such as an external address that became known,
/// or a renewed certificate).
pub fn revision(
    c: &Cluster,
    id: i32,
    broker_ids: &[i32],
    external: &ExternalEndpoints,
    certs: Option<&str>,
) -> String {
    let spec = serde_json::to_vec(&pod_spec(c, id)).unwrap_or_default();
    let props = render_properties(&broker_settings(c, id, broker_ids, external));
    let mut data = spec;
    data.extend_from_slice(props.as_bytes());
    if let Some(certs) = certs {
        data.extend_from_slice(certs.as_bytes());
    }
    stable_hash(&data)
}

/// The pod of broker `id`, annotated with its revision.
pub fn build(
    c: &Cluster,
    id: i32,
    broker_ids: &[i32],
    external: &ExternalEndpoints,
    certs: Option<&str>,
) -> Pod {
    let mut meta = object_meta(c, pod_name(c, id), broker_labels(c, id));
    meta.annotations = Some(BTreeMap::from([(
        ANNOTATION_REVISION.to_string(),
        revision(c, id, broker_ids, external, certs),
    )]));
    Pod {
        metadata: meta,
        spec: Some(pod_spec(c, id)),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::external::ExternalEndpoint;
    use crate::builders::test_support::{cluster, with_external};
    use crate::crd::cluster::RackSpec;

    fn container(p: &Pod) -> Container {
        p.spec.as_ref().expect("spec").containers[0].clone()
    }

    fn none() -> ExternalEndpoints {
        ExternalEndpoints::new()
    }

    fn port_names(c: &Container) -> Vec<(String, i32)> {
        c.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
            .collect()
    }

    #[test]
    fn broker_pod_runs_its_own_config_with_probes() {
        let pod = build(&cluster(3), 2, &[0, 1, 2], &none(), None);
        assert_eq!(pod.metadata.name.as_deref(), Some("spate-2"));
        let c = container(&pod);
        assert_eq!(
            c.command.expect("command"),
            ["spate-broker", "--config", "/etc/spate/broker-2.properties"]
        );
        let ready = c
            .readiness_probe
            .and_then(|p| p.http_get)
            .expect("readiness");
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(ready.port, IntOrString::Int(9644));
        let live = c.liveness_probe.and_then(|p| p.http_get).expect("liveness");
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(c.image.as_deref(), Some("spate:test"));
    }

    #[test]
    fn broker_pod_is_reachable_by_stable_dns_and_mounts_its_claim() {
        let pod = build(&cluster(3), 1, &[0, 1, 2], &none(), None);
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("spate-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("spate-brokers"));
        let claim = spec.volumes.expect("volumes")[0]
            .persistent_volume_claim
            .clone()
            .expect("claim");
        assert_eq!(claim.claim_name, "data-spate-1");
        assert_eq!(
            spec.security_context.and_then(|s| s.run_as_non_root),
            Some(true)
        );
        assert_eq!(
            pod.metadata.labels.expect("labels")["spate.dev/broker-id"],
            "1"
        );
    }

    #[test]
    fn revision_changes_with_config_but_not_with_scale_up() {
        let c = cluster(3);
        let r = revision(&c, 0, &[0, 1, 2], &none(), None);
        assert_eq!(
            r,
            revision(&c, 0, &[0, 1, 2, 3], &none(), None),
            "voters unchanged on scale-up"
        );
        let mut changed = c.clone();
        changed
            .spec
            .config
            .insert("log.retention.ms".into(), "1000".into());
        assert_ne!(r, revision(&changed, 0, &[0, 1, 2], &none(), None));
        let mut image = c.clone();
        image.spec.image = "spate:next".into();
        assert_ne!(r, revision(&image, 0, &[0, 1, 2], &none(), None));
    }

    #[test]
    fn rack_key_spreads_pods_and_sets_broker_rack() {
        let mut c = cluster(3);
        c.spec.rack = Some(RackSpec {
            topology_key: "topology.kubernetes.io/zone".into(),
        });
        let pod = build(&c, 0, &[0, 1, 2], &none(), None);
        let env = container(&pod).env.expect("env");
        assert_eq!(env[0].name, "SPATE_BROKER_RACK");
        let field = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .expect("field ref");
        assert_eq!(
            field.field_path,
            "metadata.labels['topology.kubernetes.io/zone']"
        );
        let spread = pod
            .spec
            .and_then(|s| s.topology_spread_constraints)
            .expect("spread");
        assert!(spread
            .iter()
            .any(|t| t.topology_key == "topology.kubernetes.io/zone"
                && t.when_unsatisfiable == "DoNotSchedule"));
    }

    #[test]
    fn without_external_listener_the_pod_has_no_external_port_or_node_ip() {
        let c = container(&build(&cluster(1), 0, &[0], &none(), None));
        assert_eq!(
            port_names(&c),
            [
                ("kafka".to_string(), 9092),
                ("raft".to_string(), 9093),
                ("http".to_string(), 9644)
            ]
        );
        assert!(c.env.is_none());
    }

    #[test]
    fn node_port_broker_exposes_external_port_and_reads_its_node_ip() {
        let c = with_external(cluster(1), ExternalType::NodePort);
        let ctr = container(&build(&c, 0, &[0], &none(), None));
        assert!(port_names(&ctr).contains(&("external".to_string(), 9094)));
        let env = ctr.env.expect("env");
        let node_ip = env
            .iter()
            .find(|e| e.name == "SPATE_NODE_IP")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .expect("SPATE_NODE_IP from the downward API");
        assert_eq!(node_ip.field_path, "status.hostIP");
    }

    #[test]
    fn load_balancer_broker_exposes_external_port_without_node_ip() {
        let c = with_external(cluster(1), ExternalType::LoadBalancer);
        let ctr = container(&build(&c, 0, &[0], &none(), None));
        assert!(port_names(&ctr).contains(&("external".to_string(), 9094)));
        assert!(ctr.env.is_none());
    }

    #[test]
    fn revision_changes_when_the_external_address_becomes_known() {
        let c = with_external(cluster(2), ExternalType::LoadBalancer);
        let waiting = revision(&c, 0, &[0, 1], &none(), None);
        let known = ExternalEndpoints::from([(
            0,
            ExternalEndpoint {
                host: "203.0.113.7".into(),
                port: 19092,
            },
        )]);
        assert_ne!(waiting, revision(&c, 0, &[0, 1], &known, None));
        assert_eq!(
            revision(&c, 1, &[0, 1], &none(), None),
            revision(&c, 1, &[0, 1], &known, None),
            "another broker's address does not restart this one"
        );
    }
}
