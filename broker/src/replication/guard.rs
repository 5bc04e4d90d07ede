//! A leader cut off from the cluster steps down (see `cluster/session.rs`).
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::context::{now_ms, Context};

/// Leader: while this broker has no controller session (`session.rs`), gives up each
/// leadership whose in-sync followers have gone silent as long: the controller has most
/// likely fenced this broker and moved it, and clients must not wait out their timeouts
/// here. With a session again, takes back those the metadata still gives it in the same
/// epoch. A leader that only lost the controller (its followers still fetch) keeps serving,
/// as Kafka's brokers do while the controller quorum is down.
pub(super) async fn guard_leaderships(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let q = ctx.registry.quorum().clone();
    let session = q.session_timeout();
    let session_ms = i64::try_from(session.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(
        (session / 10).clamp(Duration::from_millis(50), Duration::from_millis(500)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let alive = q.session_alive();
        if alive {
            q.set_cut_off(false);
        }
        let md = q.metadata();
        let now = now_ms();
        for t in ctx.registry.topics() {
            for p in &t.partitions {
                if alive {
                    if !p.is_stepped_down() {
                        continue;
                    }
                    let Some(state) = usize::try_from(p.index)
                        .ok()
                        .and_then(|i| md.partition(&t.meta.name, i))
                    else {
                        continue;
                    };
                    if state.leader == q.broker_id && p.resume_leadership(state.leader_epoch) {
                        tracing::info!(topic = %t.meta.name, partition = p.index, epoch = state.leader_epoch, "controller session back: leading again");
                    }
                    continue;
                }
                if !p.is_leader() {
                    continue;
                }
                let Some(v) = p.replica_view() else { continue };
                let silent: Vec<i32> = v
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| *id != q.broker_id)
                    .filter(|id| {
                        v.followers
                            .get(id)
                            .is_some_and(|f| now - f.last_fetch_ms.max(f.caught_up_ms) > session_ms)
                    })
                    .collect();
                if !silent.is_empty() && p.step_down() {
                    q.set_cut_off(true);
                    ctx.metrics.leader_step_downs.inc();
                    tracing::warn!(topic = %t.meta.name, partition = p.index, ?silent, "no controller session and in-sync followers silent: stepping down as leader");
                }
            }
        }
    }
}
