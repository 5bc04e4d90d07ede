//! The transaction coordinator: every transactional id this broker coordinates, durable in
//! the compacted `__transaction_state` topic (Kafka's placement and record layout, see
//! `codec.rs`).
//!
//! Every state change is a [`Transition`]: written to the partition, then waited for until
//! the in-sync replicas have it, and only then made the id's metadata and acted on (markers,
//! answers). A transition whose write is not replicated is dropped (`table.rs`), and an
//! answer never comes from state a failover could lose.
//!
//! A transactional id belongs to partition `abs(hash(id)) % transaction.state.log.num.partitions`
//! and is coordinated by that partition's leader (FindCoordinator key type 1 says which). Each
//! state change is appended to the partition before it is acted on, so after a restart or a
//! leadership move the new coordinator replays the partition and finishes what was decided:
//! transactions found in PrepareCommit/PrepareAbort get their markers (again), open ones time
//! out. A partition is (re)loaded whenever this broker leads it in a new
//! leader epoch, lazily on the first request and by the timer (the shared
//! [`CoordinatorRuntime`]).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;

use super::codec;
use super::markers;
use super::state::{EndStep, InitStep, TxnMetadata, TxnState};
use super::table::{Transition, TxnTable};
use crate::cluster::{Partition, Registry};
use crate::context::now_ms;
use crate::coordinator::{partition_for, CoordinatorRuntime, PendingWrite, Placement, Shard};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::producer::Marker;
use crate::replication::wait::REPLICATION_TIMEOUT;

pub const TXN_TOPIC: &str = "__transaction_state";

/// A transaction in PrepareCommit/PrepareAbort this long is retried by the timer (its
/// markers could not all be written, or the coordinator moved here).
const MARKER_RETRY_MS: i64 = 3_000;
/// How long EndTxn keeps trying to write markers before answering (the outcome is decided
/// once PrepareCommit/PrepareAbort is durable; the timer finishes the rest).
const MARKER_ATTEMPTS: u32 = 5;

/// Coordinator settings, named as Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`
    pub state_partitions: i32,
    /// `transaction.state.log.replication.factor` (capped by the brokers).
    pub replication_factor: i16,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_check_interval: Duration,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub remove_expired_interval_ms: i64,
    /// `transaction.partition.verification.enable` (KIP-890 part 1)
    pub partition_verification: bool,
}

/// The config overrides `__transaction_state` is created with.
pub fn txn_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
    ])
}

pub struct TxnCoordinator {
    runtime: CoordinatorRuntime<TxnShard>,
    groups: Arc<GroupCoordinator>,
    config: TxnConfig,
}

/// What the coordinator knows of the transactional ids of the partitions it owns.
#[derive(Default)]
struct TxnShard {
    txns: TxnTable,
    /// When idle transactional ids were last looked for (`now_ms`).
    last_expiry_check: i64,
}

impl Shard for TxnShard {
    fn replay(&mut self, _at: Placement, r: &Record) {
        let Some(key) = r.key.as_deref() else {
            return;
        };
        let id = match codec::decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("skipping a {TXN_TOPIC} record: {e}");
                return;
            }
        };
        match r.value.as_deref().map(|v| codec::decode_value(&id, v)) {
            Some(Ok(m)) => self.txns.load(id, Some(m)),
            Some(Err(e)) => tracing::warn!("skipping a {TXN_TOPIC} record: {e}"),
            None => self.txns.load(id, None),
        }
    }

    fn unload(&mut self, at: Placement) {
        self.txns.retain(|id| !at.holds(id));
    }
}

/// A transaction as DescribeTransactions / ListTransactions show it.
pub type TxnView = TxnMetadata;

impl TxnCoordinator {
    /// `__transaction_state` is created through the quorum by the first FindCoordinator for
    /// a transactional id; partitions are loaded as this broker comes to lead them.
    pub fn open(registry: Arc<Registry>, groups: Arc<GroupCoordinator>, config: TxnConfig) -> Self {
        let coordinator = Self {
            runtime: CoordinatorRuntime::new(registry, TXN_TOPIC),
            groups,
            config,
        };
        // A partition that fails to load answers COORDINATOR_LOAD_IN_PROGRESS until a later
        // sync loads it.
        coordinator.sync_ownership();
        let count = coordinator.runtime.lock().shard.txns.len();
        if count > 0 {
            tracing::info!(transactional_ids = count, "loaded {TXN_TOPIC}");
        }
        coordinator
    }

    fn registry(&self) -> &Arc<Registry> {
        self.runtime.registry()
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Loads the partitions of `__transaction_state` this broker leads in a leader epoch not
    /// loaded yet, and forgets the others.
    pub fn sync_ownership(&self) {
        self.runtime.sync_ownership();
    }

    /// The `__transaction_state` partition of `id`, if this broker coordinates it now
    /// (NOT_COORDINATOR otherwise, which sends clients back to FindCoordinator).
    fn owner_check(&self, id: &str) -> Result<Arc<Partition>, ResponseError> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.runtime.owned_partition(id)
    }

    /// Appends one `__transaction_state` record for `id`: its metadata, or a tombstone.
    fn write_record(
        &self,
        p: &Arc<Partition>,
        id: &str,
        value: Option<Bytes>,
    ) -> Result<Option<PendingWrite>, ResponseError> {
        let record = vec![(codec::encode_key(id), value)];
        let written = self.runtime.append(p, record, now_ms()).map_err(|e| {
            tracing::error!(transactional_id = %id, "writing {TXN_TOPIC}: {e}");
            e.code()
        })?;
        Ok(written.pending)
    }

    /// Begins the transition of `next.transactional_id` to `next` and writes it. Nothing
    /// acts on it until [`TxnCoordinator::settle`] has seen it replicated.
    fn store(
        &self,
        st: &mut TxnShard,
        p: &Arc<Partition>,
        next: TxnMetadata,
    ) -> Result<Pending, ResponseError> {
        let id = next.transactional_id.clone();
        let value = Some(codec::encode_value(&next));
        self.begin_write(st, p, &id, Some(next), value)
    }

    /// Begins a transition and appends its record (metadata or tombstone).
    fn begin_write(
        &self,
        st: &mut TxnShard,
        p: &Arc<Partition>,
        id: &str,
        next: Option<TxnMetadata>,
        value: Option<Bytes>,
    ) -> Result<Pending, ResponseError> {
        let transition = st.txns.begin(id, next)?;
        let epoch = p.leader_epoch();
        match self.write_record(p, id, value) {
            Ok(wait) => Ok(Pending {
                transition,
                wait,
                partition: p.clone(),
                epoch,
            }),
            Err(e) => {
                st.txns.abandon(&transition);
                Err(e)
            }
        }
    }

    /// Waits until a transition's record is replicated, then makes it the id's metadata. On
    /// failure, or if this broker stopped coordinating the partition (a new leader epoch)
    /// meanwhile, the transition is dropped and the committed metadata stays as it was.
    async fn settle(&self, pending: Pending) -> Result<(), ResponseError> {
        let Pending {
            transition,
            wait,
            partition,
            epoch,
        } = pending;
        // Dropped while waiting (the task is cancelled): the transition must not stay pending.
        let mut guard = AbandonOnDrop {
            runtime: &self.runtime,
            transition: Some(transition),
        };
        let replicated = match wait {
            None => Ok(()),
            Some(w) => {
                let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
                w.wait(deadline).await.map_err(|e| match e {
                    ResponseError::NotCoordinator => ResponseError::NotCoordinator,
                    _ => ResponseError::CoordinatorNotAvailable,
                })
            }
        };
        let Some(transition) = guard.transition.take() else {
            return Err(ResponseError::UnknownServerError);
        };
        let still_ours = self.runtime.owns(&partition, epoch);
        let st = &mut self.runtime.lock().shard;
        match replicated {
            Ok(()) if still_ours => {
                st.txns.complete(&transition);
                Ok(())
            }
            Ok(()) => {
                st.txns.abandon(&transition);
                Err(ResponseError::NotCoordinator)
            }
            Err(e) => {
                tracing::warn!(
                    transactional_id = %transition.id,
                    "{TXN_TOPIC} write not replicated ({e:?}); transition dropped"
                );
                st.txns.abandon(&transition);
                Err(e)
            }
        }
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        mut expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        // At most: abort the previous epoch's transaction, then bump (or allocate) once.
        for _ in 0..3 {
            let p = self.owner_check(id)?;
            let now = now_ms();
            let step = {
                let st = &mut self.runtime.lock().shard;
                let step = st
                    .txns
                    .current(id)?
                    .map(|m| m.init(timeout_ms, expected, now));
                match step {
                    Some(Err(e)) => return Err(e),
                    Some(Ok(InitStep::Ready(next))) => {
                        let answer = (next.producer_id, next.producer_epoch);
                        let pending = self.store(st, &p, next)?;
                        Ok((answer, pending))
                    }
                    Some(Ok(InitStep::AbortFirst(next))) => {
                        let pending = self.store(st, &p, next.clone())?;
                        Err(Some((next, pending)))
                    }
                    Some(Ok(InitStep::NewProducerId)) | None => Err(None),
                }
            };
            let abort = match step {
                Ok((answer, pending)) => {
                    self.settle(pending).await?;
                    return Ok(answer);
                }
                Err(abort) => abort,
            };
            if let Some((next, pending)) = abort {
                self.settle(pending).await?;
                tracing::info!(
                    transactional_id = id,
                    producer_id = next.producer_id,
                    epoch = next.producer_epoch,
                    "aborting the open transaction of a re-initialized producer"
                );
                if !self.finish(&next).await {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                expected = None;
                continue;
            }
            let pid = self
                .registry()
                .admin_allocate_producer_id()
                .await
                .map_err(|e| e.code)?;
            let pending = {
                let st = &mut self.runtime.lock().shard;
                match st.txns.current(id)? {
                    Some(m) if m.state.is_preparing() => {
                        return Err(ResponseError::ConcurrentTransactions)
                    }
                    // Another InitProducerId got here first: start over with its state.
                    Some(m) if m.producer_epoch < i16::MAX - 1 => continue,
                    _ => {}
                }
                self.store(st, &p, TxnMetadata::new(id, pid, timeout_ms, now_ms()))?
            };
            self.settle(pending).await?;
            return Ok((pid, 0));
        }
        Err(ResponseError::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, whose partition is the group's
    /// `__consumer_offsets` partition).
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        let p = self.owner_check(id)?;
        let pending = {
            let st = &mut self.runtime.lock().shard;
            let m = st
                .txns
                .current(id)?
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            match m.add_partitions(producer_id, epoch, partitions, now_ms())? {
                Some(next) => self.store(st, &p, next)?,
                // Already in the committed transaction.
                None => return Ok(()),
            }
        };
        self.settle(pending).await
    }

    /// Is every one of `partitions` in `id`'s open transaction? (AddPartitionsToTxn v4+
    /// `verify_only`.)
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, ResponseError> {
        self.owner_check(id)?;
        let st = &self.runtime.lock().shard;
        let m = st
            .txns
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        m.check_producer(producer_id, epoch)?;
        Ok(partitions
            .iter()
            .map(|p| m.state == TxnState::Ongoing && m.partitions.contains(p))
            .collect())
    }

    /// The `__consumer_offsets` partition AddOffsetsToTxn adds for `group`.
    pub fn offsets_partition(&self, group: &str) -> (String, i32) {
        let count = self
            .registry()
            .quorum()
            .metadata()
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .unwrap_or(self.groups_partitions());
        (OFFSETS_TOPIC.to_string(), partition_for(group, count))
    }

    fn groups_partitions(&self) -> i32 {
        self.registry().config.group.offsets_partitions
    }

    /// EndTxn: PrepareCommit/PrepareAbort is persisted (the decision), then markers go to
    /// every partition of the transaction, then Complete* is persisted.
    pub async fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let p = self.owner_check(id)?;
        let (next, pending) = {
            let st = &mut self.runtime.lock().shard;
            let m = st
                .txns
                .current(id)?
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            match m.end(producer_id, epoch, commit, now_ms())? {
                EndStep::AlreadyDone => return Ok(()),
                EndStep::Prepare(next) => {
                    let pending = self.store(st, &p, next.clone())?;
                    (next, pending)
                }
            }
        };
        // No marker before the decision is replicated: a new coordinator must know it.
        self.settle(pending).await?;
        if !self.finish(&next).await {
            tracing::warn!(
                transactional_id = id,
                "transaction markers not all written yet; the coordinator keeps retrying"
            );
        }
        Ok(())
    }

    /// Writes the markers of a PrepareCommit/PrepareAbort transaction and completes it.
    /// `false` if some partition could not be reached (the timer retries).
    async fn finish(&self, prepared: &TxnMetadata) -> bool {
        let marker = if prepared.state == TxnState::PrepareCommit {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let coordinator_epoch = self
            .runtime
            .partition_of(&prepared.transactional_id)
            .map_or(0, |p| p.leader_epoch());
        let mut remaining: BTreeSet<(String, i32)> = prepared.partitions.clone();
        for attempt in 0..MARKER_ATTEMPTS {
            remaining = markers::write_markers(
                self.registry(),
                &self.groups,
                prepared.producer_id,
                prepared.producer_epoch,
                marker,
                coordinator_epoch,
                &remaining,
            )
            .await;
            if remaining.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        if !remaining.is_empty() {
            return false;
        }
        let Ok(p) = self.owner_check(&prepared.transactional_id) else {
            return false;
        };
        let pending = {
            let st = &mut self.runtime.lock().shard;
            let current = st.txns.get(&prepared.transactional_id);
            if current.map(|m| (m.producer_id, m.producer_epoch, m.state))
                != Some((
                    prepared.producer_id,
                    prepared.producer_epoch,
                    prepared.state,
                ))
            {
                // Completed meanwhile (a retry by the timer).
                return true;
            }
            let done = prepared.complete(now_ms());
            match self.store(st, &p, done) {
                Ok(pending) => pending,
                Err(_) => return false,
            }
        };
        self.settle(pending).await.is_ok()
    }

    /// Timer: loads newly led partitions, aborts timed-out transactions (under a bumped
    /// epoch, fencing their producers), retries markers of transactions stuck preparing and,
    /// every `transaction.remove.expired.transaction.cleanup.interval.ms`, forgets idle ids.
    pub async fn tick(&self) {
        self.sync_ownership();
        let now = now_ms();
        let expiry_due = {
            let st = &mut self.runtime.lock().shard;
            let due = now - st.last_expiry_check >= self.config.remove_expired_interval_ms;
            if due {
                st.last_expiry_check = now;
            }
            due
        };
        if expiry_due {
            self.remove_expired(now).await;
        }
        let mut work: Vec<(TxnMetadata, Option<Pending>)> = Vec::new();
        {
            let ids: Vec<String> = self.runtime.lock().shard.txns.ids();
            for id in ids {
                let Ok(p) = self.owner_check(&id) else {
                    continue;
                };
                let st = &mut self.runtime.lock().shard;
                // A transition being replicated is someone else's to finish.
                let Ok(Some(m)) = st.txns.current(&id) else {
                    continue;
                };
                if let Some(next) = m.timed_out(now) {
                    tracing::info!(transactional_id = %id, producer_id = next.producer_id, "aborting a transaction that timed out");
                    if let Ok(pending) = self.store(st, &p, next.clone()) {
                        work.push((next, Some(pending)));
                    }
                } else if m.state.is_preparing() && now - m.last_update_ms >= MARKER_RETRY_MS {
                    work.push((m.clone(), None));
                }
            }
        }
        for (m, pending) in work {
            if let Some(pending) = pending {
                if self.settle(pending).await.is_err() {
                    continue;
                }
            }
            if !self.finish(&m).await {
                tracing::warn!(transactional_id = %m.transactional_id, "transaction markers still pending");
            }
        }
    }

    /// Tombstones the transactional ids idle for `transactional.id.expiration.ms` (no
    /// transaction open), as Kafka's `removeExpiredTransactionalIds`; an expired id that
    /// comes back gets a new producer id.
    async fn remove_expired(&self, now: i64) {
        let expiration = self.config.id_expiration_ms;
        let candidates: Vec<String> = {
            let st = &self.runtime.lock().shard;
            st.txns
                .values()
                .filter(|m| m.is_expired(now, expiration))
                .map(|m| m.transactional_id.clone())
                .collect()
        };
        for id in candidates {
            let Ok(p) = self.owner_check(&id) else {
                continue;
            };
            let pending = {
                let st = &mut self.runtime.lock().shard;
                // It may have been used since the scan.
                if !st
                    .txns
                    .current(&id)
                    .is_ok_and(|m| m.is_some_and(|m| m.is_expired(now, expiration)))
                {
                    continue;
                }
                match self.begin_write(st, &p, &id, None, None) {
                    Ok(pending) => pending,
                    Err(_) => continue,
                }
            };
            if self.settle(pending).await.is_ok() {
                tracing::info!(transactional_id = %id, "expired an idle transactional id");
            }
        }
    }

    /// DescribeTransactions.
    pub fn describe(&self, id: &str) -> Result<TxnView, ResponseError> {
        self.owner_check(id)?;
        self.runtime
            .lock()
            .shard
            .txns
            .get(id)
            .cloned()
            .ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// ListTransactions: every id coordinated here, optionally filtered by state names and
    /// producer ids (empty filters match everything).
    pub fn list(&self, states: &[String], producer_ids: &[i64]) -> Vec<TxnView> {
        let st = &self.runtime.lock().shard;
        let mut out: Vec<TxnView> = st
            .txns
            .values()
            .filter(|m| states.is_empty() || states.iter().any(|s| s == m.state.name()))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

/// Abandons a transition whose wait was cancelled before it settled.
struct AbandonOnDrop<'a> {
    runtime: &'a CoordinatorRuntime<TxnShard>,
    transition: Option<Transition>,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.transition.take() {
            self.runtime.lock().shard.txns.abandon(&t);
        }
    }
}

/// A transition written to `__transaction_state`, waiting for its replicas.
struct Pending {
    transition: Transition,
    /// `None` when the append is final (no followers).
    wait: Option<PendingWrite>,
    partition: Arc<Partition>,
    /// The leader epoch it was written in: a transition outlives no change of coordinator.
    epoch: i32,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::coordinator::test_node;

    const TIMEOUT_MS: i32 = 60_000;

    /// A single node in `dir` with a one-partition topic `t` for transactions.
    async fn registry(dir: &Path) -> Arc<Registry> {
        let registry = test_node::start(dir).await;
        test_node::create_topic(&registry, "t", 1).await;
        registry
    }

    fn groups(registry: &Arc<Registry>) -> Arc<GroupCoordinator> {
        let config = registry.config.group.clone();
        Arc::new(GroupCoordinator::open(registry.clone(), config))
    }

    /// A coordinator that replays `__transaction_state` from the log, as after a restart;
    /// the topic is created first as FindCoordinator does, so this node leads every partition.
    async fn open(registry: &Arc<Registry>, config: TxnConfig) -> TxnCoordinator {
        let partitions = config.state_partitions;
        test_node::ensure_internal_topic(registry, TXN_TOPIC, partitions, txn_topic_configs())
            .await;
        TxnCoordinator::open(registry.clone(), groups(registry), config)
    }

    fn state(txn: &TxnCoordinator, id: &str) -> Result<(i64, i16, TxnState, usize), ResponseError> {
        txn.describe(id)
            .map(|m| (m.producer_id, m.producer_epoch, m.state, m.partitions.len()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transactional_ids_state_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        let config = registry.config.txn.clone();
        let txn = open(&registry, config.clone()).await;
        let (pid, epoch) = txn.init_producer_id("tx", TIMEOUT_MS, None).await.unwrap();
        assert_eq!(epoch, 0);
        let t0 = [("t".to_string(), 0)];
        txn.add_partitions("tx", pid, 0, &t0).await.unwrap();

        // Reloaded mid-transaction: still open, with its partition.
        let txn = open(&registry, config.clone()).await;
        assert_eq!(state(&txn, "tx"), Ok((pid, 0, TxnState::Ongoing, 1)));
        assert_eq!(txn.verify_partitions("tx", pid, 0, &t0), Ok(vec![true]));
        txn.end_txn("tx", pid, 0, true).await.unwrap();
        assert_eq!(state(&txn, "tx"), Ok((pid, 0, TxnState::CompleteCommit, 0)));

        // Reloaded after the commit: the next InitProducerId bumps the epoch it left.
        let txn = open(&registry, config).await;
        assert_eq!(state(&txn, "tx"), Ok((pid, 0, TxnState::CompleteCommit, 0)));
        assert_eq!(
            txn.init_producer_id("tx", TIMEOUT_MS, None).await,
            Ok((pid, 1))
        );
        assert_eq!(
            txn.end_txn("tx", pid, 0, true).await,
            Err(ResponseError::ProducerFenced)
        );
        test_node::stop(registry).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_transactional_id_stays_forgotten_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        let config = TxnConfig {
            id_expiration_ms: 0,
            remove_expired_interval_ms: 0,
            ..registry.config.txn.clone()
        };
        let txn = open(&registry, config.clone()).await;
        let (pid, _) = txn
            .init_producer_id("idle", TIMEOUT_MS, None)
            .await
            .unwrap();
        assert_eq!(
            state(&open(&registry, config.clone()).await, "idle"),
            Ok((pid, 0, TxnState::Empty, 0))
        );
        // Idle (no transaction open) past the expiration: the timer tombstones it.
        txn.tick().await;
        assert_eq!(
            state(&txn, "idle"),
            Err(ResponseError::TransactionalIdNotFound)
        );
        let txn = open(&registry, config).await;
        assert_eq!(
            state(&txn, "idle"),
            Err(ResponseError::TransactionalIdNotFound)
        );
        assert!(txn.list(&[], &[]).is_empty());
        test_node::stop(registry).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_move_with_the_leadership_of_their_partition() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        // The coordinator owns the partitions this broker leads: created through the quorum,
        // this node leads the one partition, until another broker comes to lead it (moved on
        // the partition itself; only `registry.sync()` would apply the metadata again).
        test_node::ensure_internal_topic(&registry, TXN_TOPIC, 1, txn_topic_configs()).await;
        let p = registry.topic(TXN_TOPIC).unwrap().partitions[0].clone();
        p.become_follower();
        let config = registry.config.txn.clone();
        let txn = TxnCoordinator::open(registry.clone(), groups(&registry), config);

        assert_eq!(
            txn.init_producer_id("tx", TIMEOUT_MS, None).await,
            Err(ResponseError::NotCoordinator)
        );
        // Led now: loaded on first use, without waiting for the timer.
        p.become_leader(1).unwrap();
        let (pid, _) = txn.init_producer_id("tx", TIMEOUT_MS, None).await.unwrap();
        assert_eq!(state(&txn, "tx"), Ok((pid, 0, TxnState::Empty, 0)));

        // Another broker leads: nothing is answered or listed from here.
        p.become_follower();
        txn.sync_ownership();
        assert_eq!(state(&txn, "tx"), Err(ResponseError::NotCoordinator));
        assert!(txn.list(&[], &[]).is_empty());

        // Leading again in a new epoch: replayed from the log.
        p.become_leader(2).unwrap();
        txn.sync_ownership();
        assert_eq!(state(&txn, "tx"), Ok((pid, 0, TxnState::Empty, 0)));
        assert_eq!(txn.list(&[], &[]).len(), 1);
        test_node::stop(registry).await;
    }
}
