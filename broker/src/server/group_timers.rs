//! Drives the group coordinator's timers: session expiry, rebalance deadlines, offset expiry,
//! and (cluster mode) which groups this broker coordinates as `__consumer_offsets` leadership
//! moves.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::group::GroupCoordinator;

const TICK: Duration = Duration::from_millis(100);

pub async fn run(groups: Arc<GroupCoordinator>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                groups.sync_ownership();
                groups.tick();
            }
            _ = shutdown.changed() => return,
        }
    }
}
