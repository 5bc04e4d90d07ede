//! Drives the transaction coordinator's timer: aborts transactions past their timeout,
//! retries markers that could not be written, and (cluster mode) loads the
//! `__transaction_state` partitions this broker comes to lead.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::txn::TxnCoordinator;

/// Ownership changes are picked up at least this often, whatever the abort interval.
const MAX_TICK: Duration = Duration::from_secs(1);

pub async fn run(txn: Arc<TxnCoordinator>, mut shutdown: watch::Receiver<bool>) {
    let period = txn.config().abort_check_interval.min(MAX_TICK);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => txn.tick().await,
            _ = shutdown.changed() => return,
        }
    }
}
