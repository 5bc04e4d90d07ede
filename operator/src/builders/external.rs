//! The external listener's addresses, read back from the Services the API server filled in.
//!
//! A NodePort is allocated by the API server and a load balancer's address by the cloud, so
//! neither is known before the external Services exist. The reconciler applies them first and
//! hands what they say ([`Observed`]) to the ConfigMap and pod builders. A broker whose
//! address is not known yet runs without its external listener; when the address appears its
//! `server.properties` changes, and the rolling restart picks it up.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::{external_bootstrap_service_name, external_service_name};
use crate::crd::cluster::ExternalType;
use crate::crd::Cluster;

/// Container port of the broker's external listener (the external Services target it).
pub const EXTERNAL_PORT: i32 = 9094;
/// Environment variable holding the pod's node IP (downward API `status.hostIP`); a NodePort
/// broker advertises `${env:SPATE_NODE_IP}`, which the broker expands at start.
pub const NODE_IP_ENV: &str = "SPATE_NODE_IP";
/// Listener name of the in-cluster listener. Kafka's default name, which is what a broker
/// with a single unnamed listener registers: enabling or removing the external listener then
/// rolls brokers without splitting in-cluster clients' view (brokers are only listed to
/// clients of a listener they registered).
pub const INTERNAL_NAME: &str = "PLAINTEXT";
/// Listener name of the external listener.
pub const EXTERNAL_NAME: &str = "EXTERNAL";

/// What one broker advertises on its external listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalEndpoint {
    /// Host, or a `${env:...}` reference the broker expands.
    pub host: String,
    pub port: i32,
}

/// External endpoints by broker id; a broker missing here has no external listener yet.
pub type ExternalEndpoints = BTreeMap<i32, ExternalEndpoint>;

/// Where the external bootstrap Service can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapAddress {
    /// This node port on any node.
    NodePort(i32),
    /// The load balancer's host and port.
    LoadBalancer(String, i32),
}

/// What the applied external Services say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub endpoints: ExternalEndpoints,
    /// Brokers whose external address is not known yet.
    pub pending: Vec<i32>,
    /// The external bootstrap Service's address, once known.
    pub bootstrap: Option<BootstrapAddress>,
}

impl Observed {
    /// `bootstrap.servers` for outside clients. A node port is open on every node, so it is
    /// paired with `node_addresses` (the broker pods' node IPs, the same IPs the brokers
    /// advertise); `None` until an address is known.
    pub fn bootstrap_servers(&self, node_addresses: &BTreeSet<String>) -> Option<String> {
        match self.bootstrap.as_ref()? {
            BootstrapAddress::NodePort(port) => (!node_addresses.is_empty()).then(|| {
                node_addresses
                    .iter()
                    .map(|host| host_port(host, *port))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            BootstrapAddress::LoadBalancer(host, port) => Some(host_port(host, *port)),
        }
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The node port the API server allocated (or kept) for the Service's only port.
fn node_port(svc: &Service) -> Option<i32> {
    svc.spec
        .as_ref()?
        .ports
        .as_ref()?
        .first()?
        .node_port
        .filter(|p| *p > 0)
}

/// The load balancer's address; a hostname first (AWS gives only that, and it outlives IP
/// changes), else an IP.
fn load_balancer_host(svc: &Service) -> Option<String> {
    let ingress = svc
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    ingress
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| ingress.ip.clone().filter(|ip| !ip.is_empty()))
}

/// Reads the external addresses of `broker_ids` from `services`, the external Services as the
/// API server returned them. Empty when the Cluster has no external listener.
pub fn observe(c: &Cluster, broker_ids: &[i32], services: &[Service]) -> Observed {
    let Some(ext) = &c.spec.listeners.external else {
        return Observed::default();
    };
    let find = |name: String| services.iter().find(|s| s.name_any() == name);
    let endpoint = |svc: &Service| match ext.type_ {
        ExternalType::NodePort => node_port(svc).map(|port| ExternalEndpoint {
            host: format!("${{env:{NODE_IP_ENV}}}"),
            port,
        }),
        ExternalType::LoadBalancer => load_balancer_host(svc).map(|host| ExternalEndpoint {
            host,
            port: ext.port,
        }),
    };
    let mut out = Observed::default();
    for id in broker_ids {
        match find(external_service_name(c, *id)).and_then(endpoint) {
            Some(e) => {
                out.endpoints.insert(*id, e);
            }
            None => out.pending.push(*id),
        }
    }
    out.bootstrap = find(external_bootstrap_service_name(c)).and_then(|svc| match ext.type_ {
        ExternalType::NodePort => node_port(svc).map(BootstrapAddress::NodePort),
        ExternalType::LoadBalancer => {
            load_balancer_host(svc).map(|h| BootstrapAddress::LoadBalancer(h, ext.port))
        }
    });
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    /// `svc` as the API server returns it once it allocated `node_port`.
    pub fn with_node_port(svc: &Service, node_port: i32) -> Service {
        let mut v = serde_json::to_value(svc).expect("service json");
        v["spec"]["ports"][0]["nodePort"] = json!(node_port);
        serde_json::from_value(v).expect("service")
    }

    /// `svc` once its load balancer got `ingress` (e.g. `{"ip": "203.0.113.7"}`).
    pub fn with_ingress(svc: &Service, ingress: serde_json::Value) -> Service {
        let mut v = serde_json::to_value(svc).expect("service json");
        v["status"] = json!({"loadBalancer": {"ingress": [ingress]}});
        serde_json::from_value(v).expect("service")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{with_ingress, with_node_port};
    use super::*;
    use crate::builders::services;
    use crate::builders::test_support::{cluster, with_external};
    use serde_json::json;

    #[test]
    fn no_external_listener_observes_nothing() {
        let c = cluster(2);
        assert_eq!(observe(&c, &[0, 1], &[]), Observed::default());
    }

    #[test]
    fn node_ports_are_advertised_with_the_node_ip_reference() {
        let c = with_external(cluster(2), ExternalType::NodePort);
        let svcs: Vec<Service> = services::external(&c, &[0, 1])
            .iter()
            .enumerate()
            .map(|(i, s)| with_node_port(s, 31000 + i32::try_from(i).expect("small")))
            .collect();
        let seen = observe(&c, &[0, 1], &svcs);
        assert!(seen.pending.is_empty());
        assert_eq!(
            seen.endpoints[&1],
            ExternalEndpoint {
                host: "${env:SPATE_NODE_IP}".into(),
                port: 31002
            }
        );
        assert_eq!(seen.bootstrap, Some(BootstrapAddress::NodePort(31000)));
        let nodes = BTreeSet::from(["10.0.0.1".to_string(), "fd00::2".to_string()]);
        assert_eq!(
            seen.bootstrap_servers(&nodes).as_deref(),
            Some("10.0.0.1:31000,[fd00::2]:31000")
        );
        assert_eq!(seen.bootstrap_servers(&BTreeSet::new()), None);
    }

    #[test]
    fn load_balancers_without_an_address_are_pending() {
        let c = with_external(cluster(2), ExternalType::LoadBalancer);
        let built = services::external(&c, &[0, 1]);
        let svcs = vec![
            built[0].clone(),
            with_ingress(&built[1], json!({"ip": "203.0.113.7"})),
            built[2].clone(),
        ];
        let seen = observe(&c, &[0, 1], &svcs);
        assert_eq!(seen.pending, vec![1]);
        assert_eq!(
            seen.endpoints[&0],
            ExternalEndpoint {
                host: "203.0.113.7".into(),
                port: 19092
            }
        );
        assert_eq!(seen.bootstrap, None);
        assert_eq!(seen.bootstrap_servers(&BTreeSet::new()), None);
    }

    #[test]
    fn load_balancer_hostname_is_preferred_to_its_ip() {
        let c = with_external(cluster(1), ExternalType::LoadBalancer);
        let built = services::external(&c, &[0]);
        let both = json!({"ip": "203.0.113.9", "hostname": "lb.example.com"});
        let svcs = vec![
            with_ingress(&built[0], both.clone()),
            with_ingress(&built[1], both),
        ];
        let seen = observe(&c, &[0], &svcs);
        assert_eq!(seen.endpoints[&0].host, "lb.example.com");
        assert_eq!(
            seen.bootstrap_servers(&BTreeSet::new()).as_deref(),
            Some("lb.example.com:19092")
        );
    }

    #[test]
    fn a_missing_service_leaves_its_broker_pending() {
        let c = with_external(cluster(2), ExternalType::NodePort);
        let seen = observe(&c, &[0, 1], &[]);
        assert_eq!(seen.pending, vec![0, 1]);
        assert!(seen.endpoints.is_empty());
    }
}
