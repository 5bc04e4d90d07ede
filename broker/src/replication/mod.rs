//! Replication between brokers: follower fetching, the leader's ISR upkeep and stepping down
//! without a controller session.
//!
//! - **Followers**: one fetcher task per leader broker sends Kafka Fetch v15 requests
//!   (`ReplicaState{replica_id}`, `CurrentLeaderEpoch`, `LastFetchedEpoch`, fetch offset = the
//!   local log end) to the leader's Kafka listener, appends what comes back with
//!   `append_as_follower`, takes the leader's high watermark, and truncates on a
//!   `DivergingEpoch` or OFFSET_OUT_OF_RANGE.
//! - **Leaders**: a follower's Fetch records its log end and caught-up time and moves the
//!   high watermark (`leader.rs`, `Partition::record_follower_fetch`); every tick this task drops
//!   followers not caught up within `replica.lag.time.max.ms` from the ISR and adds back those
//!   whose log end reached the high watermark, by proposing `ChangePartition` with the
//!   expected partition epoch.
//!
//! With tracing on, each fetch round is a `replication.fetch` span on the follower (leader,
//! partitions, bytes and records appended, partition errors).
//!
//! Layout: `follower.rs` (the fetchers), `leader.rs` (the leader's side of a follower's
//! fetch: epoch fencing, divergence, high watermark, throttle), `isr.rs` (ISR upkeep),
//! `guard.rs` (stepping down without a controller session), `wait.rs` (waiting for the
//! in-sync replicas), `throttle.rs` (replication throttles).
mod follower;
mod guard;
mod isr;
pub mod leader;
pub mod throttle;
pub mod wait;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::context::Context;

/// Runs the fetchers and the ISR upkeep until shutdown.
pub async fn run(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let q = ctx.registry.quorum().clone();
    let lag = ctx.config.replica_lag_time_max_ms;
    let mut tick = tokio::time::interval(Duration::from_millis((lag / 4).clamp(50, 1000)));
    let mut updates = q.subscribe();
    let mut fetchers: HashMap<i32, JoinHandle<()>> = HashMap::new();
    // Its own task: ISR upkeep may wait on a quorum this broker cannot reach.
    let guard = tokio::spawn(guard::guard_leaderships(ctx.clone(), shutdown.clone()));
    loop {
        let leaders = follower::followed(&ctx.registry);
        fetchers.retain(|id, task| {
            let keep = leaders.contains_key(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for leader in leaders.keys() {
            fetchers.entry(*leader).or_insert_with(|| {
                tokio::spawn(follower::fetch_from(
                    ctx.registry.clone(),
                    *leader,
                    shutdown.clone(),
                ))
            });
        }
        isr::maintain_isr(&ctx, lag).await;
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
    }
    guard.abort();
    let _ = guard.await;
    for (_, task) in fetchers {
        task.abort();
        let _ = task.await;
    }
}
