//! The Cluster's status: conditions, per-broker state, data health and bootstrap addresses.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::{pod_ready, tp_list, Brokers, Outcome};
use crate::builders::{self, configmap, external, services};
use crate::crd::cluster::{BrokerStatus, ListenerStatus};
use crate::crd::conditions::{self, DEGRADED, READY, RECONCILING};
use crate::crd::{Cluster, ClusterStatus};
use crate::kafka::{ClusterMetadata, TopicPartition};
use crate::plan;

/// A condition's `(status, reason, message)`.
type Verdict = (bool, &'static str, String);

/// The status to write after a pass that ended with `outcome`.
pub(super) fn build(
    c: &Cluster,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
    outcome: &Outcome,
    external: &external::Observed,
    now: Timestamp,
) -> ClusterStatus {
    let mut status = c.status.clone().unwrap_or_default();
    let generation = c.metadata.generation;
    status.observed_generation = generation;
    status.bootstrap_address = Some(builders::bootstrap_address(c));
    status.listeners = listener_status(c, pods, external);
    if let Some(b) = &outcome.balanced {
        status.balanced_brokers = b.clone();
    }
    status.brokers = broker_statuses(c, pods, membership, brokers.ids, outcome);
    status.replicas = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    status.ready_brokers =
        i32::try_from(pods.values().filter(|p| pod_ready(p)).count()).unwrap_or(i32::MAX);
    let md = outcome.metadata.as_ref();
    let (urp, offline) = match md {
        Some(m) => (m.under_replicated(), m.offline()),
        None => (Vec::new(), Vec::new()),
    };
    if md.is_some() {
        set_data_health(&mut status, &urp, &offline);
    }

    let target = membership.target();
    let target_ready = target.iter().all(|id| pods.get(id).is_some_and(pod_ready));
    let not_ready: Vec<i32> = target
        .iter()
        .copied()
        .filter(|id| pods.get(id).is_some_and(|p| !pod_ready(p)))
        .collect();
    let ready = ready(outcome, target_ready, status.ready_brokers, target.len());
    let reconciling = reconciling(c, outcome, external, membership, target_ready);
    let degraded = degraded(&urp, &offline, &not_ready, &status.balanced_brokers);
    for (type_, (ok, reason, message)) in [
        (READY, ready),
        (RECONCILING, reconciling),
        (DEGRADED, degraded),
    ] {
        conditions::set(
            &mut status.conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now,
        );
    }
    status
}

/// `status.listeners`: the internal bootstrap address, and the external one once known. A
/// node port is open on every node; the brokers' own nodes are the ones their advertised
/// addresses name, so those are listed.
fn listener_status(
    c: &Cluster,
    pods: &BTreeMap<i32, Pod>,
    external: &external::Observed,
) -> Vec<ListenerStatus> {
    let nodes: BTreeSet<String> = pods
        .values()
        .filter_map(|p| p.status.as_ref()?.host_ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    let internal = ListenerStatus {
        name: "internal".into(),
        bootstrap_servers: builders::bootstrap_address(c),
    };
    let external = external
        .bootstrap_servers(&nodes)
        .map(|servers| ListenerStatus {
            name: services::EXTERNAL.into(),
            bootstrap_servers: servers,
        });
    std::iter::once(internal).chain(external).collect()
}

/// `status.brokers`: every broker whose config is rendered, leaving ones included.
fn broker_statuses(
    c: &Cluster,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    all_ids: &[i32],
    outcome: &Outcome,
) -> Vec<BrokerStatus> {
    let voters = configmap::voters(c, all_ids);
    let md = outcome.metadata.as_ref();
    let counts = md.map(|m| plan::reassign::replica_counts(&m.assignment()));
    let leaders = md.map(leader_counts);
    all_ids
        .iter()
        .map(|id| {
            // A refused scale-down keeps its brokers serving: they are not draining.
            let phase = if membership.remove.contains(id) && outcome.refused.is_none() {
                "Draining"
            } else {
                pod_phase(pods.get(id))
            };
            BrokerStatus {
                id: *id,
                pod: builders::pod_name(c, *id),
                phase: phase.into(),
                voter: voters.contains(id),
                replicas: counts
                    .as_ref()
                    .map(|m| i32::try_from(m.get(id).copied().unwrap_or(0)).unwrap_or(i32::MAX)),
                leaders: leaders.as_ref().map(|m| m.get(id).copied().unwrap_or(0)),
            }
        })
        .collect()
}

/// Partitions led per broker.
fn leader_counts(md: &ClusterMetadata) -> BTreeMap<i32, i32> {
    let mut l: BTreeMap<i32, i32> = BTreeMap::new();
    for t in &md.topics {
        for p in &t.partitions {
            *l.entry(p.leader).or_insert(0) += 1;
        }
    }
    l
}

/// A broker's phase as its pod shows it.
fn pod_phase(pod: Option<&Pod>) -> &'static str {
    match pod {
        None => "Missing",
        Some(p) if p.metadata.deletion_timestamp.is_some() => "Restarting",
        Some(p) if pod_ready(p) => "Ready",
        Some(p) if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") => {
            "Running"
        }
        Some(_) => "Pending",
    }
}

/// Partition counts and the first affected partitions, offline ones first.
fn set_data_health(status: &mut ClusterStatus, urp: &[TopicPartition], offline: &[TopicPartition]) {
    status.under_replicated_partitions = Some(i32::try_from(urp.len()).unwrap_or(i32::MAX));
    status.offline_partitions = Some(i32::try_from(offline.len()).unwrap_or(i32::MAX));
    status.affected_partitions = offline
        .iter()
        .chain(urp.iter().filter(|p| !offline.contains(p)))
        .take(20)
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
}

/// `Ready`: every broker ready and the spec achievable.
fn ready(outcome: &Outcome, target_ready: bool, ready_brokers: i32, target: usize) -> Verdict {
    if let Some((reason, msg)) = &outcome.refused {
        (false, *reason, msg.clone())
    } else if let Some((reason, e)) = &outcome.kafka_failed {
        (false, *reason, e.clone())
    } else if !target_ready {
        (
            false,
            "BrokersNotReady",
            format!("{ready_brokers} of {target} brokers ready"),
        )
    } else {
        (true, "Ready", format!("{ready_brokers} brokers ready"))
    }
}

/// `Reconciling`: a change in progress, or brokers still starting.
fn reconciling(
    c: &Cluster,
    outcome: &Outcome,
    external: &external::Observed,
    membership: &plan::Membership,
    target_ready: bool,
) -> Verdict {
    // Brokers whose external address is not known yet run without their external listener.
    let waiting: Vec<i32> = external
        .pending
        .iter()
        .copied()
        .filter(|id| !membership.remove.contains(id))
        .collect();
    match &outcome.progress {
        Some((reason, msg)) => (true, *reason, msg.clone()),
        None if !waiting.is_empty() => (
            true,
            "WaitingForExternalAddress",
            format!(
                "waiting for the external address of brokers {waiting:?} (Services {})",
                waiting
                    .iter()
                    .map(|id| builders::external_service_name(c, *id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None if !target_ready => (true, "BrokersStarting", "waiting for brokers".to_string()),
        None => (false, "Idle", "nothing to do".to_string()),
    }
}

/// `Degraded`: data at risk, or a broker that holds partitions is down.
fn degraded(
    urp: &[TopicPartition],
    offline: &[TopicPartition],
    not_ready: &[i32],
    balanced: &[i32],
) -> Verdict {
    if !offline.is_empty() {
        (
            true,
            "PartitionsOffline",
            format!("offline: {}", tp_list(offline, 20)),
        )
    } else if !urp.is_empty() {
        (
            true,
            "UnderReplicated",
            format!("under-replicated: {}", tp_list(urp, 20)),
        )
    } else if balanced.iter().any(|b| not_ready.contains(b)) {
        (
            true,
            "BrokerDown",
            format!("brokers not ready: {not_ready:?}"),
        )
    } else {
        (
            false,
            "Healthy",
            "all partitions fully replicated".to_string(),
        )
    }
}
