//! Waiting for the in-sync replicas: transaction state and markers count only once the high
//! watermark passes them, so a leader failover cannot lose a decision or a marker (Kafka
//! writes both with acks=all).
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::cluster::Partition;

/// How long a write waits for its replicas (Kafka's request timeout for these writes).
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// An append to a replicated partition that the high watermark has not passed yet.
pub struct Unreplicated {
    partition: Arc<Partition>,
    last_offset: i64,
}

impl Unreplicated {
    /// `Some` when `partition` has followers (cluster mode), `None` when the append is final.
    pub fn after_append(partition: &Arc<Partition>, last_offset: i64) -> Option<Self> {
        (partition.isr_counts().1 > 1).then(|| Self {
            partition: partition.clone(),
            last_offset,
        })
    }

    /// NOT_LEADER_OR_FOLLOWER if leadership moved, REQUEST_TIMED_OUT after the timeout.
    pub async fn wait(self) -> Result<(), ResponseError> {
        let mut hw = self.partition.subscribe_hw();
        let reached = tokio::time::timeout(REPLICATION_TIMEOUT, async {
            loop {
                if *hw.borrow_and_update() > self.last_offset || !self.partition.is_leader() {
                    return;
                }
                if hw.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if !self.partition.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        reached.map_err(|_| ResponseError::RequestTimedOut)
    }
}

/// Waits for every pending append; the first error wins.
pub async fn wait_all(pending: Vec<Unreplicated>) -> Result<(), ResponseError> {
    let mut result = Ok(());
    for p in pending {
        if let Err(e) = p.wait().await {
            result = result.and(Err(e));
        }
    }
    result
}
