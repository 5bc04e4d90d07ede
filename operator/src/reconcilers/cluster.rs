//! The Cluster reconciler: brokers as operator-owned pods, one step at a time.
//!
//! Each pass:
//! 1. reads the broker pods and claims, and plans membership (`plan::membership`);
//! 2. server-side-applies the ServiceAccount, Services, ConfigMap and PodDisruptionBudget;
//!    the external Services first, since the ConfigMap advertises the addresses the API server
//!    gives them (node ports, load-balancer addresses), and deletes external Services no
//!    longer wanted;
//! 3. creates the claim and pod of every broker that should exist and has no pod;
//! 4. asks the cluster (Metadata) what it holds and does at most one of, in this order:
//!    - scale-down: refuse (condition + Event) if a topic's replication factor exceeds the
//!      brokers that would remain; otherwise drain the leaving brokers with
//!      AlterPartitionReassignments and, once they hold nothing, delete their pods (and claims
//!      per `reclaimPolicy`);
//!    - rebalance: when the broker set changed since the last balance, move partitions so
//!      replicas and preferred leaders are even (`plan::reassign`);
//!    - rolling restart: delete one broker pod whose revision is stale, only when every broker
//!      is ready, none of its partitions is under-replicated with it in the ISR, and none would
//!      fall below `min.insync.replicas` (`plan::safety`);
//!    - preferred leader election when leaders drifted (e.g. after a broker came back);
//! 5. writes status: conditions, per-broker state, data health, bootstrap addresses. A Kafka
//!    admin request that fails in step 4 ends the step, not the pass: the status says why.
//!
//! Every decision is logged (`info`, fields `kind`, `namespace`, `name`, `reason` and the
//! brokers concerned), through [`Context::event`] or, where no Event is published, `decision!`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{apply_status, Context, FIELD_MANAGER};
use crate::builders::external::{self, ExternalEndpoints};
use crate::builders::{self, configmap, pdb, pods, pvc, service_account, services};
use crate::crd::cluster::{BrokerStatus, ListenerStatus, ReclaimPolicy};
use crate::crd::conditions::{self, DEGRADED, READY, RECONCILING};
use crate::crd::{Cluster, ClusterStatus};
use crate::kafka::{ClusterMetadata, KafkaAdmin, KafkaError, Reassignment};
use crate::plan::{
    self, plan_membership, plan_reassignment, restart_blockers, scale_down_blockers,
};
use crate::{Error, Result};

/// How soon to look again while something is in progress.
const PROGRESS_REQUEUE: Duration = Duration::from_secs(10);

/// What this pass decided, for conditions and the requeue interval.
#[derive(Debug, Default)]
struct Outcome {
    /// `(reason, message)` when the spec cannot be carried out.
    refused: Option<(&'static str, String)>,
    /// `(reason, message)` when a change is in progress.
    progress: Option<(&'static str, String)>,
    /// Updated `balancedBrokers`.
    balanced: Option<Vec<i32>>,
    /// Metadata, when the cluster answered.
    metadata: Option<ClusterMetadata>,
    /// `(reason, error)` when a Kafka admin request failed: the cluster could not be reached
    /// (`ClusterUnreachable`) or refused a request. The pass ended there.
    kafka_failed: Option<(&'static str, String)>,
}

/// `Ready` reason while the brokers cannot be reached.
const UNREACHABLE: &str = "ClusterUnreachable";

/// The Kubernetes APIs for broker pods and claims in the Cluster's namespace.
struct BrokerApis {
    pods: Api<Pod>,
    pvcs: Api<PersistentVolumeClaim>,
}

/// Controller entry point.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile("Cluster");
    let c = cluster.as_ref();
    let ns = c
        .namespace()
        .ok_or_else(|| Error::Invalid("Cluster must be namespaced".into()))?;
    if c.metadata.deletion_timestamp.is_some() {
        // Owned objects go with the Cluster (owner references).
        return Ok(Action::await_change());
    }
    let apis = BrokerApis {
        pods: Api::namespaced(ctx.client.clone(), &ns),
        pvcs: Api::namespaced(ctx.client.clone(), &ns),
    };
    let selector = ListParams::default().labels(&builders::list_selector(c));
    let pods: BTreeMap<i32, Pod> = apis
        .pods
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter_map(|p| broker_id(&p).map(|id| (id, p)))
        .collect();
    let claims: BTreeMap<i32, PersistentVolumeClaim> = apis
        .pvcs
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter(|p| !p.labels().contains_key(builders::LABEL_RETAINED))
        .filter_map(|p| broker_id(&p).map(|id| (id, p)))
        .collect();

    let existing: BTreeSet<i32> = pods.keys().chain(claims.keys()).copied().collect();
    let membership = plan_membership(&existing, c.spec.replicas, &c.spec.remove_brokers);
    // Brokers being removed keep their config until they are gone.
    let mut all_ids: Vec<i32> = membership
        .target()
        .into_iter()
        .chain(membership.remove.iter().copied())
        .collect();
    all_ids.sort_unstable();

    let external = apply_objects(c, &ctx, &ns, &all_ids).await?;

    // Create brokers that should exist and have no pod (new, or deleted for a restart).
    for id in membership.target() {
        if !claims.contains_key(&id) {
            apply(&apis.pvcs, &pvc::build(c, id)).await?;
        }
        if !pods.contains_key(&id) {
            let pod = pods::build(c, id, &all_ids, &external.endpoints);
            apply(&apis.pods, &pod).await?;
            if !membership.add.contains(&id) {
                decision!(
                    c,
                    "BrokerPodCreated",
                    broker = id,
                    "created the missing pod of an existing broker (restarted or deleted)"
                );
            }
        }
    }
    if !membership.add.is_empty() {
        let note = format!("Created brokers {:?}", membership.add);
        ctx.event(c, EventType::Normal, "BrokersCreated", note)
            .await;
    }

    let brokers = Brokers {
        ids: &all_ids,
        external: &external.endpoints,
    };
    let outcome = act_on_cluster(c, &ctx, &pods, &membership, brokers, &apis).await?;
    let status = build_status(
        c,
        &pods,
        &membership,
        brokers,
        &outcome,
        &external,
        Timestamp::now(),
    );
    let in_progress = conditions::is_true(&status.conditions, RECONCILING);
    apply_status(
        &Api::<Cluster>::namespaced(ctx.client.clone(), &ns),
        c,
        &status,
    )
    .await?;
    Ok(if in_progress || outcome.kafka_failed.is_some() {
        Action::requeue(PROGRESS_REQUEUE)
    } else {
        Action::requeue(ctx.resync)
    })
}

fn broker_id<K: Resource>(obj: &K) -> Option<i32> {
    obj.meta()
        .labels
        .as_ref()?
        .get(builders::LABEL_BROKER_ID)?
        .parse()
        .ok()
}

/// The brokers whose config is rendered (those being removed included) and their known
/// external endpoints: what the ConfigMap and each pod's revision are built from.
#[derive(Clone, Copy)]
struct Brokers<'a> {
    ids: &'a [i32],
    external: &'a ExternalEndpoints,
}

/// Server-side apply with the operator's field manager; returns the object as stored.
async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Applies the owned objects; returns what the external Services say about addresses.
async fn apply_objects(
    c: &Cluster,
    ctx: &Context,
    ns: &str,
    ids: &[i32],
) -> Result<external::Observed> {
    let client = ctx.client.clone();
    apply(
        &Api::namespaced(client.clone(), ns),
        &service_account::build(c),
    )
    .await?;
    let svc_api = Api::namespaced(client.clone(), ns);
    apply(&svc_api, &services::headless(c)).await?;
    apply(&svc_api, &services::bootstrap(c)).await?;
    let external = apply_external_services(c, &svc_api, ids).await?;
    apply(
        &Api::namespaced(client.clone(), ns),
        &configmap::build(c, ids, &external.endpoints),
    )
    .await?;
    let pdb_api: Api<PodDisruptionBudget> = Api::namespaced(client, ns);
    match pdb::build(c) {
        Some(budget) => {
            apply(&pdb_api, &budget).await?;
        }
        // Turned off: a budget left behind would still block node drains.
        None => match pdb_api
            .delete(&pdb::name(c), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                decision!(
                    c,
                    "DisruptionBudgetDeleted",
                    pdb = %pdb::name(c),
                    "deleted the PodDisruptionBudget: spec.disruptionBudget.enabled is false",
                );
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(external)
}

/// Applies the external Services, reads back the node ports and load-balancer addresses the
/// API server gave them, and deletes external Services no longer wanted (the listener was
/// removed, or their broker was).
async fn apply_external_services(
    c: &Cluster,
    svc_api: &Api<Service>,
    ids: &[i32],
) -> Result<external::Observed> {
    let wanted = services::external(c, ids);
    let mut applied = Vec::with_capacity(wanted.len());
    for svc in &wanted {
        applied.push(apply(svc_api, svc).await?);
    }
    let names: BTreeSet<String> = wanted.iter().map(ResourceExt::name_any).collect();
    let existing = svc_api
        .list(&ListParams::default().labels(&services::external_list_selector(c)))
        .await?;
    for svc in existing.items {
        let name = svc.name_any();
        if names.contains(&name) {
            continue;
        }
        match svc_api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(external::observe(c, ids, &applied))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.annotations()
        .get(builders::ANNOTATION_REVISION)
        .map(String::as_str)
}

fn tp_list(tps: &[(String, i32)], limit: usize) -> String {
    let mut s: Vec<String> = tps
        .iter()
        .take(limit)
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
    if tps.len() > limit {
        s.push(format!("and {} more", tps.len() - limit));
    }
    s.join(", ")
}

/// Step 4 of a pass. A failed Kafka admin call ends the pass with `kafka_failed` set, so the
/// status still says what went wrong (a reconcile error would leave the old conditions).
async fn act_on_cluster(
    c: &Cluster,
    ctx: &Context,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
    apis: &BrokerApis,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    match decide(c, ctx, pods, membership, brokers, apis, &mut out).await {
        Ok(()) => Ok(out),
        Err(Error::Kafka(e)) => {
            let reason = if e.is_unreachable() {
                UNREACHABLE
            } else {
                "KafkaRequestFailed"
            };
            let (kind, namespace, name) = super::log_identity(c);
            tracing::warn!(%kind, namespace, name, reason, error = %e,
                "Kafka admin request failed; retrying soon");
            out.kafka_failed = Some((reason, e.to_string()));
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

async fn decide(
    c: &Cluster,
    ctx: &Context,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
    apis: &BrokerApis,
    out: &mut Outcome,
) -> Result<()> {
    let all_ids = brokers.ids;
    if pods.is_empty() {
        out.progress = Some(("Creating", "creating brokers".into()));
        return Ok(());
    }
    let bootstrap = builders::bootstrap_address(c);
    let admin = ctx.kafka.connect(&bootstrap).await?;
    let md = admin.metadata(None).await?;
    out.metadata = Some(md.clone());
    let ongoing = match admin.list_partition_reassignments().await {
        Ok(o) => o,
        Err(KafkaError::Unsupported(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let target: BTreeSet<i32> = membership.target().into_iter().collect();

    // Scale-down: refuse, drain, or remove.
    if !membership.remove.is_empty() {
        let blockers = scale_down_blockers(&md, target.len());
        let voters = configmap::voters(c, all_ids);
        let leaving_voters: Vec<i32> = membership
            .remove
            .iter()
            .copied()
            .filter(|id| voters.contains(id))
            .collect();
        if !blockers.is_empty() {
            let detail = blockers
                .iter()
                .map(|(t, rf)| format!("{t} (replication factor {rf})"))
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!(
                "refusing to remove brokers {:?}: only {} would remain, fewer than the replicas of {detail}",
                membership.remove,
                target.len()
            );
            ctx.event(c, EventType::Warning, "ScaleDownRefused", msg.clone())
                .await;
            out.refused = Some(("ScaleDownRefused", msg));
            return Ok(());
        }
        if !leaving_voters.is_empty() {
            let msg = format!(
                "refusing to remove brokers {leaving_voters:?}: they vote in the metadata quorum (voters {voters:?}); list other brokers in spec.removeBrokers"
            );
            ctx.event(c, EventType::Warning, "ScaleDownRefused", msg.clone())
                .await;
            out.refused = Some(("ScaleDownRefused", msg));
            return Ok(());
        }
        let moves = plan_reassignment(&md.assignment(), &target)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if !moves.is_empty() {
            if ongoing.is_empty() {
                admin
                    .alter_partition_reassignments(&to_reassignments(&moves))
                    .await?;
                ctx.event(
                    c,
                    EventType::Normal,
                    "DrainStarted",
                    format!(
                        "Moving {} partitions off brokers {:?}",
                        moves.len(),
                        membership.remove
                    ),
                )
                .await;
            } else {
                decision!(
                    c,
                    "Draining",
                    brokers = ?membership.remove,
                    in_flight = ongoing.len(),
                    "waiting for partition moves in flight before draining",
                );
            }
            out.progress = Some((
                "Draining",
                format!(
                    "draining brokers {:?}: {} partitions to move",
                    membership.remove,
                    moves.len()
                ),
            ));
            return Ok(());
        }
        if !ongoing.is_empty() {
            decision!(
                c,
                "Draining",
                brokers = ?membership.remove,
                in_flight = ongoing.len(),
                "waiting for the drain's partition moves to finish",
            );
            out.progress = Some((
                "Draining",
                format!("{} partition moves in progress", ongoing.len()),
            ));
            return Ok(());
        }
        for id in &membership.remove {
            remove_broker(c, *id, apis).await?;
        }
        ctx.event(
            c,
            EventType::Normal,
            "DrainFinished",
            format!(
                "Brokers {:?} hold no partitions and were removed",
                membership.remove
            ),
        )
        .await;
        out.balanced = Some(target.iter().copied().collect());
        out.progress = Some((
            "Removing",
            format!("removed brokers {:?}", membership.remove),
        ));
        return Ok(());
    }

    let all_ready = target.iter().all(|id| pods.get(id).is_some_and(pod_ready));
    let registered = md.broker_ids();
    let balanced_over: Vec<i32> = c
        .status
        .as_ref()
        .map(|s| s.balanced_brokers.clone())
        .unwrap_or_default();

    // Rebalance onto a changed broker set, once every broker has registered.
    let target_vec: Vec<i32> = target.iter().copied().collect();
    if balanced_over != target_vec && target.is_subset(&registered) && all_ready {
        if !ongoing.is_empty() {
            decision!(
                c,
                "Rebalancing",
                brokers = ?target_vec,
                in_flight = ongoing.len(),
                "waiting for partition moves in flight before rebalancing",
            );
            out.progress = Some((
                "Rebalancing",
                format!("{} partition moves in progress", ongoing.len()),
            ));
            return Ok(());
        }
        let moves = plan_reassignment(&md.assignment(), &target)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if moves.is_empty() {
            decision!(
                c,
                "Balanced",
                brokers = ?target_vec,
                "partitions already balanced over the brokers; nothing to move",
            );
            out.balanced = Some(target_vec);
        } else {
            admin
                .alter_partition_reassignments(&to_reassignments(&moves))
                .await?;
            ctx.event(
                c,
                EventType::Normal,
                "Rebalancing",
                format!(
                    "Moving {} partitions to balance brokers {target_vec:?}",
                    moves.len()
                ),
            )
            .await;
            out.progress = Some(("Rebalancing", format!("moving {} partitions", moves.len())));
            return Ok(());
        }
    }

    // Rolling restart of one stale broker at a time, voters last.
    let mut stale: Vec<i32> = target
        .iter()
        .copied()
        .filter(|id| {
            pods.get(id).is_some_and(|p| {
                pod_revision(p) != Some(pods::revision(c, *id, all_ids, brokers.external).as_str())
            })
        })
        .collect();
    let voters = configmap::voters(c, all_ids);
    stale.sort_by_key(|id| (voters.contains(id), *id));
    if let Some(id) = stale.first().copied() {
        if !all_ready {
            decision!(
                c,
                "Rolling",
                broker = id,
                stale = ?stale,
                "waiting for every broker to be ready before the next restart",
            );
            out.progress = Some((
                "Rolling",
                format!("waiting for brokers to be ready before restarting broker {id}"),
            ));
            return Ok(());
        }
        let blockers = restart_check(c, admin.as_ref(), &md, id).await?;
        if blockers.is_empty() {
            apis.pods
                .delete(&builders::pod_name(c, id), &DeleteParams::default())
                .await?;
            ctx.event(
                c,
                EventType::Normal,
                "BrokerRestarting",
                format!("Restarting broker {id} to apply a configuration change"),
            )
            .await;
            out.progress = Some((
                "Rolling",
                format!("restarting broker {id} ({} to go)", stale.len()),
            ));
        } else {
            let partitions = tp_list(&blockers, 10);
            decision!(
                c,
                "RollBlocked",
                broker = id,
                partitions = %partitions,
                "restart waits: partitions under-replicated or at min.insync.replicas",
            );
            out.progress = Some((
                "RollBlocked",
                format!(
                    "broker {id} restarts once these partitions are back in sync (now it \
                     would shrink an under-replicated ISR or leave it below \
                     min.insync.replicas): {partitions}"
                ),
            ));
        }
        return Ok(());
    }

    // Leadership back to preferred replicas (after a broker returned).
    let drifted = md.not_preferred_leader();
    if all_ready && ongoing.is_empty() && !drifted.is_empty() && md.offline().is_empty() {
        admin.elect_preferred_leaders(&drifted).await?;
        ctx.event(
            c,
            EventType::Normal,
            "LeadersRebalanced",
            format!("Preferred leader election for {} partitions", drifted.len()),
        )
        .await;
    }
    Ok(())
}

fn to_reassignments(moves: &plan::Assignment) -> Vec<Reassignment> {
    moves
        .iter()
        .map(|((topic, partition), replicas)| Reassignment {
            topic: topic.clone(),
            partition: *partition,
            replicas: Some(replicas.clone()),
        })
        .collect()
}

/// Partitions that keep broker `id` from restarting now (`plan::safety::restart_blockers`),
/// with each topic's `min.insync.replicas` read from the cluster.
async fn restart_check(
    c: &Cluster,
    admin: &dyn KafkaAdmin,
    md: &ClusterMetadata,
    id: i32,
) -> Result<Vec<(String, i32)>> {
    let default_min: usize = c
        .spec
        .config
        .get("min.insync.replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut min_isr = BTreeMap::new();
    for t in &md.topics {
        if t.partitions.iter().any(|p| p.replicas.contains(&id)) {
            let configs = admin.describe_topic_configs(&t.name).await?;
            if let Some(v) = configs
                .get("min.insync.replicas")
                .and_then(|e| e.value.as_deref())
                .and_then(|v| v.parse().ok())
            {
                min_isr.insert(t.name.clone(), v);
            }
        }
    }
    Ok(restart_blockers(md, id, &min_isr, default_min))
}

/// Deletes broker `id`'s pod and deletes or releases its claim per `reclaimPolicy`. Objects
/// already gone are fine: a pass that failed half-way is simply repeated.
async fn remove_broker(c: &Cluster, id: i32, apis: &BrokerApis) -> Result<()> {
    let dp = DeleteParams::default();
    match apis.pods.delete(&builders::pod_name(c, id), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let claim = builders::pvc_name(c, id);
    let policy = c.spec.storage.reclaim_policy;
    match policy {
        ReclaimPolicy::Delete => match apis.pvcs.delete(&claim, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
        ReclaimPolicy::Retain => {
            let patch = serde_json::json!({
                "metadata": {"labels": {builders::LABEL_RETAINED: "true"}}
            });
            // Our field manager, so `managedFields` says who labelled the claim.
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            match apis
                .pvcs
                .patch(&claim, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    decision!(
        c,
        "BrokerRemoved",
        broker = id,
        claim = %claim,
        reclaim_policy = ?policy,
        "removed the drained broker's pod; its claim was deleted or kept per reclaimPolicy",
    );
    Ok(())
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

fn build_status(
    c: &Cluster,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
    outcome: &Outcome,
    external: &external::Observed,
    now: Timestamp,
) -> ClusterStatus {
    let all_ids = brokers.ids;
    let mut status = c.status.clone().unwrap_or_default();
    let generation = c.metadata.generation;
    status.observed_generation = generation;
    status.bootstrap_address = Some(builders::bootstrap_address(c));
    status.listeners = listener_status(c, pods, external);
    if let Some(b) = &outcome.balanced {
        status.balanced_brokers = b.clone();
    }
    let voters = configmap::voters(c, all_ids);
    let md = outcome.metadata.as_ref();
    let counts = md.map(|m| plan::reassign::replica_counts(&m.assignment()));
    let leaders = md.map(|m| {
        let mut l: BTreeMap<i32, i32> = BTreeMap::new();
        for t in &m.topics {
            for p in &t.partitions {
                *l.entry(p.leader).or_insert(0) += 1;
            }
        }
        l
    });
    status.brokers = all_ids
        .iter()
        .map(|id| {
            let pod = pods.get(id);
            // A refused scale-down keeps its brokers serving: they are not draining.
            let phase = if membership.remove.contains(id) && outcome.refused.is_none() {
                "Draining"
            } else {
                match pod {
                    None => "Missing",
                    Some(p) if p.metadata.deletion_timestamp.is_some() => "Restarting",
                    Some(p) if pod_ready(p) => "Ready",
                    Some(p)
                        if p.status.as_ref().and_then(|s| s.phase.as_deref())
                            == Some("Running") =>
                    {
                        "Running"
                    }
                    Some(_) => "Pending",
                }
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
        .collect();
    status.replicas = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    status.ready_brokers =
        i32::try_from(pods.values().filter(|p| pod_ready(p)).count()).unwrap_or(i32::MAX);
    let target_ready = membership
        .target()
        .iter()
        .all(|id| pods.get(id).is_some_and(pod_ready));

    let (urp, offline) = match md {
        Some(m) => (m.under_replicated(), m.offline()),
        None => (Vec::new(), Vec::new()),
    };
    if md.is_some() {
        status.under_replicated_partitions = Some(i32::try_from(urp.len()).unwrap_or(i32::MAX));
        status.offline_partitions = Some(i32::try_from(offline.len()).unwrap_or(i32::MAX));
        status.affected_partitions = offline
            .iter()
            .chain(urp.iter().filter(|p| !offline.contains(p)))
            .take(20)
            .map(|(t, p)| format!("{t}-{p}"))
            .collect();
    }

    // Ready: every broker ready and the spec achievable.
    let (ready, reason, message) = if let Some((reason, msg)) = &outcome.refused {
        (false, *reason, msg.clone())
    } else if let Some((reason, e)) = &outcome.kafka_failed {
        (false, *reason, e.clone())
    } else if !target_ready {
        let n = membership.target().len();
        (
            false,
            "BrokersNotReady",
            format!("{} of {n} brokers ready", status.ready_brokers),
        )
    } else {
        (
            true,
            "Ready",
            format!("{} brokers ready", status.ready_brokers),
        )
    };
    conditions::set(
        &mut status.conditions,
        READY,
        ready,
        reason,
        message,
        generation,
        now,
    );

    // Brokers whose external address is not known yet run without their external listener.
    let waiting: Vec<i32> = external
        .pending
        .iter()
        .copied()
        .filter(|id| !membership.remove.contains(id))
        .collect();
    let (reconciling, reason, message) = match &outcome.progress {
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
    };
    conditions::set(
        &mut status.conditions,
        RECONCILING,
        reconciling,
        reason,
        message,
        generation,
        now,
    );

    let not_ready: Vec<i32> = membership
        .target()
        .into_iter()
        .filter(|id| pods.get(id).is_some_and(|p| !pod_ready(p)))
        .collect();
    let (degraded, reason, message) = if !offline.is_empty() {
        (
            true,
            "PartitionsOffline",
            format!("offline: {}", tp_list(&offline, 20)),
        )
    } else if !urp.is_empty() {
        (
            true,
            "UnderReplicated",
            format!("under-replicated: {}", tp_list(&urp, 20)),
        )
    } else if !not_ready.is_empty()
        && status
            .balanced_brokers
            .iter()
            .any(|b| not_ready.contains(b))
    {
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
    };
    conditions::set(
        &mut status.conditions,
        DEGRADED,
        degraded,
        reason,
        message,
        generation,
        now,
    );
    status
}

#[cfg(test)]
mod tests {
    //! Scenarios: the reconciler against a mock API server and an in-memory cluster.

    use super::*;
    use crate::builders::test_support;
    use crate::crd::cluster::ExternalType;
    use crate::reconcilers::fixtures::{
        context, default_reply, finish, not_found, ApiCall, FakeKafka, Journal, Logs,
    };
    use serde_json::{json, Value};

    /// Broker pods as the builder makes them for `ids`, marked ready.
    fn ready_pods(c: &Cluster, ids: &[i32]) -> Vec<Value> {
        ids.iter()
            .map(|id| {
                let pod = pods::build(c, *id, ids, &ExternalEndpoints::new());
                let mut pod = serde_json::to_value(pod).expect("pod json");
                pod["status"] = json!({"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}]});
                pod
            })
            .collect()
    }

    fn claims(c: &Cluster, ids: &[i32]) -> Vec<Value> {
        ids.iter()
            .map(|id| serde_json::to_value(pvc::build(c, *id)).expect("pvc json"))
            .collect()
    }

    fn list(items: Vec<Value>) -> Value {
        json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
    }

    async fn run(
        c: Cluster,
        pods: Vec<Value>,
        pvcs: Vec<Value>,
        kafka: FakeKafka,
        journal: &Journal,
    ) -> (Result<Action>, Vec<ApiCall>) {
        run_with(c, pods, pvcs, kafka, journal, |_| None).await
    }

    /// [`run`], with `answer` answering requests first (`None`: the default).
    async fn run_with(
        c: Cluster,
        pods: Vec<Value>,
        pvcs: Vec<Value>,
        kafka: FakeKafka,
        journal: &Journal,
        answer: impl Fn(&ApiCall) -> Option<(u16, Value)> + Send + 'static,
    ) -> (Result<Action>, Vec<ApiCall>) {
        let (ctx, server) = context(kafka, journal);
        let echo = serde_json::to_value(&c).expect("cluster json");
        let server = server.run(move |call| {
            if let Some(reply) = answer(call) {
                reply
            } else if call.method == "GET"
                && call.path.starts_with("/api/v1/namespaces/kafka/pods?")
            {
                (200, list(pods.clone()))
            } else if call.method == "GET"
                && call
                    .path
                    .starts_with("/api/v1/namespaces/kafka/persistentvolumeclaims?")
            {
                (200, list(pvcs.clone()))
            } else if call.method == "PATCH" && call.path.contains("/clusters/") {
                (200, echo.clone())
            } else {
                default_reply(call, &echo)
            }
        });
        let result = reconcile(Arc::new(c), ctx).await;
        (result, finish(server).await)
    }

    fn status(calls: &[ApiCall]) -> Value {
        calls
            .iter()
            .find(|c| {
                c.method == "PATCH"
                    && c.path.starts_with(
                        "/apis/spate.dev/v1alpha1/namespaces/kafka/clusters/spate/status?",
                    )
            })
            .map(|c| c.body["status"].clone())
            .expect("status patched")
    }

    fn condition(status: &Value, type_: &str) -> (String, String, String) {
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
            .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
        (
            c["status"].as_str().unwrap_or("").into(),
            c["reason"].as_str().unwrap_or("").into(),
            c["message"].as_str().unwrap_or("").into(),
        )
    }

    fn deletes(calls: &[ApiCall]) -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.method == "DELETE")
            .map(|c| c.path.clone())
            .collect()
    }

    fn events(calls: &[ApiCall]) -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.method == "POST" && c.path.contains("/events"))
            .map(|c| c.body["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[tokio::test]
    async fn new_cluster_applies_objects_and_creates_brokers() {
        let journal = Journal::default();
        let c = test_support::cluster(3);
        let (result, calls) = run(
            c,
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
        )
        .await;
        assert_eq!(
            result.expect("reconciled"),
            Action::requeue(PROGRESS_REQUEUE)
        );
        let applied: Vec<&str> = calls
            .iter()
            .filter(|c| c.method == "PATCH" && c.path.contains("fieldManager=spate-operator"))
            .map(|c| c.path.split('?').next().unwrap_or(""))
            .collect();
        for path in [
            "/api/v1/namespaces/kafka/serviceaccounts/spate-broker",
            "/api/v1/namespaces/kafka/configmaps/spate-config",
            "/api/v1/namespaces/kafka/services/spate-brokers",
            "/api/v1/namespaces/kafka/services/spate-bootstrap",
            "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/spate-brokers",
            "/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-0",
            "/api/v1/namespaces/kafka/pods/spate-2",
        ] {
            assert!(applied.contains(&path), "{path} not applied: {applied:?}");
        }
        let pod = calls
            .iter()
            .find(|c| c.path.starts_with("/api/v1/namespaces/kafka/pods/spate-1?"))
            .expect("pod applied");
        assert_eq!(pod.body["kind"], "Pod");
        assert_eq!(
            pod.body["metadata"]["ownerReferences"][0]["kind"],
            "Cluster"
        );
        assert_eq!(events(&calls), vec!["BrokersCreated".to_string()]);
        let s = status(&calls);
        assert_eq!(condition(&s, RECONCILING).1, "Creating");
        assert_eq!(condition(&s, READY).0, "False");
        assert!(
            journal.kafka().is_empty(),
            "no Kafka call before a broker exists"
        );
    }

    #[tokio::test]
    async fn scale_down_below_replication_factor_is_refused_with_a_condition() {
        let journal = Journal::default();
        let three = test_support::cluster(3);
        let mut c = three.clone();
        c.spec.replicas = 2;
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        let (result, calls) = run(
            c,
            ready_pods(&three, &[0, 1, 2]),
            claims(&three, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let s = status(&calls);
        let (ready, reason, message) = condition(&s, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", "ScaleDownRefused")
        );
        assert!(
            message.contains("orders (replication factor 3)"),
            "{message}"
        );
        assert!(
            deletes(&calls).is_empty(),
            "no broker removed: {:?}",
            deletes(&calls)
        );
        assert!(!journal
            .kafka()
            .iter()
            .any(|k| k.starts_with("AlterPartitionReassignments")));
        assert!(events(&calls).contains(&"ScaleDownRefused".to_string()));
        let warning = calls
            .iter()
            .find(|c| c.body["reason"] == "ScaleDownRefused")
            .expect("event");
        assert_eq!(warning.body["type"], "Warning");
        assert_eq!(
            phases(&s),
            ["Ready", "Ready", "Ready"],
            "brokers kept, and serving rather than draining"
        );
    }

    fn phases(status: &Value) -> Vec<String> {
        status["brokers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| b["phase"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[tokio::test]
    async fn scale_down_drains_the_chosen_broker_then_removes_it() {
        let journal = Journal::default();
        let mut four = test_support::cluster(4);
        four.spec.metadata_voters = Some(1);
        let mut c = four.clone();
        c.spec.replicas = 3;
        c.spec.remove_brokers = vec![2];
        c.spec.storage.reclaim_policy = ReclaimPolicy::Delete;
        let kafka = FakeKafka::new(4, journal.clone()).with_topic("orders", 8, 2);

        // Pass 1: replicas move off broker 2; nothing is deleted yet.
        let (result, calls) = run(
            c.clone(),
            ready_pods(&four, &[0, 1, 2, 3]),
            claims(&four, &[0, 1, 2, 3]),
            kafka.clone(),
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert!(deletes(&calls).is_empty());
        assert!(events(&calls).contains(&"DrainStarted".to_string()));
        assert_eq!(condition(&status(&calls), RECONCILING).1, "Draining");
        assert_eq!(
            phases(&status(&calls)),
            ["Ready", "Ready", "Draining", "Ready"]
        );
        let after = kafka.state.lock().expect("lock").topics["orders"].clone();
        assert!(after
            .partitions
            .iter()
            .all(|p| !p.replicas.contains(&2) && p.replicas.len() == 2));

        // Pass 2: broker 2 is empty, so its pod and claim go.
        let (result, calls) = run(
            c,
            ready_pods(&four, &[0, 1, 2, 3]),
            claims(&four, &[0, 1, 2, 3]),
            kafka,
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let d = deletes(&calls);
        assert!(
            d.iter()
                .any(|p| p.starts_with("/api/v1/namespaces/kafka/pods/spate-2?")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|p| p
                    .starts_with("/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-2?")),
            "{d:?}"
        );
        assert_eq!(d.len(), 2, "only broker 2 removed: {d:?}");
        assert!(events(&calls).contains(&"DrainFinished".to_string()));
    }

    #[tokio::test]
    async fn removing_a_metadata_voter_is_refused() {
        let journal = Journal::default();
        let three = test_support::cluster(3);
        let mut c = three.clone();
        c.spec.replicas = 2;
        c.spec.metadata_voters = Some(1);
        c.spec.remove_brokers = vec![0];
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 1);
        let (_, calls) = run(
            c,
            ready_pods(&three, &[0, 1, 2]),
            claims(&three, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        let (_, reason, message) = condition(&status(&calls), READY);
        assert_eq!(reason, "ScaleDownRefused");
        assert!(message.contains("metadata quorum"), "{message}");
        assert!(deletes(&calls).is_empty());
    }

    #[tokio::test]
    async fn config_change_restarts_one_broker_when_isr_allows() {
        let journal = Journal::default();
        let old = test_support::cluster(3);
        let mut c = old.clone();
        c.spec.config.insert("log.retention.ms".into(), "1".into());
        c.status = Some(ClusterStatus {
            balanced_brokers: vec![0, 1, 2],
            ..ClusterStatus::default()
        });
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        let (_, calls) = run(
            c,
            ready_pods(&old, &[0, 1, 2]),
            claims(&old, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert_eq!(
            deletes(&calls).len(),
            1,
            "one broker at a time: {:?}",
            deletes(&calls)
        );
        assert!(deletes(&calls)[0].starts_with("/api/v1/namespaces/kafka/pods/spate-0?"));
        assert!(events(&calls).contains(&"BrokerRestarting".to_string()));
        assert_eq!(condition(&status(&calls), RECONCILING).1, "Rolling");
    }

    /// A 3-broker Cluster with a config change to roll (min.insync.replicas=2) while
    /// `orders-0` has broker 2 out of its ISR: restarting broker 0 or 1 would take it below
    /// min.insync.replicas. Returns (the cluster as running, the changed one, its Kafka).
    fn roll_blocked_by_min_isr(journal: &Journal) -> (Cluster, Cluster, FakeKafka) {
        let old = test_support::cluster(3);
        let mut c = old.clone();
        c.spec
            .config
            .insert("min.insync.replicas".into(), "2".into());
        c.status = Some(ClusterStatus {
            balanced_brokers: vec![0, 1, 2],
            ..ClusterStatus::default()
        });
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 1, 3);
        kafka
            .state
            .lock()
            .expect("lock")
            .topics
            .get_mut("orders")
            .expect("topic")
            .partitions[0]
            .isr = vec![0, 1];
        (old, c, kafka)
    }

    #[tokio::test]
    async fn restart_waits_while_it_would_drop_a_partition_below_min_isr() {
        let journal = Journal::default();
        let (old, c, kafka) = roll_blocked_by_min_isr(&journal);
        let (_, calls) = run(
            c,
            ready_pods(&old, &[0, 1, 2]),
            claims(&old, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert!(deletes(&calls).is_empty(), "{:?}", deletes(&calls));
        let s = status(&calls);
        let (_, reason, message) = condition(&s, RECONCILING);
        assert_eq!(reason, "RollBlocked");
        assert!(message.contains("orders-0"), "{message}");
        assert_eq!(condition(&s, DEGRADED).1, "UnderReplicated");
        assert_eq!(s["underReplicatedPartitions"], 1);
    }

    #[tokio::test]
    async fn scale_up_rebalances_partitions_onto_new_brokers() {
        let journal = Journal::default();
        let c = {
            let mut c = test_support::cluster(4);
            c.status = Some(ClusterStatus {
                balanced_brokers: vec![0, 1, 2],
                ..ClusterStatus::default()
            });
            c
        };
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 6, 2);
        kafka.state.lock().expect("lock").brokers.push(3);
        let (_, calls) = run(
            c.clone(),
            ready_pods(&c, &[0, 1, 2, 3]),
            claims(&c, &[0, 1, 2, 3]),
            kafka.clone(),
            &journal,
        )
        .await;
        assert!(
            journal
                .kafka()
                .iter()
                .any(|k| k.starts_with("AlterPartitionReassignments")),
            "{:?}",
            journal.kafka()
        );
        let counts = plan::reassign::replica_counts(
            &kafka.state.lock().expect("lock").topics["orders"]
                .partitions
                .iter()
                .map(|p| (("orders".to_string(), p.partition), p.replicas.clone()))
                .collect(),
        );
        assert_eq!(
            counts.get(&3),
            Some(&3),
            "broker 3 got its share: {counts:?}"
        );
        assert_eq!(condition(&status(&calls), RECONCILING).1, "Rebalancing");
    }

    #[tokio::test]
    async fn returned_broker_gets_its_leadership_back() {
        let journal = Journal::default();
        let mut c = test_support::cluster(3);
        c.status = Some(ClusterStatus {
            balanced_brokers: vec![0, 1, 2],
            ..ClusterStatus::default()
        });
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        kafka
            .state
            .lock()
            .expect("lock")
            .topics
            .get_mut("orders")
            .expect("topic")
            .partitions[0]
            .leader = 1;
        let (_, calls) = run(
            c.clone(),
            ready_pods(&c, &[0, 1, 2]),
            claims(&c, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert_eq!(
            journal.kafka().last().map(String::as_str),
            Some("ElectLeaders 1")
        );
        assert!(events(&calls).contains(&"LeadersRebalanced".to_string()));
        let s = status(&calls);
        assert_eq!(condition(&s, READY).0, "True");
        assert_eq!(condition(&s, DEGRADED).0, "False");
    }

    #[tokio::test]
    async fn unreachable_cluster_is_reported_and_retried_soon() {
        let journal = Journal::default();
        let c = test_support::cluster(1);
        let kafka = FakeKafka::new(1, journal.clone());
        kafka.state.lock().expect("lock").reachable = false;
        let (result, calls) = run(
            c.clone(),
            ready_pods(&c, &[0]),
            claims(&c, &[0]),
            kafka,
            &journal,
        )
        .await;
        assert_eq!(result.expect("ok"), Action::requeue(PROGRESS_REQUEUE));
        assert_eq!(condition(&status(&calls), READY).1, "ClusterUnreachable");
    }

    #[tokio::test]
    async fn kafka_request_failing_mid_pass_is_reported_in_status() {
        let journal = Journal::default();
        let c = test_support::cluster(3);
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        kafka
            .state
            .lock()
            .expect("lock")
            .failing
            .push("ListPartitionReassignments");
        let (result, calls) = run(
            c.clone(),
            ready_pods(&c, &[0, 1, 2]),
            claims(&c, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert_eq!(
            result.expect("a condition, not a reconcile error"),
            Action::requeue(PROGRESS_REQUEUE)
        );
        let s = status(&calls);
        let (ready, reason, message) = condition(&s, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", "KafkaRequestFailed")
        );
        assert!(message.contains("ListPartitionReassignments"), "{message}");
        assert_eq!(
            s["underReplicatedPartitions"], 0,
            "what Metadata said before the failure is kept"
        );
    }

    #[tokio::test]
    async fn disabled_disruption_budget_is_deleted() {
        const PDB: &str = "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/spate-brokers?";
        let journal = Journal::default();
        let mut c = test_support::cluster(3);
        c.spec.disruption_budget.enabled = false;
        let (result, calls) = run(
            c.clone(),
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(deletes(&calls), [PDB.to_string()]);
        assert!(
            !calls
                .iter()
                .any(|c| c.method == "PATCH" && c.path.starts_with(PDB)),
            "not applied"
        );

        // Already gone, as on every later pass: nothing to do.
        let (result, _) = run_with(
            c,
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
            |call| (call.method == "DELETE" && call.path.starts_with(PDB)).then(not_found),
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn removed_brokers_claim_is_retained_under_the_operators_field_manager() {
        let journal = Journal::default();
        let four = test_support::cluster(4);
        let mut c = four.clone();
        c.spec.replicas = 3;
        assert_eq!(c.spec.storage.reclaim_policy, ReclaimPolicy::Retain);
        // No topics: broker 3 is empty at once and goes in this pass.
        let (result, calls) = run(
            c,
            ready_pods(&four, &[0, 1, 2, 3]),
            claims(&four, &[0, 1, 2, 3]),
            FakeKafka::new(4, journal.clone()),
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let d = deletes(&calls);
        assert_eq!(d.len(), 1, "the pod only: {d:?}");
        assert!(d[0].starts_with("/api/v1/namespaces/kafka/pods/spate-3?"));
        let relabel = calls
            .iter()
            .find(|c| {
                c.method == "PATCH"
                    && c.path.starts_with(
                        "/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-3?",
                    )
            })
            .expect("claim relabelled");
        assert!(
            relabel.path.contains("fieldManager=spate-operator"),
            "{}",
            relabel.path
        );
        assert_eq!(
            relabel.body["metadata"]["labels"]["spate.dev/retained"],
            "true"
        );
    }

    #[tokio::test]
    async fn decisions_are_logged_with_the_cluster_and_its_brokers() {
        let (logs, _guard) = Logs::capture();
        // A refused scale-down publishes an Event; its log line comes from `Context::event`.
        let journal = Journal::default();
        let three = test_support::cluster(3);
        let mut c = three.clone();
        c.spec.replicas = 2;
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        let (result, _) = run(
            c,
            ready_pods(&three, &[0, 1, 2]),
            claims(&three, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let refused = logs.lines_with("reason=\"ScaleDownRefused\"");
        assert_eq!(refused.len(), 1, "{refused:?}");
        for want in [
            "WARN",
            "kind=Cluster",
            "namespace=\"kafka\"",
            "name=\"spate\"",
            "refusing to remove brokers [2]",
        ] {
            assert!(refused[0].contains(want), "{want} in {}", refused[0]);
        }

        // A blocked roll publishes none; `decision!` logs it.
        let journal = Journal::default();
        let (old, c, kafka) = roll_blocked_by_min_isr(&journal);
        let (result, _) = run(
            c,
            ready_pods(&old, &[0, 1, 2]),
            claims(&old, &[0, 1, 2]),
            kafka,
            &journal,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let blocked = logs.lines_with("reason=\"RollBlocked\"");
        assert_eq!(blocked.len(), 1, "{blocked:?}");
        for want in ["INFO", "name=\"spate\"", "broker=0", "partitions=orders-0"] {
            assert!(blocked[0].contains(want), "{want} in {}", blocked[0]);
        }
    }

    // ---- The external listener ----

    /// Answers applies of external Services as the API server would once it allocated node
    /// ports (`31000` for the bootstrap, `31001 + id` per broker) or, with `ingress`, once
    /// the load balancers got addresses (`203.0.113.<id + 10>`, the bootstrap `.1`).
    fn external_services(ingress: bool) -> impl Fn(&ApiCall) -> Option<(u16, Value)> {
        move |call| {
            if call.method != "PATCH"
                || !call.path.starts_with("/api/v1/namespaces/kafka/services/")
            {
                return None;
            }
            let name = call.body["metadata"]["name"].as_str().unwrap_or("");
            let id = if name == "spate-external-bootstrap" {
                -1
            } else {
                name.strip_prefix("spate-")?
                    .strip_suffix("-external")?
                    .parse::<i32>()
                    .ok()?
            };
            let mut svc = call.body.clone();
            if svc["spec"]["type"] == "NodePort" {
                svc["spec"]["ports"][0]["nodePort"] = json!(31001 + id);
            } else if ingress {
                let ip = format!("203.0.113.{}", if id < 0 { 1 } else { id + 10 });
                svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
            }
            Some((200, svc))
        }
    }

    fn properties(calls: &[ApiCall], id: i32) -> String {
        calls
            .iter()
            .find(|c| {
                c.method == "PATCH"
                    && c.path
                        .starts_with("/api/v1/namespaces/kafka/configmaps/spate-config?")
            })
            .and_then(|c| c.body["data"][format!("broker-{id}.properties")].as_str())
            .unwrap_or_else(|| panic!("no properties for broker {id}"))
            .to_string()
    }

    /// Ready pods of `c` built with `endpoints`, on nodes `10.0.0.<id>`.
    fn ready_pods_on_nodes(c: &Cluster, ids: &[i32], endpoints: &ExternalEndpoints) -> Vec<Value> {
        ids.iter()
            .map(|id| {
                let pod = pods::build(c, *id, ids, endpoints);
                let mut pod = serde_json::to_value(pod).expect("pod json");
                pod["status"] = json!({"phase": "Running", "hostIP": format!("10.0.0.{id}"),
                    "conditions": [{"type": "Ready", "status": "True"}]});
                pod
            })
            .collect()
    }

    fn listeners(status: &Value) -> Vec<(String, String)> {
        status["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    l["name"].as_str().unwrap_or("").into(),
                    l["bootstrapServers"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    fn balanced(mut c: Cluster, ids: &[i32]) -> Cluster {
        c.status = Some(ClusterStatus {
            balanced_brokers: ids.to_vec(),
            ..ClusterStatus::default()
        });
        c
    }

    #[tokio::test]
    async fn node_ports_are_allocated_before_the_config_that_advertises_them() {
        let journal = Journal::default();
        let c = test_support::with_external(test_support::cluster(3), ExternalType::NodePort);
        let (result, calls) = run_with(
            c,
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
            external_services(false),
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let service = journal
            .position("k8s PATCH /api/v1/namespaces/kafka/services/spate-2-external?")
            .expect("external Service applied");
        let config = journal
            .position("k8s PATCH /api/v1/namespaces/kafka/configmaps/spate-config?")
            .expect("ConfigMap applied");
        assert!(service < config, "{:?}", journal.entries());
        for id in 0..3 {
            let props = properties(&calls, id);
            let advertised = format!(
                "advertised.listeners=PLAINTEXT://spate-{id}.spate-brokers.kafka.svc:9092,EXTERNAL://${{env:SPATE_NODE_IP}}:{}\n",
                31001 + id
            );
            assert!(props.contains(&advertised), "{props}");
        }
        let pod = calls
            .iter()
            .find(|c| c.path.starts_with("/api/v1/namespaces/kafka/pods/spate-0?"))
            .expect("pod applied");
        let env = &pod.body["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "SPATE_NODE_IP");
        assert_eq!(
            env[0]["valueFrom"]["fieldRef"]["fieldPath"],
            "status.hostIP"
        );
        let svc = calls
            .iter()
            .find(|c| {
                c.path
                    .starts_with("/api/v1/namespaces/kafka/services/spate-1-external?")
            })
            .expect("service applied");
        assert_eq!(svc.body["spec"]["ports"][0]["targetPort"], "external");
        assert_eq!(svc.body["spec"]["selector"]["spate.dev/broker-id"], "1");
    }

    #[tokio::test]
    async fn node_port_cluster_reports_its_external_bootstrap_and_stays_put() {
        let journal = Journal::default();
        let c = balanced(
            test_support::with_external(test_support::cluster(3), ExternalType::NodePort),
            &[0, 1, 2],
        );
        // The pods already run with the node ports the Services keep.
        let endpoints: ExternalEndpoints = (0..3)
            .map(|id| {
                let host = "${env:SPATE_NODE_IP}".to_string();
                (
                    id,
                    external::ExternalEndpoint {
                        host,
                        port: 31001 + id,
                    },
                )
            })
            .collect();
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        let (result, calls) = run_with(
            c.clone(),
            ready_pods_on_nodes(&c, &[0, 1, 2], &endpoints),
            claims(&c, &[0, 1, 2]),
            kafka,
            &journal,
            external_services(false),
        )
        .await;
        assert_eq!(
            result.expect("ok"),
            Action::requeue(Duration::from_secs(60))
        );
        assert!(deletes(&calls).is_empty(), "{:?}", deletes(&calls));
        let s = status(&calls);
        assert_eq!(condition(&s, RECONCILING).1, "Idle");
        assert_eq!(
            listeners(&s),
            [
                ("internal".into(), "spate-bootstrap.kafka.svc:9092".into()),
                (
                    "external".into(),
                    "10.0.0.0:31000,10.0.0.1:31000,10.0.0.2:31000".into()
                ),
            ]
        );
    }

    /// A balanced 3-broker Cluster with a LoadBalancer listener, its pods started while the
    /// load balancers had no address, reconciled once with (`assigned`) or without addresses.
    async fn reconcile_load_balancer(assigned: bool) -> (Result<Action>, Vec<ApiCall>) {
        let journal = Journal::default();
        let c = balanced(
            test_support::with_external(test_support::cluster(3), ExternalType::LoadBalancer),
            &[0, 1, 2],
        );
        let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
        run_with(
            c.clone(),
            ready_pods_on_nodes(&c, &[0, 1, 2], &ExternalEndpoints::new()),
            claims(&c, &[0, 1, 2]),
            kafka,
            &journal,
            external_services(assigned),
        )
        .await
    }

    #[tokio::test]
    async fn load_balancer_without_an_address_is_waited_for_without_external_config() {
        let (result, calls) = reconcile_load_balancer(false).await;
        assert_eq!(result.expect("ok"), Action::requeue(PROGRESS_REQUEUE));
        for id in 0..3 {
            let props = properties(&calls, id);
            assert!(!props.contains("EXTERNAL"), "{props}");
            assert!(props.contains("\nlisteners=0.0.0.0:9092\n"), "{props}");
        }
        assert!(deletes(&calls).is_empty(), "nothing to roll yet");
        let s = status(&calls);
        let (reconciling, reason, message) = condition(&s, RECONCILING);
        assert_eq!(
            (reconciling.as_str(), reason.as_str()),
            ("True", "WaitingForExternalAddress")
        );
        assert!(message.contains("spate-0-external"), "{message}");
        assert_eq!(
            condition(&s, READY).0,
            "True",
            "in-cluster clients are served"
        );
        assert_eq!(listeners(&s).len(), 1, "no external bootstrap yet");
    }

    #[tokio::test]
    async fn load_balancer_address_is_advertised_and_rolls_the_brokers() {
        let (_, calls) = reconcile_load_balancer(true).await;
        for id in 0..3 {
            let props = properties(&calls, id);
            let advertised = format!(
                "advertised.listeners=PLAINTEXT://spate-{id}.spate-brokers.kafka.svc:9092,EXTERNAL://203.0.113.{}:19092\n",
                id + 10
            );
            assert!(props.contains(&advertised), "{props}");
            assert!(props.contains("inter.broker.listener.name=PLAINTEXT\n"));
        }
        assert_eq!(deletes(&calls).len(), 1, "one broker at a time");
        assert!(deletes(&calls)[0].starts_with("/api/v1/namespaces/kafka/pods/spate-"));
        let s = status(&calls);
        assert_eq!(condition(&s, RECONCILING).1, "Rolling");
        assert!(listeners(&s).contains(&("external".into(), "203.0.113.1:19092".into())));
    }

    #[tokio::test]
    async fn external_services_no_longer_wanted_are_deleted() {
        let journal = Journal::default();
        let with = test_support::with_external(test_support::cluster(2), ExternalType::NodePort);
        // Broker 2 was removed; its Service and the others are what a list returns.
        let stale: Vec<Value> = services::external(&with, &[0, 1, 2])
            .into_iter()
            .map(|s| serde_json::to_value(s).expect("service json"))
            .collect();
        let listed = stale.clone();
        let answer = move |call: &ApiCall| {
            (call.method == "GET" && call.path.contains("spate.dev%2Flistener%3Dexternal"))
                .then(|| (200, list(listed.clone())))
                .or_else(|| external_services(false)(call))
        };
        let (_, calls) = run_with(
            with.clone(),
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
            answer.clone(),
        )
        .await;
        let d = deletes(&calls);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("/api/v1/namespaces/kafka/services/spate-2-external?"));

        // The listener removed from the spec: every external Service goes, and the
        // brokers' config is the single-listener one again.
        let (_, calls) = run_with(
            test_support::cluster(2),
            vec![],
            vec![],
            FakeKafka::new(0, journal.clone()),
            &journal,
            answer,
        )
        .await;
        assert_eq!(deletes(&calls).len(), 4, "{:?}", deletes(&calls));
        assert!(!properties(&calls, 0).contains("EXTERNAL"));
    }
}
