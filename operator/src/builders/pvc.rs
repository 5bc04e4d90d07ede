//! One PersistentVolumeClaim per broker, named `data-<cluster>-<id>`.
//!
//! With `reclaimPolicy: Delete` the claim is owned by the Cluster (deleted with it) and the
//! operator deletes it when the broker is removed; with `Retain` it has no owner and is only
//! relabelled `spate.dev/retained=true` when its broker goes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{broker_labels, object_meta, pvc_name};
use crate::crd::cluster::ReclaimPolicy;
use crate::crd::Cluster;

/// The claim for broker `id`.
pub fn build(c: &Cluster, id: i32) -> PersistentVolumeClaim {
    let storage = &c.spec.storage;
    let mut meta = object_meta(c, pvc_name(c, id), broker_labels(c, id));
    if storage.reclaim_policy == ReclaimPolicy::Retain {
        meta.owner_references = None;
    }
    PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;

    #[test]
    fn claim_has_size_class_and_broker_label() {
        let pvc = build(&cluster(3), 1);
        assert_eq!(pvc.metadata.name.as_deref(), Some("data-spate-1"));
        assert_eq!(
            pvc.metadata
                .labels
                .as_ref()
                .map(|l| l["spate.dev/broker-id"].as_str()),
            Some("1")
        );
        let spec = pvc.spec.expect("spec");
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        let size = spec.resources.and_then(|r| r.requests).expect("requests");
        assert_eq!(size["storage"], Quantity("10Gi".into()));
    }

    #[test]
    fn retained_claims_are_not_owned_deleted_claims_are() {
        let mut c = cluster(3);
        assert!(build(&c, 0).metadata.owner_references.is_none());
        c.spec.storage.reclaim_policy = ReclaimPolicy::Delete;
        assert_eq!(
            build(&c, 0).metadata.owner_references.map(|o| o.len()),
            Some(1)
        );
    }
}
