//! Rolling restart: delete one broker pod whose revision is stale, when that is safe; the
//! next pass recreates it from the current spec.

use std::collections::BTreeMap;

use kube::api::DeleteParams;
use kube::runtime::events::EventType;

use super::{tp_list, Outcome, StepCtx};
use crate::builders;
use crate::crd::Cluster;
use crate::kafka::{ClusterMetadata, KafkaAdmin, TopicPartition};
use crate::plan::restart_blockers;
use crate::plan::step::Roll;
use crate::Result;

/// Carries out `step`; `md` is what Metadata reported this pass.
pub(super) async fn run(
    s: &StepCtx<'_>,
    md: &ClusterMetadata,
    step: Roll,
    out: &mut Outcome,
) -> Result<()> {
    match step {
        Roll::WaitForReady { broker, stale } => {
            decision!(
                s.c,
                "Rolling",
                broker,
                stale = ?stale,
                "waiting for every broker to be ready before the next restart",
            );
            let msg = format!("waiting for brokers to be ready before restarting broker {broker}");
            out.progress = Some(("Rolling", msg));
            Ok(())
        }
        Roll::Restart { broker, stale } => restart(s, md, broker, stale.len(), out).await,
    }
}

/// Restarts broker `id` unless a partition it holds would lose availability; `stale` brokers
/// (this one included) are left to restart.
async fn restart(
    s: &StepCtx<'_>,
    md: &ClusterMetadata,
    id: i32,
    stale: usize,
    out: &mut Outcome,
) -> Result<()> {
    let blockers = restart_check(s.c, s.admin, md, id).await?;
    if blockers.is_empty() {
        s.apis
            .pods
            .delete(&builders::pod_name(s.c, id), &DeleteParams::default())
            .await?;
        let note = format!("Restarting broker {id} to apply a configuration change");
        s.ctx
            .event(s.c, EventType::Normal, "BrokerRestarting", note)
            .await;
        let msg = format!("restarting broker {id} ({stale} to go)");
        out.progress = Some(("Rolling", msg));
        return Ok(());
    }
    let partitions = tp_list(&blockers, 10);
    decision!(
        s.c,
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
    Ok(())
}

/// Partitions that keep broker `id` from restarting now (`plan::safety::restart_blockers`),
/// with each topic's `min.insync.replicas` read from the cluster.
async fn restart_check(
    c: &Cluster,
    admin: &dyn KafkaAdmin,
    md: &ClusterMetadata,
    id: i32,
) -> Result<Vec<TopicPartition>> {
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
