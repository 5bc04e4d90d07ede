//! The Node object: registration, then a Lease renewal and a status heartbeat every few
//! seconds so the node lifecycle controller keeps it Ready and untainted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

use crate::context::Ctx;
use crate::Result;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_SECONDS: i32 = 40;

/// What the node advertises.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: String,
    pub pod_cidr: String,
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub kernel: String,
}

fn conditions(now: Timestamp, since: Timestamp) -> Vec<NodeCondition> {
    let c = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    vec![
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "spate-node-agent does not track memory",
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "spate-node-agent does not track disk",
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "spate-node-agent does not track PIDs",
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "spate-node-agent is posting ready status",
        ),
    ]
}

/// The node's status at `now`; `since` is when it became Ready.
pub fn status(f: &NodeFacts, now: Timestamp, since: Timestamp) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(f.cpu.clone())),
        ("memory".to_string(), Quantity(f.memory.clone())),
        ("pods".to_string(), Quantity(f.pods.clone())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(conditions(now, since)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: f.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: f.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            operating_system: "linux".into(),
            kernel_version: f.kernel.clone(),
            os_image: "spate-node-agent".into(),
            container_runtime_version: "spate-node-agent://0.1.0".into(),
            kubelet_version: "v1.33.0-spate".into(),
            kube_proxy_version: String::new(),
            machine_id: f.name.clone(),
            system_uuid: f.name.clone(),
            boot_id: f.name.clone(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The Node object to create.
pub fn build(f: &NodeFacts, now: Timestamp) -> Node {
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    Node {
        metadata: ObjectMeta {
            name: Some(f.name.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), f.name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), arch.clone()),
                ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
                ("beta.kubernetes.io/arch".to_string(), arch),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(f.pod_cidr.clone()),
            pod_cidrs: Some(vec![f.pod_cidr.clone()]),
            ..NodeSpec::default()
        }),
        status: Some(status(f, now, now)),
    }
}

/// This node's Lease, renewed at `now`.
pub fn lease(name: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Creates the Node, or refreshes labels and status of an existing one.
pub async fn register(ctx: &Ctx, facts: &NodeFacts) -> Result<()> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let now = Timestamp::now();
    let node = build(facts, now);
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %facts.name, "registered node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({ "metadata": { "labels": node.metadata.labels } });
            api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %facts.name, "node exists; taking it over");
        }
        Err(e) => return Err(e.into()),
    }
    let st = serde_json::json!({ "status": status(facts, now, now) });
    api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&st))
        .await?;
    Ok(())
}

/// Deletes the Node and its Lease (404s are fine).
pub async fn deregister(ctx: &Ctx, name: &str) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    if let Err(e) = nodes.delete(name, &Default::default()).await {
        tracing::warn!(node = %name, error = %e, "deleting node");
    }
    let _ = leases.delete(name, &Default::default()).await;
}

async fn renew_lease(ctx: &Ctx, name: &str) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    let lease = lease(name, Timestamp::now());
    let pp = PatchParams::apply("spate-node-agent").force();
    api.patch(name, &pp, &Patch::Apply(&lease)).await?;
    Ok(())
}

/// Renews the Lease and posts status until the process ends.
pub async fn heartbeat(ctx: Arc<Ctx>, facts: NodeFacts) {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let since = Timestamp::now();
    let mut tick = tokio::time::interval(Duration::from_secs(ctx.args.heartbeat_seconds.max(1)));
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&ctx, &facts.name).await {
            tracing::warn!(error = %e, "renewing node lease");
        }
        let st = serde_json::json!({ "status": status(&facts, Timestamp::now(), since) });
        if let Err(e) = api
            .patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&st))
            .await
        {
            tracing::warn!(error = %e, "posting node status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            internal_ip: "10.244.0.1".into(),
            pod_cidr: "10.244.0.0/24".into(),
            cpu: "16".into(),
            memory: "32Gi".into(),
            pods: "110".into(),
            kernel: "6.0".into(),
        }
    }

    #[test]
    fn node_is_ready_with_capacity_addresses_and_hostname_label() {
        let now = Timestamp::from_second(1000).expect("ts");
        let node = build(&facts(), now);
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("n1")
        );
        let st = node.status.unwrap_or_default();
        let ready = st
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status), Some("True".into()));
        let cap = st.capacity.unwrap_or_default();
        assert_eq!(cap.get("cpu"), Some(&Quantity("16".into())));
        assert_eq!(cap.get("pods"), Some(&Quantity("110".into())));
        assert_eq!(
            st.allocatable.unwrap_or_default().get("memory"),
            Some(&Quantity("32Gi".into()))
        );
        let ip = st
            .addresses
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.type_ == "InternalIP");
        assert_eq!(ip.map(|a| a.address), Some("10.244.0.1".into()));
        assert_eq!(
            node.spec.and_then(|s| s.pod_cidr),
            Some("10.244.0.0/24".into())
        );
    }

    #[test]
    fn heartbeat_moves_while_transition_time_stays() {
        let since = Timestamp::from_second(1000).expect("ts");
        let now = Timestamp::from_second(2000).expect("ts");
        let st = status(&facts(), now, since);
        let ready = st
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        let ready = ready.expect("ready");
        assert_eq!(ready.last_heartbeat_time, Some(Time(now)));
        assert_eq!(ready.last_transition_time, Some(Time(since)));
    }

    #[test]
    fn lease_is_held_by_the_node() {
        let l = lease("n1", Timestamp::from_second(5).expect("ts"));
        assert_eq!(l.metadata.namespace.as_deref(), Some(LEASE_NAMESPACE));
        let spec = l.spec.unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS));
    }
}
