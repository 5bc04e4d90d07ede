//! Services: a headless Service for stable broker DNS names, a bootstrap Service for
//! clients, and optionally one external Service per broker plus an external bootstrap.
//! The external Services target the brokers' `external` container port, whose listener
//! advertises the addresses these Services get (see `external.rs`).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::security::{self, REPLICATION_PORT};
use super::{
    bootstrap_service_name, broker_selector, external_bootstrap_service_name,
    external_service_name, headless_service_name, labels, object_meta, HTTP_PORT, LABEL_BROKER_ID,
    LABEL_LISTENER, RAFT_PORT,
};
use crate::crd::cluster::ExternalType;
use crate::crd::Cluster;

/// Name of the brokers' external container port, and the value of `spate.dev/listener` on the
/// external Services.
pub const EXTERNAL: &str = "external";

fn port(name: &str, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// `ports` and, on a secured cluster, the replication listener (the operator's way in).
fn with_replication(c: &Cluster, mut ports: Vec<ServicePort>) -> Vec<ServicePort> {
    if security::secured(c) {
        ports.push(port("replication", REPLICATION_PORT, REPLICATION_PORT));
    }
    ports
}

/// Headless Service: `<pod>.<cluster>-brokers.<ns>.svc` for every broker. Publishes
/// not-ready addresses, since brokers must reach each other (raft) before they are ready.
pub fn headless(c: &Cluster) -> Service {
    let kafka = c.spec.listeners.internal.port;
    Service {
        metadata: object_meta(c, headless_service_name(c), labels(c)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(broker_selector(c)),
            ports: Some(with_replication(
                c,
                vec![
                    port("kafka", kafka, kafka),
                    port("raft", RAFT_PORT, RAFT_PORT),
                    port("http", HTTP_PORT, HTTP_PORT),
                ],
            )),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Service: a ClusterIP over the ready brokers.
pub fn bootstrap(c: &Cluster) -> Service {
    let kafka = c.spec.listeners.internal.port;
    Service {
        metadata: object_meta(c, bootstrap_service_name(c), labels(c)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(broker_selector(c)),
            ports: Some(with_replication(
                c,
                vec![
                    port("kafka", kafka, kafka),
                    port("http", HTTP_PORT, HTTP_PORT),
                ],
            )),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// External Services: an external bootstrap, then one per broker (selecting that broker's
/// pod). Empty when no external listener is configured. With `nodePortBase`, the bootstrap
/// gets that node port and broker `id` gets `nodePortBase + 1 + id`; otherwise Kubernetes
/// picks them, and server-side apply keeps what it picked.
pub fn external(c: &Cluster, broker_ids: &[i32]) -> Vec<Service> {
    let Some(ext) = &c.spec.listeners.external else {
        return Vec::new();
    };
    let pinned = |offset: i32| match ext.type_ {
        ExternalType::NodePort => ext.node_port_base.map(|base| base.saturating_add(offset)),
        ExternalType::LoadBalancer => None,
    };
    let make = |name: String, selector, node_port| {
        let mut l = labels(c);
        l.insert(LABEL_LISTENER.into(), EXTERNAL.into());
        let mut meta = object_meta(c, name, l);
        if !ext.annotations.is_empty() {
            meta.annotations = Some(ext.annotations.clone());
        }
        Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: Some(ext.type_.service_type().into()),
                selector: Some(selector),
                ports: Some(vec![ServicePort {
                    name: Some(EXTERNAL.into()),
                    port: ext.port,
                    target_port: Some(IntOrString::String(EXTERNAL.into())),
                    node_port,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    };
    let mut out = vec![make(
        external_bootstrap_service_name(c),
        broker_selector(c),
        pinned(0),
    )];
    for id in broker_ids {
        let mut selector = broker_selector(c);
        selector.insert(LABEL_BROKER_ID.into(), id.to_string());
        out.push(make(
            external_service_name(c, *id),
            selector,
            pinned(id.saturating_add(1)),
        ));
    }
    out
}

/// Label selector for list calls that find the cluster's external Services.
pub fn external_list_selector(c: &Cluster) -> String {
    format!("{},{LABEL_LISTENER}={EXTERNAL}", super::list_selector(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::{cluster, with_external};
    use crate::crd::cluster::ExternalListener;

    #[test]
    fn headless_service_publishes_not_ready_brokers() {
        let svc = headless(&cluster(3));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = spec.ports.expect("ports").iter().map(|p| p.port).collect();
        assert_eq!(ports, [9092, 9093, 9644]);
        assert_eq!(svc.metadata.name.as_deref(), Some("spate-brokers"));
    }

    #[test]
    fn bootstrap_service_exposes_kafka_port() {
        let svc = bootstrap(&cluster(3));
        assert_eq!(svc.metadata.name.as_deref(), Some("spate-bootstrap"));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.ports.expect("ports")[0].port, 9092);
        assert!(spec.publish_not_ready_addresses.is_none());
    }

    #[test]
    fn external_listener_gets_one_service_per_broker() {
        let mut c = cluster(2);
        assert!(external(&c, &[0, 1]).is_empty());
        c.spec.listeners.external = Some(ExternalListener {
            type_: ExternalType::LoadBalancer,
            port: 19092,
            node_port_base: Some(31000),
            annotations: [("lb".to_string(), "internal".to_string())].into(),
            tls: None,
            authentication: Default::default(),
        });
        let svcs = external(&c, &[0, 1]);
        let names: Vec<_> = svcs
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "spate-external-bootstrap",
                "spate-0-external",
                "spate-1-external"
            ]
        );
        let spec = svcs[2].spec.clone().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.selector.expect("selector")["spate.dev/broker-id"], "1");
        let port = &spec.ports.expect("ports")[0];
        assert_eq!(port.port, 19092);
        assert_eq!(port.node_port, None, "nodePortBase is for NodePort only");
        assert_eq!(
            svcs[1]
                .metadata
                .annotations
                .as_ref()
                .map(|a| a["lb"].as_str()),
            Some("internal")
        );
        assert_eq!(
            svcs[1]
                .metadata
                .labels
                .as_ref()
                .map(|l| l["spate.dev/listener"].as_str()),
            Some("external")
        );
    }

    #[test]
    fn external_services_target_the_external_container_port() {
        for type_ in [ExternalType::NodePort, ExternalType::LoadBalancer] {
            let c = with_external(cluster(2), type_);
            for svc in external(&c, &[0, 1]) {
                let p = &svc.spec.expect("spec").ports.expect("ports")[0];
                assert_eq!(p.name.as_deref(), Some("external"));
                assert_eq!(p.target_port, Some(IntOrString::String("external".into())));
            }
        }
        let bootstrap = external(&with_external(cluster(2), ExternalType::NodePort), &[0, 1])
            .remove(0)
            .spec
            .expect("spec");
        assert_eq!(bootstrap.type_.as_deref(), Some("NodePort"));
        let selector = bootstrap.selector.expect("selector");
        assert!(
            !selector.contains_key("spate.dev/broker-id"),
            "bootstrap selects every broker"
        );
    }

    #[test]
    fn node_port_base_pins_bootstrap_and_broker_node_ports() {
        let mut c = with_external(cluster(3), ExternalType::NodePort);
        let unpinned: Vec<Option<i32>> = external(&c, &[0, 2])
            .into_iter()
            .map(|s| s.spec.expect("spec").ports.expect("ports")[0].node_port)
            .collect();
        assert_eq!(unpinned, [None, None, None], "Kubernetes picks by default");
        if let Some(ext) = c.spec.listeners.external.as_mut() {
            ext.node_port_base = Some(31000);
        }
        let pinned: Vec<Option<i32>> = external(&c, &[0, 2])
            .into_iter()
            .map(|s| s.spec.expect("spec").ports.expect("ports")[0].node_port)
            .collect();
        assert_eq!(pinned, [Some(31000), Some(31001), Some(31003)]);
    }

    #[test]
    fn external_selector_finds_only_external_services() {
        assert_eq!(
            external_list_selector(&cluster(1)),
            "spate.dev/cluster=spate,spate.dev/listener=external"
        );
    }
}
