//! The Kubernetes objects a Cluster owns: applied every pass with server-side apply, and
//! deleted when no longer wanted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BrokerApis, Brokers};
use crate::builders::external;
use crate::builders::{configmap, pdb, pods, pvc, service_account, services};
use crate::crd::Cluster;
use crate::plan;
use crate::reconcilers::{Context, FIELD_MANAGER};
use crate::Result;

/// Server-side apply with the operator's field manager; returns the object as stored.
pub(super) async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
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
pub(super) async fn apply_objects(
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
    apply_disruption_budget(c, &Api::namespaced(client, ns)).await?;
    Ok(external)
}

/// Applies the PodDisruptionBudget, or deletes it when turned off: a budget left behind
/// would still block node drains.
async fn apply_disruption_budget(c: &Cluster, api: &Api<PodDisruptionBudget>) -> Result<()> {
    if let Some(budget) = pdb::build(c) {
        apply(api, &budget).await?;
        return Ok(());
    }
    match api.delete(&pdb::name(c), &DeleteParams::default()).await {
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
    }
    Ok(())
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

/// Creates the claim and pod of every broker that should exist and has none: new brokers,
/// and existing ones whose pod was deleted (for a restart, or by someone else).
pub(super) async fn create_missing_brokers(
    c: &Cluster,
    ctx: &Context,
    apis: &BrokerApis,
    pods: &BTreeMap<i32, Pod>,
    claims: &BTreeMap<i32, PersistentVolumeClaim>,
    membership: &plan::Membership,
    brokers: Brokers<'_>,
) -> Result<()> {
    for id in membership.target() {
        if !claims.contains_key(&id) {
            apply(&apis.pvcs, &pvc::build(c, id)).await?;
        }
        if !pods.contains_key(&id) {
            let certs = brokers.certs.get(&id).map(String::as_str);
            let pod = pods::build(c, id, brokers.ids, brokers.external, certs);
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
    Ok(())
}
