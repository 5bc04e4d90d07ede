//! Waiting for the in-sync replicas: the broker's own writes (transaction state, markers,
//! offsets, group assignments) count only once the high watermark passes them, so a leader
//! failover cannot lose them (Kafka writes them with acks=all).
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
    /// Waits for `last_offset` of `partition`, followers or not.
    pub fn new(partition: Arc<Partition>, last_offset: i64) -> Self {
        Self {
            partition,
            last_offset,
        }
    }

    /// `Some` when `partition` has followers (cluster mode), `None` when the append is final.
    pub fn after_append(partition: &Arc<Partition>, last_offset: i64) -> Option<Self> {
        (partition.isr_counts().1 > 1).then(|| Self {
            partition: partition.clone(),
            last_offset,
        })
    }

    /// NOT_LEADER_OR_FOLLOWER if leadership moved, REQUEST_TIMED_OUT after the timeout.
    pub async fn wait(self) -> Result<(), ResponseError> {
        self.wait_until(tokio::time::Instant::now() + REPLICATION_TIMEOUT)
            .await
    }

    /// [`Unreplicated::wait`] with a deadline of the caller's.
    pub async fn wait_until(self, deadline: tokio::time::Instant) -> Result<(), ResponseError> {
        let mut hw = self.partition.subscribe_hw();
        let reached = tokio::time::timeout_at(deadline, async {
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
