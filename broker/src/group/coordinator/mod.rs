//! The group coordinator: every consumer group on this broker, their committed offsets, and
//! the `__consumer_offsets` topic that makes both durable.
//!
//! Each change is appended to the group's `__consumer_offsets` partition (Kafka's placement and
//! record layout) before it is acknowledged; on start the coordinator replays those partitions.
//! The topic is compacted, so only the latest record per key is kept.
//!
//! A broker coordinates exactly the groups whose `__consumer_offsets`
//! partition it leads, as in Kafka: `sync_ownership` (driven by the group timer) loads a
//! partition's groups when this broker becomes its leader (in a new leader epoch) and drops
//! them when it stops leading, and requests for other groups get NOT_COORDINATOR, which sends
//! clients back to FindCoordinator. Offset commits are acknowledged once the high watermark
//! passes them, so a commit survives the coordinator's failover. Ownership, replay and the
//! wait for the in-sync replicas are the shared [`CoordinatorRuntime`]'s.
//!
//! By job: `membership.rs` (JoinGroup, SyncGroup, heartbeats, leaving, KIP-848 heartbeats),
//! `offsets.rs` (OffsetCommit, OffsetFetch, OffsetDelete), `txn_offsets.rs`
//! (TxnOffsetCommit and its settling by markers), `admin.rs` (ListGroups, DescribeGroups,
//! DeleteGroups), `store.rs` (the state the runtime loads from `__consumer_offsets`); this
//! file opens the coordinator, writes its records and runs its timers.
mod admin;
mod membership;
mod offsets;
mod store;
#[cfg(test)]
mod tests;
mod txn_offsets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::codec::{self, Key};
use crate::cluster::Registry;
use crate::context::now_ms;
use crate::coordinator::{CoordinatorRuntime, Loaded, PendingWrite};
use store::GroupShard;

pub use admin::GroupDescription;
pub use offsets::FetchedOffsets;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long a write to `__consumer_offsets` (offsets, group assignments) waits for its
/// in-sync replicas (Kafka's `offsets.commit.timeout.ms` default).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The config overrides `__consumer_offsets` is created with.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
    ])
}

/// Coordinator settings, named as Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub offsets_partitions: i32,
    /// `__consumer_offsets` replicas (capped at the brokers
    /// registered when it is created).
    pub offsets_replication_factor: i16,
    pub offsets_retention: Duration,
    /// How often offsets past their retention are looked for.
    pub offsets_retention_check_interval: Duration,
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 groups: how often members heartbeat, and when a silent one is dropped.
    pub consumer_heartbeat_interval: Duration,
    pub consumer_session_timeout: Duration,
}

pub struct GroupCoordinator {
    runtime: CoordinatorRuntime<GroupShard>,
    config: GroupConfig,
}

impl GroupCoordinator {
    /// `__consumer_offsets` is created through the quorum by the first FindCoordinator;
    /// groups are loaded partition by partition as this broker comes to lead them (a partition
    /// that fails to load answers COORDINATOR_LOAD_IN_PROGRESS until a later sync loads it).
    pub fn open(registry: Arc<Registry>, config: GroupConfig) -> Self {
        let coordinator = Self {
            runtime: CoordinatorRuntime::new(registry, OFFSETS_TOPIC),
            config,
        };
        coordinator.runtime.sync_ownership();
        coordinator
    }

    /// Loads the groups of `__consumer_offsets` partitions this broker has come
    /// to lead and forgets those of partitions it no longer leads. Cheap when nothing changed.
    pub fn sync_ownership(&self) {
        self.runtime.sync_ownership();
    }

    /// NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE) unless this broker coordinates the group.
    pub fn check_owner(&self, group_id: &str) -> Result<(), ResponseError> {
        self.lock_owned(group_id).map(|_| ())
    }

    /// The coordinator's state, once this broker coordinates `group_id`. A partition it has
    /// just come to lead is loaded now rather than on the timer's next sync (as the
    /// transaction coordinator does), so the first request after FindCoordinator finds it.
    fn lock_owned(
        &self,
        group_id: &str,
    ) -> Result<parking_lot::MutexGuard<'_, Loaded<GroupShard>>, ResponseError> {
        self.runtime.owned_partition(group_id)?;
        let state = self.runtime.lock();
        state.check_owner(group_id)?;
        Ok(state)
    }

    /// Appends records to the group's `__consumer_offsets` partition; with more than one
    /// replica in sync, returns what to wait for before acknowledging them.
    fn persist(
        &self,
        group: &str,
        records: Vec<(Key, Option<Bytes>)>,
    ) -> Result<Option<PendingWrite>, ResponseError> {
        if records.is_empty() {
            return Ok(None);
        }
        self.persist_at(group, records).map(|(_, pending)| pending)
    }

    /// [`GroupCoordinator::persist`] of at least one record, also saying where it ends.
    fn persist_at(
        &self,
        group: &str,
        records: Vec<(Key, Option<Bytes>)>,
    ) -> Result<(i64, Option<PendingWrite>), ResponseError> {
        let partition = self.runtime.partition_of(group)?;
        let records = records
            .into_iter()
            .map(|(k, v)| (codec::encode_key(&k), v))
            .collect();
        let written = self
            .runtime
            .append(&partition, records, now_ms())
            .map_err(|e| {
                tracing::error!(group, "writing {OFFSETS_TOPIC}: {e}");
                e.code()
            })?;
        Ok((written.last_offset, written.pending))
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Timers: session expiry and rebalance deadlines.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut state = self.runtime.lock();
        let GroupShard {
            groups,
            consumer_groups,
            ..
        } = &mut state.shard;
        for g in consumer_groups.values_mut() {
            for id in g.tick(now, self.config.consumer_session_timeout) {
                tracing::info!(group = %g.id, member = %id, "consumer group member removed (session timeout or slow revocation)");
            }
        }
        for g in groups.values_mut() {
            for id in g.tick(now) {
                tracing::info!(group = %g.id, member = %id, "member removed after session timeout");
            }
            let _ = self.persist_group(g);
        }
    }

    /// Forgets the committed offsets of groups that have been empty for
    /// `offsets.retention.minutes`: writes their tombstones, and drops them once the in-sync
    /// replicas have those (as a commit or an OffsetDelete does), so a failover cannot bring
    /// back offsets this coordinator already stopped answering with.
    pub async fn expire_offsets(&self) {
        for write in self.write_expired_offsets() {
            let (group, count) = (write.group.clone(), write.changes.len());
            match self.settle_offsets(write).await {
                Ok(()) => tracing::info!(%group, partitions = count, "expired committed offsets"),
                Err(e) => tracing::warn!(%group, "expiring committed offsets: {e:?}"),
            }
        }
    }

    /// Writes the tombstones of every expired offset of the groups this broker coordinates.
    fn write_expired_offsets(&self) -> Vec<offsets::OffsetsWrite> {
        let state = self.runtime.lock();
        let GroupShard {
            groups,
            offsets,
            consumer_groups,
            ..
        } = &state.shard;
        let horizon = now_ms() - self.config.offsets_retention.as_millis() as i64;
        let mut expired: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        for (group, committed) in offsets.iter() {
            if groups.get(group).is_some_and(|g| !g.is_empty())
                || consumer_groups.get(group).is_some_and(|g| !g.is_empty())
            {
                continue;
            }
            let old: Vec<(String, i32)> = committed
                .iter()
                .filter(|(_, v)| v.commit_timestamp < horizon)
                .map(|(k, _)| k.clone())
                .collect();
            if !old.is_empty() {
                expired.push((group.clone(), old));
            }
        }
        drop(state);
        let mut writes = Vec::with_capacity(expired.len());
        for (group, parts) in expired {
            let records = parts
                .iter()
                .map(|(t, p)| {
                    let key = Key::Offset {
                        group: group.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (key, None)
                })
                .collect();
            if let Ok((log_offset, pending)) = self.persist_at(&group, records) {
                writes.push(offsets::OffsetsWrite {
                    group,
                    log_offset,
                    changes: parts.into_iter().map(|k| (k, None)).collect(),
                    delete_group: false,
                    pending,
                });
            }
        }
        writes
    }
}
