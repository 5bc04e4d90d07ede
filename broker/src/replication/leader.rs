//! Leader side of a follower's Fetch: the follower names the leader epoch it believes in
//! (fenced if stale), the epoch of its last fetched batch (told where the leader's copy of that
//! epoch ends if they diverge, so it truncates), and its log end as the fetch offset, which
//! may move the high watermark. The replication throttle for out-of-sync replicas listed in
//! `leader.replication.throttled.replicas` is decided once per fetch (`throttle.rs`).
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::ClusterMetadata;

use super::throttle;
use crate::cluster::{Partition, Quorum};
use crate::config::BrokerConfig;
use crate::context::now_ms;

/// Why a follower's fetch of a partition gets no records.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH: one side's metadata is stale.
    Epoch(ResponseError),
    /// The follower's last epoch ends at `end` here (or is `epoch`'s end, an older one): it
    /// must truncate there before fetching on.
    Diverging { epoch: i32, end: i64 },
}

/// Checks a follower's fetch position against this leader's log and records it. `Ok` holds
/// the high watermark before and after, when the fetch offset was within the log.
pub fn follower_fetch(
    partition: &Partition,
    follower: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Result<Option<(i64, i64)>, Refusal> {
    let led = partition.leader_epoch();
    if current_leader_epoch >= 0 && current_leader_epoch != led {
        return Err(Refusal::Epoch(if current_leader_epoch < led {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        }));
    }
    if last_fetched_epoch >= 0 {
        if let Ok(Some((epoch, end))) = partition.end_offset_for_epoch(last_fetched_epoch) {
            if epoch != last_fetched_epoch || end < fetch_offset {
                return Err(Refusal::Diverging { epoch, end });
            }
        }
    }
    // Its fetch offset is its log end: that may move the high watermark.
    let Ok((start, before, leo)) = partition.positions() else {
        return Ok(None);
    };
    if fetch_offset < start || fetch_offset > leo {
        return Ok(None);
    }
    let after = partition.record_follower_fetch(follower, fetch_offset, now_ms());
    Ok(Some((before, after)))
}

/// The leader side of the replication throttle for one replica fetch, decided once per pass
/// over the request.
pub struct LeaderThrottle {
    quorum: Arc<Quorum>,
    metadata: Arc<ClusterMetadata>,
    rate: u64,
    /// The leader's quota is used up: throttled partitions are answered without records.
    pub over_quota: bool,
}

impl LeaderThrottle {
    pub fn new(quorum: &Arc<Quorum>, config: &BrokerConfig) -> Self {
        let metadata = quorum.metadata();
        let rate = throttle::rate(&metadata, config, quorum.broker_id, throttle::LEADER_RATE);
        let over_quota = quorum.throttles.leader.exceeded(rate);
        Self {
            quorum: quorum.clone(),
            metadata,
            rate,
            over_quota,
        }
    }

    /// Is `follower`'s fetch of `topic`-`partition` throttled: listed for this broker in
    /// `leader.replication.throttled.replicas` and the follower out of the ISR?
    pub fn applies(&self, topic: &str, partition: i32, follower: i32) -> bool {
        let Some(tm) = self.metadata.topics.get(topic) else {
            return false;
        };
        let in_sync = usize::try_from(partition)
            .ok()
            .and_then(|i| tm.partitions.get(i))
            .is_some_and(|p| p.isr.contains(&follower));
        !in_sync
            && throttle::throttled(
                &tm.configs,
                throttle::LEADER_REPLICAS,
                partition,
                self.quorum.broker_id,
            )
    }

    /// Counts the throttled bytes a response carried.
    pub fn record(&self, bytes: usize) {
        self.quorum.throttles.leader.record(self.rate, bytes);
    }
}
