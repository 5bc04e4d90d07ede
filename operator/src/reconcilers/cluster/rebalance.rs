//! Rebalance: move partitions so replicas and preferred leaders are even over a changed
//! broker set (`plan::reassign`).

use kube::runtime::events::EventType;

use super::{send_moves, Outcome, StepCtx};
use crate::crd::Cluster;
use crate::plan::step::Rebalance;
use crate::Result;

/// Carries out `step` for the `target` brokers.
pub(super) async fn run(
    s: &StepCtx<'_>,
    target: &[i32],
    step: Rebalance,
    out: &mut Outcome,
) -> Result<()> {
    match step {
        Rebalance::Wait { in_flight } => {
            decision!(
                s.c,
                "Rebalancing",
                brokers = ?target,
                in_flight,
                "waiting for partition moves in flight before rebalancing",
            );
            let msg = format!("{in_flight} partition moves in progress");
            out.progress = Some(("Rebalancing", msg));
        }
        Rebalance::Start(moves) => {
            send_moves(s.admin, &moves).await?;
            let note = format!(
                "Moving {} partitions to balance brokers {target:?}",
                moves.len()
            );
            s.ctx
                .event(s.c, EventType::Normal, "Rebalancing", note)
                .await;
            let msg = format!("moving {} partitions", moves.len());
            out.progress = Some(("Rebalancing", msg));
        }
    }
    Ok(())
}

/// Records `target` as balanced when the partitions already were: nothing to move.
pub(super) fn record_balanced(c: &Cluster, target: &[i32], out: &mut Outcome) {
    decision!(
        c,
        "Balanced",
        brokers = ?target,
        "partitions already balanced over the brokers; nothing to move",
    );
    out.balanced = Some(target.to_vec());
}
