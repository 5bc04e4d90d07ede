//! Leader side: ISR upkeep. Every tick the leader drops followers not caught up within
//! `replica.lag.time.max.ms` from the ISR and adds back those whose log end reached the high
//! watermark, by proposing `ChangePartition` with the expected partition epoch; an expand may
//! complete a reassignment at once.
use std::time::Duration;

use spate_meta::{MetaRequest, MetaResponse};

use super::follower::FETCH_MAX_WAIT_MS;
use crate::context::{now_ms, Context};

/// A follower joins the ISR only if it fetched this recently (the fetch wait plus slack).
const FRESH_FETCH_MS: i64 = FETCH_MAX_WAIT_MS as i64 + 1000;
/// How long the leader waits to see its own ISR expand before completing reassignments.
const EXPAND_VISIBLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Leader: shrinks the ISR of lagging followers and expands it with caught-up ones.
pub(super) async fn maintain_isr(ctx: &Context, lag_ms: u64) {
    let q = ctx.registry.quorum().clone();
    let me = q.broker_id;
    let now = now_ms();
    let lag = i64::try_from(lag_ms).unwrap_or(i64::MAX);
    let mut changed = false;
    // Partitions whose ISR grew, with the partition epoch the change produced.
    let mut expanded: Vec<(String, i32, i32)> = Vec::new();
    for t in ctx.registry.topics() {
        for p in &t.partitions {
            if !p.is_leader() {
                continue;
            }
            let Some(v) = p.replica_view() else { continue };
            if v.replicas.len() <= 1 || !v.isr.contains(&me) {
                continue;
            }
            let lagging: Vec<i32> = v
                .isr
                .iter()
                .copied()
                .filter(|id| *id != me)
                .filter(|id| {
                    v.followers
                        .get(id)
                        .is_some_and(|f| now - f.caught_up_ms > lag)
                })
                .collect();
            let joining: Vec<i32> = v
                .replicas
                .iter()
                .copied()
                .filter(|id| *id != me && !v.isr.contains(id))
                .filter(|id| {
                    // Only on fresh evidence: a follower that stopped fetching keeps its
                    // last log end here, which may still equal the high watermark.
                    v.followers.get(id).is_some_and(|f| {
                        f.leo >= v.high_watermark
                            && f.leo >= v.epoch_start
                            && f.leo >= 0
                            && now - f.last_fetch_ms <= lag.min(FRESH_FETCH_MS)
                            && now - f.caught_up_ms <= lag
                    })
                })
                .collect();
            if lagging.is_empty() && joining.is_empty() {
                continue;
            }
            let mut isr: Vec<i32> = v
                .isr
                .iter()
                .copied()
                .filter(|id| !lagging.contains(id))
                .collect();
            isr.extend(joining.iter().copied());
            let request = MetaRequest::ChangePartition {
                topic: t.meta.name.clone(),
                partition: p.index,
                leader: None,
                isr: Some(isr.clone()),
                expected_partition_epoch: v.partition_epoch,
            };
            match q.propose(request).await {
                Ok(response) => {
                    changed = true;
                    if let (false, MetaResponse::Partition(state)) = (joining.is_empty(), response)
                    {
                        expanded.push((t.meta.name.clone(), p.index, state.partition_epoch));
                    }
                    if !lagging.is_empty() {
                        ctx.metrics.isr_shrinks.inc();
                        tracing::info!(topic = %t.meta.name, partition = p.index, ?lagging, ?isr, "shrinking the ISR");
                    }
                    if !joining.is_empty() {
                        ctx.metrics.isr_expands.inc();
                        tracing::info!(topic = %t.meta.name, partition = p.index, ?joining, ?isr, "expanding the ISR");
                    }
                }
                Err(e) => {
                    tracing::debug!(topic = %t.meta.name, partition = p.index, "ISR change refused: {e}");
                }
            }
        }
    }
    if !expanded.is_empty() {
        // A replica added by a reassignment may just have joined: finish the move now rather
        // than at the controller's next tick. Our own metadata must show the ISR change first.
        q.wait_for(EXPAND_VISIBLE_TIMEOUT, |md| {
            expanded.iter().all(|(topic, index, epoch)| {
                usize::try_from(*index)
                    .ok()
                    .and_then(|i| md.partition(topic, i))
                    .is_none_or(|s| s.partition_epoch >= *epoch)
            })
        })
        .await;
        crate::controller::reassignment::complete_caught_up(&q).await;
    }
    if changed {
        ctx.registry.sync().await;
        ctx.registry.notify_append();
    }
}
