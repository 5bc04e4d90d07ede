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
mod tests;
