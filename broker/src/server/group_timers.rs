//! Drives the group coordinator's timers: session expiry, rebalance deadlines, which groups
//! this broker coordinates as `__consumer_offsets` leadership moves, and (every
//! `offsets.retention.check.interval.ms`, on its own task, since it waits for replicas)
//! offset expiry.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::group::GroupCoordinator;

const TICK: Duration = Duration::from_millis(100);

pub async fn run(groups: Arc<GroupCoordinator>, mut shutdown: watch::Receiver<bool>) {
    let expiry = tokio::spawn(expire_offsets(groups.clone(), shutdown.clone()));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                groups.sync_ownership();
                groups.tick();
            }
            _ = shutdown.changed() => break,
        }
    }
    expiry.abort();
    let _ = expiry.await;
}

async fn expire_offsets(groups: Arc<GroupCoordinator>, mut shutdown: watch::Receiver<bool>) {
    let every = groups.config().offsets_retention_check_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => groups.expire_offsets().await,
            _ = shutdown.changed() => return,
        }
    }
}
