//! The group coordinator: every consumer group on this broker, their committed offsets, and
//! the `__consumer_offsets` topic that makes both durable.
//!
//! Each change is appended to the group's `__consumer_offsets` partition (Kafka's placement and
//! record layout) before it is acknowledged; on start the coordinator replays those partitions.
//! The topic is compacted, so only the latest record per key is kept.
//!
//! In cluster mode a broker coordinates exactly the groups whose `__consumer_offsets`
//! partition it leads, as in Kafka: `sync_ownership` (driven by the group timer) loads a
//! partition's groups when this broker becomes its leader (in a new leader epoch) and drops
//! them when it stops leading, and requests for other groups get NOT_COORDINATOR, which sends
//! clients back to FindCoordinator. Offset commits are acknowledged once the high watermark
//! passes them, so a commit survives the coordinator's failover.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;
use tokio::sync::oneshot;

use super::codec::{self, Key, OffsetValue};
use super::consumer_group::{ConsumerGroup, Heartbeat, HeartbeatOutcome, TopicsView};
use super::consumer_protocol;
use super::group::{Group, GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use crate::cluster::Registry;
use crate::context::now_ms;
use crate::coordinator::{
    CoordinatorRuntime, OpenError, Ownership, PendingWrite, Placement, Shard, WriteError,
};

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
    /// Cluster mode with replication: `__consumer_offsets` replicas (capped at the brokers
    /// registered when it is created).
    pub offsets_replication_factor: i16,
    pub offsets_retention: Duration,
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 groups: how often members heartbeat, and when a silent one is dropped.
    pub consumer_heartbeat_interval: Duration,
    pub consumer_session_timeout: Duration,
}

/// (topic, partition) → committed offset.
type GroupOffsets = BTreeMap<(String, i32), OffsetValue>;
/// Committed offsets by topic, partition by partition; `None` where nothing is committed.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

pub struct GroupCoordinator {
    runtime: CoordinatorRuntime<GroupShard>,
    config: GroupConfig,
}

/// Every group of the `__consumer_offsets` partitions this broker coordinates, and their
/// committed offsets.
#[derive(Default)]
struct GroupShard {
    groups: HashMap<String, Group>,
    consumer_groups: HashMap<String, ConsumerGroup>,
    offsets: HashMap<String, GroupOffsets>,
    /// Where in `__consumer_offsets` each committed offset was written: of two commits
    /// replicated in either order, the later write wins, as on replay.
    written_at: HashMap<String, BTreeMap<(String, i32), i64>>,
    /// TxnOffsetCommit: offsets written inside a transaction, by producer id then group,
    /// applied when the transaction's commit marker reaches the group's partition and
    /// dropped on abort.
    pending_txn: HashMap<i64, HashMap<String, GroupOffsets>>,
}

impl Shard for GroupShard {
    fn replay(&mut self, at: Placement, r: &Record) {
        if r.control {
            // A transaction marker: key (version, type), type 1 = commit.
            let commit = r.key.as_deref().is_some_and(|k| k.get(3) == Some(&1));
            self.complete_txn(at, r.producer_id, commit);
        } else if r.transactional {
            self.replay_txn_offset(r.producer_id, r.key.as_deref(), r.value.as_deref());
        } else {
            // Restored members' sessions start now, on the clock the group timers use.
            self.replay_record(r.key.as_deref(), r.value.as_deref(), Instant::now());
        }
    }

    /// Forgets every group stored in the partition (another broker coordinates them now).
    fn unload(&mut self, at: Placement) {
        self.groups.retain(|id, _| !at.holds(id));
        self.consumer_groups.retain(|id, _| !at.holds(id));
        self.offsets.retain(|id, _| !at.holds(id));
        self.written_at.retain(|id, _| !at.holds(id));
        for groups in self.pending_txn.values_mut() {
            groups.retain(|id, _| !at.holds(id));
        }
    }
}

impl GroupShard {
    /// Offsets written at `log_offset` are replicated: each becomes the committed one (or,
    /// for a tombstone, is forgotten), except where a later write already is.
    fn apply_offsets(&mut self, group: &str, log_offset: i64, changes: Vec<OffsetChange>) {
        let written = self.written_at.entry(group.to_string()).or_default();
        for (key, value) in changes {
            if written.get(&key).is_some_and(|at| *at > log_offset) {
                continue;
            }
            written.insert(key.clone(), log_offset);
            match value {
                Some(v) => {
                    let committed = self.offsets.entry(group.to_string()).or_default();
                    committed.insert(key, v);
                }
                // A tombstone creates no entry for a group that has no offsets.
                None => {
                    if let Some(committed) = self.offsets.get_mut(group) {
                        committed.remove(&key);
                    }
                }
            }
        }
    }

    /// A transaction marker reached partition `at`: the producer's pending offsets of the
    /// groups stored there become committed (or are dropped).
    fn complete_txn(&mut self, at: Placement, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending_txn.get_mut(&producer_id) else {
            return;
        };
        let settled: Vec<String> = groups
            .keys()
            .filter(|g| at.partitions <= 0 || at.holds(g))
            .cloned()
            .collect();
        for g in settled {
            if let Some(offsets) = groups.remove(&g) {
                if commit {
                    self.offsets.entry(g).or_default().extend(offsets);
                }
            }
        }
        if groups.is_empty() {
            self.pending_txn.remove(&producer_id);
        }
    }
}

/// One partition's committed offset after a write: `None` for a tombstone.
type OffsetChange = ((String, i32), Option<OffsetValue>);

/// Records appended to a group's `__consumer_offsets` partition that change its offsets
/// only once replicated ([`GroupCoordinator::settle_offsets`]): a fetch never sees, and a
/// failover never loses, an offset that is not in the in-sync replicas.
struct OffsetsWrite {
    group: String,
    /// Where the batch ends in the partition.
    log_offset: i64,
    /// Offsets committed or forgotten.
    changes: Vec<OffsetChange>,
    /// Forget the whole group (DeleteGroups).
    delete_group: bool,
    /// `None` when the append is final (no followers).
    pending: Option<PendingWrite>,
}

/// A group as DescribeGroups shows it.
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

impl GroupCoordinator {
    /// Creates `__consumer_offsets` on a single node and loads every group and offset from
    /// it. In cluster mode the topic is created through the quorum by the first
    /// FindCoordinator, and groups are loaded partition by partition as this broker comes to
    /// lead them.
    pub fn open(registry: Arc<Registry>, config: GroupConfig) -> Result<Self, OpenError> {
        Self::open_with(CoordinatorRuntime::new(registry, OFFSETS_TOPIC), config)
    }

    /// [`GroupCoordinator::open`] on a runtime of the caller's (tests choose its ownership).
    fn open_with(
        runtime: CoordinatorRuntime<GroupShard>,
        config: GroupConfig,
    ) -> Result<Self, OpenError> {
        runtime.create_topic_if_hosted(config.offsets_partitions, offsets_topic_configs())?;
        let coordinator = Self { runtime, config };
        let failed = coordinator.runtime.sync_ownership();
        if coordinator.runtime.ownership() == Ownership::Hosted {
            // A single node coordinates every group: it does not start without them.
            if let Some((partition, source)) = failed.into_iter().next() {
                return Err(OpenError::Load {
                    topic: OFFSETS_TOPIC,
                    partition,
                    source,
                });
            }
            let st = coordinator.runtime.lock();
            let (groups, offsets) = (
                st.shard.groups.len(),
                st.shard.offsets.values().map(|o| o.len()).sum::<usize>(),
            );
            tracing::info!(
                groups,
                offsets,
                "loaded consumer groups from {OFFSETS_TOPIC}"
            );
        }
        Ok(coordinator)
    }

    /// Cluster mode: loads the groups of `__consumer_offsets` partitions this broker has come
    /// to lead and forgets those of partitions it no longer leads. Cheap when nothing changed.
    pub fn sync_ownership(&self) {
        self.runtime.sync_ownership();
    }

    /// Appends records to the group's `__consumer_offsets` partition; in cluster mode with
    /// more than one replica, returns what to wait for before acknowledging them.
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

    /// Waits until a write to a group's offsets is replicated, then applies it. If the
    /// group moved to another coordinator meanwhile, that one has replayed the write.
    async fn settle_offsets(&self, w: OffsetsWrite) -> Result<(), ResponseError> {
        if let Some(pending) = w.pending {
            pending
                .wait(tokio::time::Instant::now() + COMMIT_TIMEOUT)
                .await?;
        }
        let mut st = self.runtime.lock();
        if st.check_owner(&w.group).is_err() {
            return Ok(());
        }
        let state = &mut st.shard;
        if w.delete_group {
            if let Some(mut g) = state.groups.remove(&w.group) {
                g.kill();
            }
            state.offsets.remove(&w.group);
            state.written_at.remove(&w.group);
            state.consumer_groups.remove(&w.group);
            return Ok(());
        }
        state.apply_offsets(&w.group, w.log_offset, w.changes);
        Ok(())
    }

    /// Appends the group's record if it changed; a failure is logged (the next change
    /// writes the whole group again) and returned for SyncGroup, which must not hand out an
    /// assignment that was not stored.
    fn persist_group(&self, g: &mut Group) -> Result<Option<PendingWrite>, ResponseError> {
        if !g.dirty {
            return Ok(None);
        }
        g.dirty = false;
        let value = g.value(now_ms());
        let key = Key::Group {
            group: g.id.clone(),
        };
        self.persist(&g.id, vec![(key, Some(codec::encode_group(&value)))])
            .inspect_err(
                |e| tracing::warn!(group = %g.id, "could not persist group metadata: {e:?}"),
            )
    }

    /// After the leader's SyncGroup: stores the assignment and, once it is durable (in sync
    /// replicas included), lets the group answer every member's SyncGroup.
    async fn store_assignment(&self, group_id: &str) {
        let (pending, generation) = {
            let mut state = self.runtime.lock();
            let Some(g) = state.shard.groups.get_mut(group_id).filter(|g| g.storing()) else {
                return;
            };
            let generation = g.generation;
            match self.persist_group(g) {
                Ok(Some(pending)) => (pending, generation),
                Ok(None) => return g.assignment_stored(generation),
                Err(e) => return g.assignment_store_failed(generation, e, Instant::now()),
            }
        };
        let stored = pending
            .wait(tokio::time::Instant::now() + COMMIT_TIMEOUT)
            .await;
        let mut state = self.runtime.lock();
        if let Some(g) = state.shard.groups.get_mut(group_id) {
            match stored {
                Ok(()) => g.assignment_stored(generation),
                // As Kafka maps a timed-out store: the client finds the coordinator again.
                Err(ResponseError::RequestTimedOut) => g.assignment_store_failed(
                    generation,
                    ResponseError::CoordinatorNotAvailable,
                    Instant::now(),
                ),
                Err(e) => g.assignment_store_failed(generation, e, Instant::now()),
            }
        }
    }

    pub fn check_session_timeout(&self, timeout: Duration) -> Result<(), ResponseError> {
        if timeout < self.config.min_session_timeout || timeout > self.config.max_session_timeout {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        Ok(())
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        if group_id.is_empty() {
            return JoinOutcome::error(ResponseError::InvalidGroupId, &req.member_id);
        }
        if let Err(e) = self.check_session_timeout(req.session_timeout) {
            return JoinOutcome::error(e, &req.member_id);
        }
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.runtime.lock();
            if let Err(e) = state.check_owner(group_id) {
                return JoinOutcome::error(e, &member_id);
            }
            if state
                .shard
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty())
            {
                return JoinOutcome::error(ResponseError::InconsistentGroupProtocol, &member_id);
            }
            let g = state
                .shard
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id));
            g.join(req, tx, Instant::now(), self.config.initial_rebalance_delay);
            let _ = self.persist_group(g);
        }
        rx.await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::RebalanceInProgress, &member_id))
    }

    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.runtime.lock();
            if let Err(e) = state.check_owner(group_id) {
                return SyncOutcome::error(e);
            }
            let Some(g) = state.shard.groups.get_mut(group_id) else {
                return SyncOutcome::error(ResponseError::UnknownMemberId);
            };
            g.sync(
                member_id,
                instance_id,
                generation,
                assignments,
                tx,
                Instant::now(),
            );
        }
        self.store_assignment(group_id).await;
        rx.await
            .unwrap_or_else(|_| SyncOutcome::error(ResponseError::RebalanceInProgress))
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatOutcome, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let topics: TopicsView = self
            .runtime
            .registry()
            .topics()
            .iter()
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect();
        let mut state = self.runtime.lock();
        state.check_owner(group_id)?;
        if state
            .shard
            .groups
            .get(group_id)
            .is_some_and(|g| !g.is_empty())
        {
            // The id belongs to a live classic group.
            return Err(ResponseError::GroupIdNotFound);
        }
        let g = state
            .shard
            .consumer_groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id));
        g.heartbeat(hb, Instant::now(), &topics)
    }

    /// Runs `f` on a live KIP-848 group; `GROUP_ID_NOT_FOUND` for anything else, which tells
    /// admin clients to fall back to DescribeGroups.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Result<T, ResponseError> {
        let state = self.runtime.lock();
        state.check_owner(group_id)?;
        state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty())
            .map(f)
            .ok_or(ResponseError::GroupIdNotFound)
    }

    /// NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE) unless this broker coordinates the group.
    pub fn check_owner(&self, group_id: &str) -> Result<(), ResponseError> {
        self.runtime.lock().check_owner(group_id)
    }

    pub fn consumer_heartbeat_interval(&self) -> Duration {
        self.config.consumer_heartbeat_interval
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut state = self.runtime.lock();
        state.check_owner(group_id)?;
        let g = state
            .shard
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        g.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut state = self.runtime.lock();
        state.check_owner(group_id)?;
        let g = state
            .shard
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let result = g.leave(member_id, instance_id, Instant::now());
        let _ = self.persist_group(g);
        result
    }

    /// Commits offsets for a group member (generation >= 0) or a standalone consumer
    /// (generation -1, empty member id, allowed while the group has no members). Answers
    /// once the accepted ones are replicated (and only then are they the committed ones).
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Vec<Result<(), ResponseError>> {
        let (mut results, write) =
            self.write_commit(group_id, generation, member_id, instance_id, offsets);
        if let Some(write) = write {
            if let Err(e) = self.settle_offsets(write).await {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e);
                }
            }
        }
        results
    }

    fn write_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> (Vec<Result<(), ResponseError>>, Option<OffsetsWrite>) {
        let fail_all = |e: ResponseError, n: usize| (vec![Err(e); n], None);
        if group_id.is_empty() {
            return fail_all(ResponseError::InvalidGroupId, offsets.len());
        }
        let mut state = self.runtime.lock();
        if let Err(e) = state.check_owner(group_id) {
            return fail_all(e, offsets.len());
        }
        let consumer_group = state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty() || !member_id.is_empty());
        let refused = match consumer_group {
            Some(cg) => cg.check_commit(member_id, generation).err(),
            None => Self::check_classic_commit(
                &mut state.shard,
                group_id,
                generation,
                member_id,
                instance_id,
            ),
        };
        if let Some(e) = refused {
            return fail_all(e, offsets.len());
        }
        drop(state);
        self.store_offsets(group_id, offsets)
    }

    fn check_classic_commit(
        state: &mut GroupShard,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let g = state
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        if generation >= 0 || !member_id.is_empty() || !g.is_empty() {
            if let Err(e) = g.heartbeat(member_id, instance_id, generation, Instant::now()) {
                // A commit during the join phase is fine (Kafka accepts it from a member of the
                // previous generation); during CompletingRebalance it is not.
                if e != ResponseError::RebalanceInProgress {
                    return Some(e);
                }
            }
            if g.state == GroupState::CompletingRebalance {
                return Some(ResponseError::RebalanceInProgress);
            }
        }
        None
    }

    fn store_offsets(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> (Vec<Result<(), ResponseError>>, Option<OffsetsWrite>) {
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            if self
                .runtime
                .registry()
                .topic(&topic)
                .and_then(|t| t.partition(partition).cloned())
                .is_none()
            {
                results.push(Err(ResponseError::UnknownTopicOrPartition));
                continue;
            }
            records.push((
                Key::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition,
                },
                Some(codec::encode_offset(&value)),
            ));
            accepted.push((results.len(), topic, partition, value));
            results.push(Ok(()));
        }
        if records.is_empty() {
            return (results, None);
        }
        let (log_offset, pending) = match self.persist_at(group_id, records) {
            Ok(written) => written,
            Err(e) => {
                for (i, ..) in &accepted {
                    results[*i] = Err(e);
                }
                return (results, None);
            }
        };
        let write = OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes: accepted
                .into_iter()
                .map(|(_, t, p, v)| ((t, p), Some(v)))
                .collect(),
            delete_group: false,
            pending,
        };
        (results, Some(write))
    }

    /// Committed offsets of a group: all of them, or those asked for (missing ones as None).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, ResponseError> {
        let state = self.runtime.lock();
        state.check_owner(group_id)?;
        let empty = GroupOffsets::new();
        let committed = state.shard.offsets.get(group_id).unwrap_or(&empty);
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, parts)| {
                    let values = parts
                        .into_iter()
                        .map(|p| (p, committed.get(&(topic.clone(), p)).cloned()))
                        .collect();
                    (topic, values)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> =
                    BTreeMap::new();
                for ((t, p), v) in committed {
                    by_topic
                        .entry(t.clone())
                        .or_default()
                        .push((*p, Some(v.clone())));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// The partitions of `group_id` with transactional offset commits whose transaction is
    /// not yet committed or aborted. A `require_stable` OffsetFetch (KIP-447) answers
    /// UNSTABLE_OFFSET_COMMIT for them, so that a consumer taking over after a failed
    /// transactional producer does not start from offsets the pending commit replaces.
    pub fn unstable_offsets(&self, group_id: &str) -> BTreeSet<(String, i32)> {
        let state = self.runtime.lock();
        state
            .shard
            .pending_txn
            .values()
            .filter_map(|groups| groups.get(group_id))
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    /// (group id, protocol type, state name, group type) of every group.
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let state = self.runtime.lock();
        let mut ids: Vec<&String> = state
            .shard
            .groups
            .keys()
            .chain(state.shard.offsets.keys())
            .chain(state.shard.consumer_groups.keys())
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| {
                if let Some(g) = state
                    .shard
                    .consumer_groups
                    .get(id)
                    .filter(|g| !g.is_empty())
                {
                    return Some((
                        id.clone(),
                        "consumer".to_string(),
                        g.state_name(),
                        "consumer",
                    ));
                }
                match state.shard.groups.get(id) {
                    Some(g) if g.state == GroupState::Dead => None,
                    Some(g) => Some((
                        id.clone(),
                        g.protocol_type.clone().unwrap_or_default(),
                        g.state.name(),
                        "classic",
                    )),
                    None => Some((
                        id.clone(),
                        String::new(),
                        GroupState::Empty.name(),
                        "classic",
                    )),
                }
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let state = self.runtime.lock();
        if let Some(cg) = state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty())
        {
            // Admin clients parse members in the classic consumer protocol's format.
            let names: BTreeMap<uuid::Uuid, String> = self
                .runtime
                .registry()
                .topics()
                .iter()
                .map(|t| (t.meta.id, t.meta.name.clone()))
                .collect();
            return GroupDescription {
                state: cg.state_name(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor.clone(),
                members: cg
                    .members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            consumer_protocol::subscription(&m.subscribed),
                            consumer_protocol::assignment(&m.assigned, &names),
                        )
                    })
                    .collect(),
            };
        }
        match state.shard.groups.get(group_id) {
            Some(g) => GroupDescription {
                state: g.state.name(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                // Kafka shows the protocol only once a generation has formed.
                protocol: if matches!(
                    g.state,
                    GroupState::Stable | GroupState::CompletingRebalance
                ) {
                    g.protocol.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                members: g
                    .members
                    .values()
                    .map(|m| {
                        let metadata = m.metadata_for(g.protocol.as_deref().unwrap_or_default());
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            metadata,
                            m.assignment.clone(),
                        )
                    })
                    .collect(),
            },
            None if state.shard.offsets.contains_key(group_id) => GroupDescription {
                state: "Empty",
                protocol_type: String::new(),
                protocol: String::new(),
                members: vec![],
            },
            None => GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: vec![],
            },
        }
    }

    fn has_members(state: &GroupShard, group_id: &str) -> bool {
        state.groups.get(group_id).is_some_and(|g| !g.is_empty())
            || state
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty())
    }

    /// Deletes an empty group and its offsets, once the tombstones are replicated.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let write = self.write_group_deletion(group_id)?;
        self.settle_offsets(write).await
    }

    fn write_group_deletion(&self, group_id: &str) -> Result<OffsetsWrite, ResponseError> {
        let state = self.runtime.lock();
        state.check_owner(group_id)?;
        let known = state.shard.groups.contains_key(group_id)
            || state.shard.offsets.contains_key(group_id)
            || state.shard.consumer_groups.contains_key(group_id);
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        if Self::has_members(&state.shard, group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut records: Vec<(Key, Option<Bytes>)> = state
            .shard
            .offsets
            .get(group_id)
            .map(|o| {
                o.keys()
                    .map(|(t, p)| {
                        (
                            Key::Offset {
                                group: group_id.to_string(),
                                topic: t.clone(),
                                partition: *p,
                            },
                            None,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push((
            Key::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        let (log_offset, pending) = self.persist_at(group_id, records)?;
        Ok(OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes: Vec::new(),
            delete_group: true,
            pending,
        })
    }

    /// OffsetDelete: drop committed offsets of partitions the group no longer consumes,
    /// once the tombstones are replicated.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let (results, write) = self.write_offset_deletion(group_id, partitions)?;
        if let Some(write) = write {
            self.settle_offsets(write).await?;
        }
        Ok(results)
    }

    #[allow(clippy::type_complexity)]
    fn write_offset_deletion(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Result<(), ResponseError>>, Option<OffsetsWrite>), ResponseError> {
        let state = self.runtime.lock();
        state.check_owner(group_id)?;
        if !state.shard.groups.contains_key(group_id) && !state.shard.offsets.contains_key(group_id)
        {
            return Err(ResponseError::GroupIdNotFound);
        }
        let active = Self::has_members(&state.shard, group_id);
        let results: Vec<Result<(), ResponseError>> = partitions
            .iter()
            .map(|(t, _)| {
                // Kafka refuses while a live member is subscribed to the topic; members'
                // subscriptions are opaque here, so refuse while the group has members at all.
                if active {
                    Err(ResponseError::GroupSubscribedToTopic)
                } else if self.runtime.registry().topic(t).is_none() {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else {
                    Ok(())
                }
            })
            .collect();
        let records: Vec<(Key, Option<Bytes>)> = partitions
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|((t, p), _)| {
                (
                    Key::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    },
                    None,
                )
            })
            .collect();
        if records.is_empty() {
            return Ok((results, None));
        }
        drop(state);
        let (log_offset, pending) = self.persist_at(group_id, records)?;
        let changes = partitions
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(k, _)| (k.clone(), None))
            .collect();
        let write = OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes,
            delete_group: false,
            pending,
        };
        Ok((results, Some(write)))
    }

    /// Timers: session expiry, rebalance deadlines, and expiry of offsets of groups that have
    /// been empty for `offsets.retention.minutes`.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut state = self.runtime.lock();
        let GroupShard {
            groups,
            offsets,
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
        for (group, parts) in expired {
            let records = parts
                .iter()
                .map(|(t, p)| {
                    (
                        Key::Offset {
                            group: group.clone(),
                            topic: t.clone(),
                            partition: *p,
                        },
                        None,
                    )
                })
                .collect();
            if self.persist(&group, records).is_ok() {
                if let Some(o) = offsets.get_mut(&group) {
                    for k in &parts {
                        o.remove(k);
                    }
                }
                tracing::info!(%group, partitions = parts.len(), "expired committed offsets");
            }
        }
    }
}

/// Transactional offset commits (TxnOffsetCommit), settled by transaction markers.
impl GroupCoordinator {
    /// Writes offsets inside producer `producer_id`'s transaction: appended to the group's
    /// `__consumer_offsets` partition as a transactional batch, and pending until the
    /// transaction's marker reaches that partition (`complete_txn`). `verification`: the
    /// KIP-890 guard the write was verified under, if it opens a transaction there.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
        verification: Option<u64>,
    ) -> (Vec<Result<(), ResponseError>>, Option<PendingWrite>) {
        let fail_all = |e: ResponseError, n: usize| (vec![Err(e); n], None);
        if group_id.is_empty() {
            return fail_all(ResponseError::InvalidGroupId, offsets.len());
        }
        let mut state = self.runtime.lock();
        if let Err(e) = state.check_owner(group_id) {
            return fail_all(e, offsets.len());
        }
        // Kafka checks the member and generation only when the client sends them (v3+).
        if generation >= 0 || !member_id.is_empty() {
            let refused = match state
                .shard
                .consumer_groups
                .get(group_id)
                .filter(|g| !g.is_empty())
            {
                Some(cg) => cg.check_commit(member_id, generation).err(),
                None => Self::check_classic_commit(
                    &mut state.shard,
                    group_id,
                    generation,
                    member_id,
                    instance_id,
                ),
            };
            if let Some(e) = refused {
                return fail_all(e, offsets.len());
            }
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            records.push((
                Key::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition,
                },
                codec::encode_offset(&value),
            ));
            accepted.push((results.len(), topic, partition, value));
            results.push(Ok(()));
        }
        let producer = (producer_id, producer_epoch);
        let replicating = match self.persist_txn(group_id, producer, records, verification) {
            Ok(r) => r,
            Err(e) => {
                for (i, ..) in &accepted {
                    results[*i] = Err(e);
                }
                return (results, None);
            }
        };
        let pending = state
            .shard
            .pending_txn
            .entry(producer_id)
            .or_default()
            .entry(group_id.to_string())
            .or_default();
        for (_, topic, partition, value) in accepted {
            pending.insert((topic, partition), value);
        }
        (results, replicating)
    }

    /// A transaction marker was written to `__consumer_offsets`-`partition`.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut st = self.runtime.lock();
        // Before the first ownership sync finds the topic, the registry knows its size.
        let partitions = match st.partitions() {
            n if n > 0 => n,
            _ => self
                .runtime
                .registry()
                .topic(OFFSETS_TOPIC)
                .map_or(0, |t| t.meta.partitions),
        };
        let at = Placement {
            partition,
            partitions,
        };
        st.shard.complete_txn(at, producer_id, commit);
    }

    fn persist_txn(
        &self,
        group: &str,
        producer: (i64, i16),
        records: Vec<(Key, Bytes)>,
        verification: Option<u64>,
    ) -> Result<Option<PendingWrite>, ResponseError> {
        if records.is_empty() {
            return Ok(None);
        }
        let partition = self.runtime.partition_of(group)?;
        let records = records
            .into_iter()
            .map(|(k, v)| (codec::encode_key(&k), Some(v)))
            .collect();
        let written = self
            .runtime
            .append_transactional(&partition, records, producer, verification, now_ms())
            .map_err(|e| {
                tracing::warn!(
                    group,
                    producer_id = producer.0,
                    "writing transactional offsets: {e}"
                );
                match &e {
                    WriteError::Append(a) => match a.code {
                        ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
                        ResponseError::InvalidProducerEpoch => ResponseError::ProducerFenced,
                        ResponseError::InvalidTxnState => ResponseError::InvalidTxnState,
                        _ => ResponseError::CoordinatorNotAvailable,
                    },
                    WriteError::Encode(_) => e.code(),
                }
            })?;
        // As for plain commits: acknowledged only once replicated, or a leader change (even a
        // preferred-leader move) could drop offsets whose transaction then commits.
        Ok(written.pending)
    }
}

impl GroupShard {
    /// A TxnOffsetCommit record: pending until its transaction's marker.
    fn replay_txn_offset(&mut self, producer_id: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let (Some(key), Some(value)) = (key, value) else {
            return;
        };
        if let (
            Ok(Key::Offset {
                group,
                topic,
                partition,
            }),
            Ok(v),
        ) = (codec::decode_key(key), codec::decode_offset(value))
        {
            self.pending_txn
                .entry(producer_id)
                .or_default()
                .entry(group)
                .or_default()
                .insert((topic, partition), v);
        }
    }

    fn replay_record(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, now: Instant) {
        let Some(key) = key else { return };
        let key = match codec::decode_key(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("skipping {OFFSETS_TOPIC} record: {e}");
                return;
            }
        };
        match key {
            Key::Offset {
                group,
                topic,
                partition,
            } => match value.map(codec::decode_offset) {
                Some(Ok(v)) => {
                    self.offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), v);
                }
                Some(Err(e)) => tracing::warn!("skipping {OFFSETS_TOPIC} offset record: {e}"),
                None => {
                    if let Some(o) = self.offsets.get_mut(&group) {
                        o.remove(&(topic, partition));
                    }
                }
            },
            Key::Group { group } => match value.map(codec::decode_group) {
                // The latest record describes the whole group, members included.
                Some(Ok(v)) => {
                    let g = Group::restored(&group, v, now);
                    self.groups.insert(group, g);
                }
                Some(Err(e)) => tracing::warn!("skipping {OFFSETS_TOPIC} group record: {e}"),
                None => {
                    self.groups.remove(&group);
                    self.offsets.remove(&group);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue::committed(offset, -1, None, 0)
    }

    fn committed(state: &GroupShard, group: &str, partition: i32) -> Option<i64> {
        state
            .offsets
            .get(group)
            .and_then(|o| o.get(&("t".to_string(), partition)))
            .map(|v| v.offset)
    }

    #[test]
    fn offsets_change_only_when_their_write_is_applied_and_the_later_write_wins() {
        let mut state = GroupShard::default();
        // Two commits of one partition, written at log offsets 10 and 11, replicated and
        // applied in the opposite order: the one written later stays.
        state.apply_offsets("g", 11, vec![(("t".into(), 0), Some(value(200)))]);
        state.apply_offsets("g", 10, vec![(("t".into(), 0), Some(value(100)))]);
        assert_eq!(committed(&state, "g", 0), Some(200));
        // A write that was never applied (its replication failed) left nothing behind, and
        // the retry, written later, applies.
        assert_eq!(committed(&state, "g", 1), None);
        state.apply_offsets("g", 12, vec![(("t".into(), 1), Some(value(5)))]);
        assert_eq!(committed(&state, "g", 1), Some(5));
        // Unloading the group's partition forgets where its offsets were written too.
        state.unload(Placement {
            partition: 0,
            partitions: 1,
        });
        assert!(state.written_at.is_empty() && state.offsets.is_empty());
        state.apply_offsets("g", 1, vec![(("t".into(), 0), Some(value(7)))]);
        assert_eq!(committed(&state, "g", 0), Some(7));
    }
}
