//! A stand-in provisioner. For every pending, unbound PersistentVolumeClaim it creates a
//! PersistentVolume backed by a hostPath directory under `<state-dir>/volumes/` and
//! pre-bound to the claim (`claimRef`); the controller-manager's PV binder then completes
//! the binding. When a claim is deleted, its Released volume and directory are removed.
//!
//! Claims are bound immediately, whatever their StorageClass says (even a class that does
//! not exist): there is only one node, so topology does not matter.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;

use crate::context::Ctx;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "spate-node-agent");

/// The PV name for claim `ns/name` (both DNS labels, so the result is a valid name).
pub fn pv_name(ns: &str, name: &str) -> String {
    format!("spate-{ns}-{name}")
}

/// The volume for `pvc`, or `None` if it needs none (bound, or not pending).
pub fn volume_for_claim(pvc: &PersistentVolumeClaim, state_dir: &Path) -> Option<PersistentVolume> {
    let spec = pvc.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return None;
    }
    if pvc.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, None | Some("Pending")) {
        return None;
    }
    let ns = pvc.metadata.namespace.clone()?;
    let name = pvc.metadata.name.clone()?;
    let pv = pv_name(&ns, &name);
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| Quantity("1Gi".into()));
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), storage)])),
            access_modes: spec
                .access_modes
                .clone()
                .or_else(|| Some(vec!["ReadWriteOnce".into()])),
            storage_class_name: spec.storage_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            host_path: Some(HostPathVolumeSource {
                path: state_dir
                    .join("volumes")
                    .join(&pv)
                    .to_string_lossy()
                    .into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns),
                name: Some(name),
                uid: pvc.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    })
}

/// Whether `pv` is one of ours whose claim is gone.
pub fn is_released(pv: &PersistentVolume) -> bool {
    let ours = pv
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1);
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    ours && phase == Some("Released")
}

async fn reconcile(ctx: &Ctx) -> Result<(), kube::Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    for pvc in pvcs.list(&ListParams::default()).await? {
        let Some(pv) = volume_for_claim(&pvc, &ctx.args.state_dir) else {
            continue;
        };
        if let Some(path) = pv
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| h.path.clone())
        {
            if let Err(e) = std::fs::create_dir_all(&path) {
                tracing::warn!(path, error = %e, "creating volume directory");
                continue;
            }
        }
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => tracing::info!(pv = ?pv.metadata.name, "provisioned volume for claim"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(error = %e, "creating persistent volume"),
        }
    }
    for pv in pvs.list(&ListParams::default()).await? {
        if !is_released(&pv) {
            continue;
        }
        let Some(name) = pv.metadata.name.clone() else {
            continue;
        };
        tracing::info!(pv = %name, "deleting released volume");
        if let Some(path) = pv.spec.and_then(|s| s.host_path).map(|h| h.path) {
            if path.starts_with(&*ctx.args.state_dir.to_string_lossy()) {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        if let Err(e) = pvs.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(pv = %name, error = %e, "deleting released volume");
        }
    }
    Ok(())
}

/// Polls claims and volumes every two seconds.
pub async fn run(ctx: Arc<Ctx>) {
    loop {
        if let Err(e) = reconcile(&ctx).await {
            tracing::warn!(error = %e, "volume provisioning");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    };

    fn claim() -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-web-0".into()),
                namespace: Some("ns1".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some("standard".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity("5Gi".into()),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..PersistentVolumeClaimStatus::default()
            }),
        }
    }

    #[test]
    fn pending_claim_gets_a_prebound_host_path_volume_of_its_class_and_size() {
        let pv = volume_for_claim(&claim(), Path::new("/state")).expect("pv");
        assert_eq!(pv.metadata.name.as_deref(), Some("spate-ns1-data-web-0"));
        let spec = pv.spec.expect("spec");
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
        assert_eq!(
            spec.capacity.and_then(|c| c.get("storage").cloned()),
            Some(Quantity("5Gi".into()))
        );
        assert_eq!(
            spec.host_path.map(|h| h.path),
            Some("/state/volumes/spate-ns1-data-web-0".into())
        );
        let r = spec.claim_ref.expect("claimRef");
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("ns1"), Some("data-web-0"), Some("u1"))
        );
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
    }

    #[test]
    fn bound_claims_need_no_volume() {
        let mut c = claim();
        if let Some(s) = c.spec.as_mut() {
            s.volume_name = Some("pv-1".into());
        }
        assert!(volume_for_claim(&c, Path::new("/state")).is_none());
        let mut c = claim();
        c.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..PersistentVolumeClaimStatus::default()
        });
        assert!(volume_for_claim(&c, Path::new("/state")).is_none());
    }
}
