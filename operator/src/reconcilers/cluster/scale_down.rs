//! Scale-down: refuse it, drain the leaving brokers, or remove them once they are empty.

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;

use super::{send_moves, BrokerApis, Outcome, StepCtx};
use crate::builders;
use crate::crd::cluster::ReclaimPolicy;
use crate::crd::Cluster;
use crate::plan::step::ScaleDown;
use crate::reconcilers::FIELD_MANAGER;
use crate::Result;

/// Carries out `step` for the `leaving` brokers; `target` are the brokers that stay.
pub(super) async fn run(
    s: &StepCtx<'_>,
    leaving: &[i32],
    target: &[i32],
    step: ScaleDown,
    out: &mut Outcome,
) -> Result<()> {
    let c = s.c;
    match step {
        ScaleDown::RefuseReplicationFactor { topics, remaining } => {
            let detail = topics
                .iter()
                .map(|(t, rf)| format!("{t} (replication factor {rf})"))
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!(
                "refusing to remove brokers {leaving:?}: only {remaining} would remain, fewer than the replicas of {detail}",
            );
            refuse(s, msg, out).await;
        }
        ScaleDown::RefuseVoters {
            leaving: voting,
            voters,
        } => {
            let msg = format!(
                "refusing to remove brokers {voting:?}: they vote in the metadata quorum (voters {voters:?}); list other brokers in spec.removeBrokers"
            );
            refuse(s, msg, out).await;
        }
        ScaleDown::StartDrain(moves) => {
            send_moves(s.admin, &moves).await?;
            let note = format!("Moving {} partitions off brokers {leaving:?}", moves.len());
            s.ctx
                .event(c, EventType::Normal, "DrainStarted", note)
                .await;
            out.progress = Some(draining(leaving, moves.len()));
        }
        ScaleDown::WaitToDrain { moves, in_flight } => {
            decision!(
                c,
                "Draining",
                brokers = ?leaving,
                in_flight,
                "waiting for partition moves in flight before draining",
            );
            out.progress = Some(draining(leaving, moves));
        }
        ScaleDown::WaitForDrain { in_flight } => {
            decision!(
                c,
                "Draining",
                brokers = ?leaving,
                in_flight,
                "waiting for the drain's partition moves to finish",
            );
            let msg = format!("{in_flight} partition moves in progress");
            out.progress = Some(("Draining", msg));
        }
        ScaleDown::Remove => remove(s, leaving, target, out).await?,
    }
    Ok(())
}

/// The scale-down cannot be carried out: a Warning Event and a `Ready=False` reason.
async fn refuse(s: &StepCtx<'_>, msg: String, out: &mut Outcome) {
    s.ctx
        .event(s.c, EventType::Warning, "ScaleDownRefused", msg.clone())
        .await;
    out.refused = Some(("ScaleDownRefused", msg));
}

fn draining(leaving: &[i32], moves: usize) -> (&'static str, String) {
    let msg = format!("draining brokers {leaving:?}: {moves} partitions to move");
    ("Draining", msg)
}

/// Removes the drained `leaving` brokers. The drain balanced partitions over `target`, so
/// that is recorded too.
async fn remove(s: &StepCtx<'_>, leaving: &[i32], target: &[i32], out: &mut Outcome) -> Result<()> {
    for id in leaving {
        remove_broker(s.c, *id, s.apis).await?;
    }
    let note = format!("Brokers {leaving:?} hold no partitions and were removed");
    s.ctx
        .event(s.c, EventType::Normal, "DrainFinished", note)
        .await;
    out.balanced = Some(target.to_vec());
    out.progress = Some(("Removing", format!("removed brokers {leaving:?}")));
    Ok(())
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
    let released = match policy {
        ReclaimPolicy::Delete => apis.pvcs.delete(&claim, &dp).await.map(|_| ()),
        ReclaimPolicy::Retain => {
            let patch = serde_json::json!({
                "metadata": {"labels": {builders::LABEL_RETAINED: "true"}}
            });
            // Our field manager, so `managedFields` says who labelled the claim.
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            let merge = Patch::Merge(&patch);
            apis.pvcs.patch(&claim, &params, &merge).await.map(|_| ())
        }
    };
    match released {
        Ok(()) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
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
