//! Services: a headless Service for stable broker DNS names, a bootstrap Service for
//! clients, and optionally one external Service per broker plus an external bootstrap.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    bootstrap_service_name, broker_labels, broker_selector, headless_service_name, labels,
    object_meta, pod_name, HTTP_PORT, LABEL_BROKER_ID, RAFT_PORT,
};
use crate::crd::cluster::ExternalType;
use crate::crd::Cluster;

fn port(name: &str, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
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
            ports: Some(vec![
                port("kafka", kafka, kafka),
                port("raft", RAFT_PORT, RAFT_PORT),
                port("http", HTTP_PORT, HTTP_PORT),
            ]),
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
            ports: Some(vec![
                port("kafka", kafka, kafka),
                port("http", HTTP_PORT, HTTP_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// External Services: one per broker (selecting that broker's pod) and an external
/// bootstrap. Empty when no external listener is configured.
pub fn external(c: &Cluster, broker_ids: &[i32]) -> Vec<Service> {
    let Some(ext) = &c.spec.listeners.external else {
        return Vec::new();
    };
    let type_ = match ext.type_ {
        ExternalType::NodePort => "NodePort",
        ExternalType::LoadBalancer => "LoadBalancer",
    };
    let kafka = c.spec.listeners.internal.port;
    let make = |name: String, selector| {
        let mut meta = object_meta(c, name, labels(c));
        if !ext.annotations.is_empty() {
            meta.annotations = Some(ext.annotations.clone());
        }
        Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                selector: Some(selector),
                ports: Some(vec![port("kafka", ext.port, kafka)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    };
    let mut out = vec![make(
        format!(
            "{}-external-bootstrap",
            c.metadata.name.as_deref().unwrap_or("")
        ),
        broker_selector(c),
    )];
    for id in broker_ids {
        let mut selector = broker_selector(c);
        if let Some(v) = broker_labels(c, *id).get(LABEL_BROKER_ID) {
            selector.insert(LABEL_BROKER_ID.into(), v.clone());
        }
        out.push(make(format!("{}-external", pod_name(c, *id)), selector));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;
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
            annotations: [("lb".to_string(), "internal".to_string())].into(),
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
        assert_eq!(spec.ports.expect("ports")[0].port, 19092);
        assert_eq!(
            svcs[1]
                .metadata
                .annotations
                .as_ref()
                .map(|a| a["lb"].as_str()),
            Some("internal")
        );
    }
}
