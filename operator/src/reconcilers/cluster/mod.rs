//! The Cluster reconciler: brokers as operator-owned pods, one step at a time.
//!
//! Each pass:
//! 1. reads the broker pods and claims, and plans membership (`plan::membership`);
//! 2. server-side-applies the ServiceAccount, Services, ConfigMap and PodDisruptionBudget;
//!    the external Services first, since the ConfigMap advertises the addresses the API server
//!    gives them (node ports, load-balancer addresses), and deletes external Services no
//!    longer wanted;
//! 3. creates the claim and pod of every broker that should exist and has no pod;
//! 4. asks the cluster (Metadata) what it holds and does at most one of, in this order
//!    (`plan::step` chooses):
//!    - scale-down: refuse (condition + Event) if a topic's replication factor exceeds the
//!      brokers that would remain, or a leaving broker votes in the metadata quorum;
//!      otherwise drain the leaving brokers with AlterPartitionReassignments and, once they
//!      hold nothing, delete their pods (and claims per `reclaimPolicy`);
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
//!
//! # Layout
//!
//! - `mod.rs`: the pass, and what it observes to choose a step;
//! - `objects.rs`: the owned objects it applies (steps 2 and 3);
//! - `scale_down.rs`, `rebalance.rs`, `roll.rs`, `leaders.rs`: one file per step of 4;
//! - `status.rs`: step 5;
//! - `tests.rs`: scenarios against a mock API server and an in-memory cluster.

pub mod certs;
mod leaders;
mod objects;
mod rebalance;
mod roll;
mod scale_down;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};

use super::{apply_status, Context};
use crate::builders::external::ExternalEndpoints;
use crate::builders::{self, configmap, pods};
use crate::crd::conditions::{self, RECONCILING};
use crate::crd::Cluster;
use crate::kafka::{ClusterMetadata, KafkaAdmin, KafkaError, Reassignment, TopicPartition};
use crate::plan::step::{next_step, ClusterState, Step};
use crate::plan::{self, plan_membership};
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

impl BrokerApis {
    fn new(client: &Client, ns: &str) -> Self {
        BrokerApis {
            pods: Api::namespaced(client.clone(), ns),
            pvcs: Api::namespaced(client.clone(), ns),
        }
    }

    /// The Cluster's broker pods and claims by broker id. Claims kept by `reclaimPolicy:
    /// Retain` belong to removed brokers and are left out.
    async fn list(
        &self,
        c: &Cluster,
    ) -> Result<(BTreeMap<i32, Pod>, BTreeMap<i32, PersistentVolumeClaim>)> {
        let selector = ListParams::default().labels(&builders::list_selector(c));
        let pods = self
            .pods
            .list(&selector)
            .await?
            .items
            .into_iter()
            .filter_map(|p| broker_id(&p).map(|id| (id, p)))
            .collect();
        let claims = self
            .pvcs
            .list(&selector)
            .await?
            .items
            .into_iter()
            .filter(|p| !p.labels().contains_key(builders::LABEL_RETAINED))
            .filter_map(|p| broker_id(&p).map(|id| (id, p)))
            .collect();
        Ok((pods, claims))
    }
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
    let apis = BrokerApis::new(&ctx.client, &ns);
    let (pods, claims) = apis.list(c).await?;

    let existing: BTreeSet<i32> = pods.keys().chain(claims.keys()).copied().collect();
    let membership = plan_membership(&existing, c.spec.replicas, &c.spec.remove_brokers);
    // Brokers being removed keep their config until they are gone.
    let mut all_ids: Vec<i32> = membership
        .target()
        .into_iter()
        .chain(membership.remove.iter().copied())
        .collect();
    all_ids.sort_unstable();

    let external = objects::apply_objects(c, &ctx, &ns, &all_ids).await?;
    let cert_revisions = certs::ensure(c, &ctx, &ns, &all_ids, &external, &pods).await?;
    let brokers = Brokers {
        ids: &all_ids,
        external: &external.endpoints,
        certs: &cert_revisions,
    };
    objects::create_missing_brokers(c, &ctx, &apis, &pods, &claims, &membership, brokers).await?;

    let outcome = act_on_cluster(c, &ctx, &pods, &membership, brokers, &apis).await?;
    let status = status::build(
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
    /// Certificate revisions by broker (secured clusters).
    certs: &'a certs::CertRevisions,
}

impl Brokers<'_> {
    /// The revision broker `id`'s pod must carry.
    fn revision(&self, c: &Cluster, id: i32) -> String {
        pods::revision(
            c,
            id,
            self.ids,
            self.external,
            self.certs.get(&id).map(String::as_str),
        )
    }
}

/// What a step acts on and through.
struct StepCtx<'a> {
    c: &'a Cluster,
    ctx: &'a Context,
    admin: &'a dyn KafkaAdmin,
    apis: &'a BrokerApis,
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

/// Up to `limit` partitions as `topic-partition`, then how many more.
fn tp_list(tps: &[TopicPartition], limit: usize) -> String {
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

/// Starts the partition moves of a drain or a rebalance.
async fn send_moves(admin: &dyn KafkaAdmin, moves: &plan::Assignment) -> Result<()> {
    let moves: Vec<Reassignment> = moves
        .iter()
        .map(|((topic, partition), replicas)| Reassignment {
            topic: topic.clone(),
            partition: *partition,
            replicas: Some(replicas.clone()),
        })
        .collect();
    admin.alter_partition_reassignments(&moves).await?;
    Ok(())
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

/// Reads the cluster, lets `plan::step` choose the step, and takes it.
async fn decide(
    c: &Cluster,
    ctx: &Context,
    pods: &BTreeMap<i32, Pod>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
    apis: &BrokerApis,
    out: &mut Outcome,
) -> Result<()> {
    if pods.is_empty() {
        // No broker to ask yet.
        out.progress = Some(("Creating", "creating brokers".into()));
        return Ok(());
    }
    let admin = super::access::cluster_admin(ctx, c).await?;
    let md = admin.metadata(None).await?;
    out.metadata = Some(md.clone());
    let in_flight = match admin.list_partition_reassignments().await {
        Ok(ongoing) => ongoing.len(),
        Err(KafkaError::Unsupported(_)) => 0,
        Err(e) => return Err(e.into()),
    };

    let target = membership.target();
    let voters = configmap::voters(c, brokers.ids);
    let stale = stale_brokers(c, pods, &target, brokers);
    let balanced_over: Vec<i32> = c
        .status
        .as_ref()
        .map(|s| s.balanced_brokers.clone())
        .unwrap_or_default();
    let plan = next_step(&ClusterState {
        target: &target,
        leaving: &membership.remove,
        voters: &voters,
        metadata: &md,
        in_flight,
        all_ready: target.iter().all(|id| pods.get(id).is_some_and(pod_ready)),
        stale: &stale,
        balanced_over: &balanced_over,
    })
    .map_err(|e| Error::Invalid(e.to_string()))?;

    if plan.record_balanced {
        rebalance::record_balanced(c, &target, out);
    }
    let s = StepCtx {
        c,
        ctx,
        admin: admin.as_ref(),
        apis,
    };
    match plan.step {
        Step::ScaleDown(step) => scale_down::run(&s, &membership.remove, &target, step, out).await,
        Step::Rebalance(step) => rebalance::run(&s, &target, step, out).await,
        Step::Roll(step) => roll::run(&s, &md, step, out).await,
        Step::ElectLeaders(partitions) => leaders::elect_preferred(&s, &partitions).await,
        Step::Idle => Ok(()),
    }
}

/// `target` brokers whose pod runs an outdated revision (spec or config changed since).
fn stale_brokers(
    c: &Cluster,
    pods: &BTreeMap<i32, Pod>,
    target: &[i32],
    brokers: Brokers<'_>,
) -> Vec<i32> {
    target
        .iter()
        .copied()
        .filter(|id| {
            pods.get(id)
                .is_some_and(|p| pod_revision(p) != Some(brokers.revision(c, *id).as_str()))
        })
        .collect()
}
