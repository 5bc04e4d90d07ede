//! One partition this broker hosts: its log and its producer state behind one lock, so that
//! the duplicate check and the append are one step.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use spate_log::{parse_batches, BatchMeta, LogConfig, LogError, PartitionLog, TimestampOffset};
use tokio::sync::watch;

use crate::producer::{
    control_batch, snapshot, AbortedTxn, Marker, ProducerStates, ProducerView, SequenceCheck,
    SequenceError,
};

/// Where a successful append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub duplicate: bool,
}

/// An append refused, with the Kafka error a client understands.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AppendError {
    pub code: ResponseError,
    pub message: String,
}

impl From<LogError> for AppendError {
    fn from(e: LogError) -> Self {
        Self {
            code: log_error_code(&e),
            message: e.to_string(),
        }
    }
}

impl From<SequenceError> for AppendError {
    fn from(e: SequenceError) -> Self {
        let code = match e {
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

pub fn log_error_code(e: &LogError) -> ResponseError {
    match e {
        LogError::Corrupt(_) => ResponseError::CorruptMessage,
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::TooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } | LogError::OffsetMismatch { .. } => {
            ResponseError::OffsetOutOfRange
        }
        LogError::Io(_) => ResponseError::KafkaStorageError,
    }
}

struct State {
    log: PartitionLog,
    producers: ProducerStates,
}

/// Cluster mode: what the leader knows of a follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
pub struct Follower {
    /// The follower's log end offset: the offset of its last fetch; -1 before its first.
    pub leo: i64,
    /// When it was last known to be caught up with the leader's log end.
    pub caught_up_ms: i64,
    /// The leader's log end and the time when it answered the previous fetch.
    last_fetch_leo: i64,
    pub last_fetch_ms: i64,
}

/// Cluster mode: the replica set as the metadata last said, and the followers' progress.
#[derive(Debug, Default)]
struct Replicas {
    /// The high watermark is computed from the ISR (cluster mode); otherwise it is the log end.
    tracked: bool,
    me: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    partition_epoch: i32,
    /// Where the leader epoch this replica leads in starts.
    epoch_start: i64,
    followers: HashMap<i32, Follower>,
}

/// A snapshot for the leader's ISR maintenance.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub epoch_start: i64,
    pub followers: HashMap<i32, Follower>,
}

pub struct Partition {
    pub index: i32,
    pub dir: PathBuf,
    state: Mutex<Option<State>>,
    /// Cluster mode: the leader epoch this replica leads in, or -1 while it does not lead.
    /// Unused on a single node, which leads everything.
    led_epoch: AtomicI32,
    /// Cluster mode: this broker lost its controller session and its followers while
    /// leading (`session.rs`): it no longer acts as leader in `led_epoch`, until the
    /// metadata says what to do (a new epoch, or the same one once the session is back).
    stepped_down: AtomicBool,
    /// Cluster mode: replica set, ISR and follower progress (lock order: `state`, then this).
    replicas: Mutex<Replicas>,
    /// The high watermark, for acks=all waits.
    hw: watch::Sender<i64>,
}

/// Bytes read per step when rebuilding producer state from the log.
const REPLAY_CHUNK: usize = 4 * 1024 * 1024;

impl Partition {
    /// Opens the log (recovering it) and rebuilds producer state from the newest snapshot
    /// and the log after it.
    pub fn open(dir: &Path, index: i32, config: LogConfig) -> Result<Self, LogError> {
        let log = PartitionLog::open(dir, config)?;
        let producers = load_producers(&log)?;
        let hw = watch::channel(log.high_watermark()).0;
        Ok(Self {
            index,
            dir: dir.to_path_buf(),
            state: Mutex::new(Some(State { log, producers })),
            led_epoch: AtomicI32::new(-1),
            stepped_down: AtomicBool::new(false),
            replicas: Mutex::new(Replicas::default()),
            hw,
        })
    }

    /// Cluster mode: the replica set, ISR and partition epoch the metadata names. The high
    /// watermark is from now on the minimum log end over the ISR while this replica leads.
    pub fn set_assignment(&self, me: i32, replicas: &[i32], isr: &[i32], partition_epoch: i32) {
        let _ = self.with(|s| {
            let mut r = self.replicas.lock();
            if !r.tracked {
                // Pin the high watermark: unset, the log reports its end as the HW.
                let hw = s.log.high_watermark();
                s.log.set_high_watermark(hw);
                r.tracked = true;
            }
            r.me = me;
            r.replicas = replicas.to_vec();
            r.isr = isr.to_vec();
            r.partition_epoch = partition_epoch;
            r.followers
                .retain(|id, _| replicas.contains(id) && *id != me);
            self.update_hw(s, &r);
            Ok(())
        });
    }

    /// (ISR size, replica count): (1, 1) on a single node.
    pub fn isr_counts(&self) -> (usize, usize) {
        let r = self.replicas.lock();
        if r.replicas.is_empty() {
            (1, 1)
        } else {
            (r.isr.len(), r.replicas.len())
        }
    }

    pub fn replica_view(&self) -> Option<ReplicaView> {
        self.with(|s| {
            let r = self.replicas.lock();
            Ok(ReplicaView {
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
                partition_epoch: r.partition_epoch,
                high_watermark: s.log.high_watermark(),
                log_end_offset: s.log.log_end_offset(),
                epoch_start: r.epoch_start,
                followers: r.followers.clone(),
            })
        })
        .ok()
    }

    /// Leader: HW = min log end over the ISR, never moving backwards. Followers that have
    /// not fetched yet hold it where it is.
    fn update_hw(&self, s: &mut State, r: &Replicas) {
        if !r.tracked || !self.is_leader() {
            return;
        }
        let leo = s.log.log_end_offset();
        let mut min = leo;
        for id in &r.isr {
            if *id == r.me {
                continue;
            }
            match r.followers.get(id) {
                Some(f) if f.leo >= 0 => min = min.min(f.leo),
                _ => return,
            }
        }
        let old = s.log.high_watermark();
        if min > old {
            let hw = s.log.set_high_watermark(min);
            self.hw.send_if_modified(|v| {
                let changed = *v != hw;
                *v = hw;
                changed
            });
        } else {
            self.hw.send_if_modified(|v| {
                let changed = *v != old;
                *v = old;
                changed
            });
        }
    }

    /// Leader: a follower fetched at `fetch_offset`. Updates its log end and caught-up time
    /// (Kafka's rule: caught up now if at the log end, or as of the previous fetch if it has
    /// reached what the log end was then) and the high watermark. Returns the new HW.
    pub fn record_follower_fetch(&self, id: i32, fetch_offset: i64, now_ms: i64) -> i64 {
        self.with(|s| {
            let mut r = self.replicas.lock();
            if id == r.me || !r.replicas.contains(&id) {
                // Not a follower of this partition: nothing to record.
                return Ok(s.log.high_watermark());
            }
            let leo = s.log.log_end_offset();
            let offset = fetch_offset.min(leo);
            let f = r.followers.entry(id).or_insert(Follower {
                leo: -1,
                caught_up_ms: 0,
                last_fetch_leo: -1,
                last_fetch_ms: 0,
            });
            if offset >= leo {
                f.caught_up_ms = now_ms;
            } else if offset >= f.last_fetch_leo && f.last_fetch_leo >= 0 {
                f.caught_up_ms = f.caught_up_ms.max(f.last_fetch_ms);
            }
            f.leo = offset;
            f.last_fetch_leo = leo;
            f.last_fetch_ms = now_ms;
            self.update_hw(s, &r);
            Ok(s.log.high_watermark())
        })
        .unwrap_or(-1)
    }

    /// Waits for changes of the high watermark.
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// (log start, high watermark, log end).
    pub fn positions(&self) -> Result<(i64, i64, i64), LogError> {
        self.with(|s| {
            Ok((
                s.log.log_start_offset(),
                s.log.high_watermark(),
                s.log.log_end_offset(),
            ))
        })
    }

    /// Follower: (log end, latest epoch or -1, log start) to fetch from.
    pub fn fetch_position(&self) -> Result<(i64, i32, i64), LogError> {
        self.with(|s| {
            Ok((
                s.log.log_end_offset(),
                s.log.latest_epoch().unwrap_or(-1),
                s.log.log_start_offset(),
            ))
        })
    }

    /// OffsetsForLeaderEpoch on this log.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, LogError> {
        self.with(|s| Ok(s.log.end_offset_for_epoch(epoch)))
    }

    /// Follower: appends batches fetched from the leader, as they are, and records their
    /// producers. Returns how many records they hold (from the headers the append parsed).
    pub fn append_as_follower(&self, records: Bytes) -> Result<u64, LogError> {
        self.with(|s| {
            let base_before = s.log.active_base_offset();
            let info = s.log.append_as_follower(records.clone())?;
            self.apply_appended(s, &records, &info.batches, base_before);
            Ok(info
                .batches
                .iter()
                .map(|b| u64::try_from(b.record_count).unwrap_or(0))
                .sum())
        })
    }

    /// Follower: the leader's high watermark (clamped to the local log end).
    pub fn set_follower_hw(&self, hw: i64) {
        let _ = self.with(|s| {
            let hw = s.log.set_high_watermark(hw);
            self.hw.send_replace(hw);
            Ok(())
        });
    }

    /// Follower: drops everything from `offset` on and rebuilds producer state (snapshots
    /// past the new log end go).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.with(|s| {
            s.log.truncate_to(offset)?;
            s.producers = load_producers(&s.log)?;
            Ok(())
        })
    }

    /// Follower: empties the log, which restarts at `offset`, and forgets every producer and
    /// snapshot.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        self.with(|s| {
            s.log.truncate_fully_and_start_at(offset)?;
            snapshot::delete_where(&self.dir, |_| true)?;
            s.producers = ProducerStates::default();
            Ok(())
        })
    }

    /// Reads from `offset`, stopping before `max_offset` (the high watermark for consumers).
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        self.with(|s| s.log.read_up_to(offset, max_bytes, max_offset))
    }

    /// Cluster mode: does this replica lead the partition now?
    pub fn is_leader(&self) -> bool {
        self.led_epoch.load(Ordering::Acquire) >= 0 && !self.stepped_down.load(Ordering::Acquire)
    }

    /// Stops acting as leader in the current epoch (the controller session and the
    /// followers are lost). Requests waiting for the high watermark wake and fail with
    /// NOT_LEADER_OR_FOLLOWER. `true` if it was leading.
    pub fn step_down(&self) -> bool {
        if self.led_epoch.load(Ordering::Acquire) < 0
            || self.stepped_down.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        self.hw.send_modify(|_| {});
        true
    }

    /// Leads again in the epoch it stepped down in: the session is back and the metadata,
    /// caught up with the controller, still names this broker leader at `epoch`.
    pub fn resume_leadership(&self, epoch: i32) -> bool {
        self.led_epoch.load(Ordering::Acquire) == epoch
            && self.stepped_down.swap(false, Ordering::AcqRel)
    }

    pub fn is_stepped_down(&self) -> bool {
        self.stepped_down.load(Ordering::Acquire)
    }

    /// The leader epoch clients are told: the one this replica leads in, 0 on a single node.
    pub fn leader_epoch(&self) -> i32 {
        self.led_epoch.load(Ordering::Acquire).max(0)
    }

    /// Cluster mode: the metadata names this broker leader at `epoch`. Records where the
    /// epoch starts in the log's epoch cache and stamps it on appended batches.
    pub fn become_leader(&self, epoch: i32) -> Result<(), LogError> {
        if self.led_epoch.load(Ordering::Acquire) == epoch {
            return Ok(());
        }
        self.with(|s| {
            s.log.assign_epoch(epoch, s.log.log_end_offset())?;
            s.log.set_leader_epoch(Some(epoch));
            let mut r = self.replicas.lock();
            r.epoch_start = s.log.log_end_offset();
            // Followers start afresh under a new leader: not caught up before their first
            // fetch, but given the lag time from now.
            let now = crate::context::now_ms();
            let me = r.me;
            let others: Vec<i32> = r.replicas.iter().copied().filter(|id| *id != me).collect();
            r.followers = others
                .into_iter()
                .map(|id| {
                    let f = Follower {
                        leo: -1,
                        caught_up_ms: now,
                        last_fetch_leo: -1,
                        last_fetch_ms: 0,
                    };
                    (id, f)
                })
                .collect();
            Ok(())
        })?;
        self.led_epoch.store(epoch, Ordering::Release);
        self.stepped_down.store(false, Ordering::Release);
        Ok(())
    }

    /// Cluster mode: another broker leads (or nobody does).
    pub fn become_follower(&self) {
        let led = self.led_epoch.swap(-1, Ordering::AcqRel);
        self.stepped_down.store(false, Ordering::Release);
        if led >= 0 {
            let _ = self.with(|s| {
                s.log.set_leader_epoch(None);
                self.replicas.lock().followers.clear();
                Ok(())
            });
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, LogError>) -> Result<T, LogError> {
        let mut guard = self.state.lock();
        match guard.as_mut() {
            Some(s) => f(s),
            None => Err(LogError::Io(std::io::Error::other("partition is closed"))),
        }
    }

    /// Appends a producer's record batches, unless they are a retry of batches already stored.
    pub fn append(&self, records: Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        self.append_verified(records, now_ms, None)
    }

    /// KIP-890 part 1: if `records` would open a transaction of their producer here, starts
    /// its verification and returns (producer id, epoch, guard): ask the coordinator whether
    /// this partition is in the producer's ongoing transaction, then append with the guard.
    pub fn start_txn_verification(
        &self,
        records: &Bytes,
    ) -> Result<Option<(i64, i16, u64)>, AppendError> {
        if records.is_empty() {
            return Ok(None);
        }
        // The first batch decides; append parses them all.
        let first = spate_log::batch::parse_header(records, 0)?;
        if !first.is_transactional() {
            return Ok(None);
        }
        let guard = self.start_producer_verification(first.producer_id, first.producer_epoch)?;
        Ok(guard.map(|g| (first.producer_id, first.producer_epoch, g)))
    }

    /// As [`Partition::start_txn_verification`] for a transactional write the broker makes
    /// for `producer_id` (TxnOffsetCommit): the guard, if the write would open a transaction.
    pub fn start_producer_verification(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<Option<u64>, AppendError> {
        self.with(|s| {
            Ok(s.producers
                .opens_txn(producer_id)
                .then(|| s.producers.start_verification(producer_id, epoch)))
        })
        .map_err(AppendError::from)
    }

    /// [`Partition::append`] of batches verified under `guard` (see
    /// [`Partition::start_txn_verification`]): refused with INVALID_TXN_STATE if a marker
    /// ended the producer's transaction here since, so a late batch cannot open a new one.
    pub fn append_verified(
        &self,
        records: Bytes,
        now_ms: i64,
        verification: Option<u64>,
    ) -> Result<Appended, AppendError> {
        // Headers only: the log verifies every CRC itself when it appends, so checking them
        // here too would run CRC-32C twice over every produced byte.
        let batches = batch_headers(&records)?;
        if batches.iter().any(|b| b.is_control()) {
            return Err(AppendError {
                code: ResponseError::InvalidRecord,
                message: "clients may not write control batches".into(),
            });
        }
        let mut guard = self.state.lock();
        let s = guard.as_mut().ok_or_else(|| {
            AppendError::from(LogError::Io(std::io::Error::other("partition is closed")))
        })?;
        if let Some(first) = batches.first().filter(|b| b.producer_id >= 0) {
            if verification.is_some_and(|g| !s.producers.verified(first, g)) {
                return Err(ended_txn());
            }
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = s.producers.check(first)?
            {
                return Ok(Appended {
                    base_offset,
                    last_offset,
                    log_append_time: -1,
                    log_start_offset: s.log.log_start_offset(),
                    duplicate: true,
                });
            }
            // Later batches of the same request must follow on from the first.
            for pair in batches.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if b.producer_id == a.producer_id
                    && b.base_sequence != a.last_sequence().wrapping_add(1)
                {
                    return Err(SequenceError::OutOfOrder {
                        got: b.base_sequence,
                        expected: a.last_sequence() + 1,
                    }
                    .into());
                }
            }
        }
        self.append_locked(s, records, now_ms)
    }

    /// Writes a transaction marker (a control batch) for `producer_id`, ending its open
    /// transaction here: `WriteTxnMarkers`, in process or from a remote coordinator. Refused
    /// with INVALID_PRODUCER_EPOCH when the producer has moved to a newer epoch.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let records = control_batch(
            producer_id,
            producer_epoch,
            marker,
            coordinator_epoch,
            now_ms,
        )
        .map_err(|e| AppendError {
            code: ResponseError::UnknownServerError,
            message: format!("encoding a transaction marker: {e}"),
        })?;
        let mut guard = self.state.lock();
        let s = guard.as_mut().ok_or_else(|| {
            AppendError::from(LogError::Io(std::io::Error::other("partition is closed")))
        })?;
        s.producers.check_marker(producer_id, producer_epoch)?;
        self.append_locked(s, records, now_ms)
    }

    /// Appends batches the broker wrote itself (TxnOffsetCommit's transactional offset
    /// records), without the idempotent-producer sequence check but with the producer state
    /// (they open a transaction on this partition like any transactional batch).
    /// `verification`: as for [`Partition::append_verified`].
    pub fn append_internal(
        &self,
        records: Bytes,
        now_ms: i64,
        verification: Option<u64>,
    ) -> Result<Appended, AppendError> {
        let mut guard = self.state.lock();
        let s = guard.as_mut().ok_or_else(|| {
            AppendError::from(LogError::Io(std::io::Error::other("partition is closed")))
        })?;
        if let Some(first) = batch_headers(&records)?.first() {
            s.producers
                .check_marker(first.producer_id, first.producer_epoch)?;
            if verification.is_some_and(|g| !s.producers.verified(first, g)) {
                return Err(ended_txn());
            }
        }
        self.append_locked(s, records, now_ms)
    }

    fn append_locked(
        &self,
        s: &mut State,
        records: Bytes,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let base_before = s.log.active_base_offset();
        let info = s.log.append(records.clone(), now_ms)?;
        self.apply_appended(s, &records, &info.batches, base_before);
        {
            let r = self.replicas.lock();
            self.update_hw(s, &r);
        }
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            log_start_offset: s.log.log_start_offset(),
            duplicate: false,
        })
    }

    /// Records appended batches in the producer state. If the log rolled meanwhile (the
    /// active segment was based at `base_before`), first snapshots the state as of the new
    /// segment's base: with exactly the batches below it applied, as Kafka does at a roll.
    fn apply_appended(
        &self,
        s: &mut State,
        records: &[u8],
        batches: &[BatchMeta],
        base_before: i64,
    ) {
        let base = s.log.active_base_offset();
        let mut pending = (base != base_before).then_some(base);
        for b in batches {
            if let Some(at) = pending.filter(|at| b.base_offset >= *at) {
                self.write_snapshot(&s.producers, at);
                pending = None;
            }
            s.producers.apply(records, b);
        }
        if let Some(at) = pending {
            self.write_snapshot(&s.producers, at);
        }
    }

    /// Snapshots are an optimisation: a failed write is logged, and the next open replays
    /// from an older snapshot or the log start.
    fn write_snapshot(&self, producers: &ProducerStates, offset: i64) {
        if let Err(e) = snapshot::write(&self.dir, offset, producers) {
            tracing::warn!(dir = %self.dir.display(), offset, error = %e, "writing producer snapshot");
        }
    }

    /// Deletes snapshots below the log start, which `load_producers` never uses.
    fn prune_snapshots_below(&self, log_start: i64) {
        if let Err(e) = snapshot::delete_where(&self.dir, |o| o < log_start) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "deleting producer snapshots");
        }
    }

    /// The last stable offset: the high watermark, or the first offset of the earliest
    /// transaction still open on this partition if that is lower.
    pub fn last_stable_offset(&self) -> Result<i64, LogError> {
        self.with(|s| Ok(s.producers.last_stable_offset(s.log.high_watermark())))
    }

    /// Aborted transactions overlapping `[from, to)`, for read_committed fetches.
    pub fn aborted_between(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>, LogError> {
        self.with(|s| {
            s.producers.trim_aborted(s.log.log_start_offset());
            Ok(s.producers.aborted_between(from, to))
        })
    }

    /// Drops idle producers (`producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<usize, LogError> {
        self.with(|s| Ok(s.producers.expire(now_ms, expiration_ms)))
    }

    /// Producers with state on this partition (DescribeProducers).
    pub fn producers(&self) -> Result<Vec<ProducerView>, LogError> {
        self.with(|s| Ok(s.producers.producers()))
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        self.with(|s| s.log.read(offset, max_bytes))
    }

    /// (log start offset, high watermark). A single node's high watermark is its log end.
    pub fn offsets(&self) -> Result<(i64, i64), LogError> {
        self.with(|s| Ok((s.log.log_start_offset(), s.log.high_watermark())))
    }

    /// (log start offset, log end offset): what a coordinator replays when it comes to lead
    /// this partition. A new leader's high watermark lags its log end until the followers
    /// fetch from it, yet everything in its log is acknowledged or will be committed by it;
    /// replaying only to the high watermark would forget the last acknowledged commits.
    /// Kafka's coordinators load to the log end too.
    pub fn replay_range(&self) -> Result<(i64, i64), LogError> {
        self.with(|s| Ok((s.log.log_start_offset(), s.log.log_end_offset())))
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampOffset>, LogError> {
        self.with(|s| s.log.offset_for_timestamp(ts))
    }

    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.with(|s| Ok(s.log.max_timestamp()))
    }

    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        self.with(|s| {
            let before = s.log.log_start_offset();
            let start = s.log.delete_records_before(offset)?;
            if start > before {
                self.prune_snapshots_below(start);
            }
            Ok(start)
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.with(|s| Ok(s.log.size_bytes())).unwrap_or(0)
    }

    pub fn update_config(&self, config: LogConfig) -> Result<(), LogError> {
        self.with(|s| {
            s.log.update_config(config);
            Ok(())
        })
    }

    /// Periodic work: fsync per the flush policy, roll, enforce retention, compact. A roll
    /// snapshots producer state; retention deletes snapshots below the new log start.
    pub fn maintain(&self, now_ms: i64, retention: bool, compact: bool) -> Result<(), LogError> {
        self.with(|s| {
            s.log.flush_if_due(now_ms)?;
            if retention {
                let (base, start) = (s.log.active_base_offset(), s.log.log_start_offset());
                s.log.roll_if_due(now_ms)?;
                // Retention may roll too; either way the roll is at the log end.
                s.log.apply_retention(now_ms)?;
                if s.log.active_base_offset() != base {
                    self.write_snapshot(&s.producers, s.log.log_end_offset());
                }
                if s.log.log_start_offset() > start {
                    self.prune_snapshots_below(s.log.log_start_offset());
                }
            }
            if compact {
                spate_log::cleaner::compact(&mut s.log, now_ms)?;
            }
            Ok(())
        })
    }

    /// Flushes, snapshots producer state at the log end and marks the log cleanly shut
    /// down. Later calls fail with a storage error.
    pub fn close(&self) -> Result<(), LogError> {
        match self.state.lock().take() {
            Some(mut s) => {
                s.log.flush()?;
                self.write_snapshot(&s.producers, s.log.log_end_offset());
                s.log.close()
            }
            None => Ok(()),
        }
    }
}

/// Producer state as of the log end: the newest valid snapshot inside [log start, log end]
/// plus a replay of the log from its offset, or a replay of the whole log. Snapshots past the
/// log end describe data that recovery or truncation removed: they are deleted first, so a
/// rewritten log can never meet them.
fn load_producers(log: &PartitionLog) -> Result<ProducerStates, LogError> {
    let (dir, start, end) = (log.dir(), log.log_start_offset(), log.log_end_offset());
    snapshot::delete_where(dir, |o| o > end)?;
    let (from, producers) = match snapshot::load_latest(dir, start, end) {
        Ok(Some(found)) => found,
        Ok(None) => (start, ProducerStates::default()),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "reading producer snapshots");
            (start, ProducerStates::default())
        }
    };
    tracing::debug!(dir = %dir.display(), from, end, "replaying producer state");
    replay_producers(log, from, producers)
}

/// Applies the batches from `offset` (a batch boundary) to the log end to `producers`.
fn replay_producers(
    log: &PartitionLog,
    mut offset: i64,
    mut producers: ProducerStates,
) -> Result<ProducerStates, LogError> {
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, REPLAY_CHUNK)?;
        if chunk.is_empty() {
            // Compaction can leave no batch between here and the log end.
            break;
        }
        let batches = parse_batches(&chunk)?;
        let Some(last) = batches.last() else { break };
        for b in &batches {
            producers.apply(&chunk, b);
        }
        offset = last.last_offset() + 1;
    }
    Ok(producers)
}

/// The headers of the batches in a produce request, without CRC checks (enough for the
/// idempotent-producer sequence check).
/// A verified transactional write whose transaction ended meanwhile (KIP-890 part 1).
fn ended_txn() -> AppendError {
    AppendError {
        code: ResponseError::InvalidTxnState,
        message: "the producer's transaction ended before this batch was written".into(),
    }
}

fn batch_headers(records: &[u8]) -> Result<Vec<spate_log::BatchMeta>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let meta = spate_log::batch::parse_header(&records[pos..], pos)?;
        if meta.size == 0 {
            return Err(LogError::Corrupt("zero-length batch".into()));
        }
        pos += meta.size;
        out.push(meta);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record_batch, Writer};

    /// One record from producer `pid` (epoch 0) at sequence `seq`.
    fn batch(pid: i64, seq: i32, transactional: bool) -> Bytes {
        let writer = Writer {
            producer_id: pid,
            epoch: 0,
            sequence: seq,
            transactional,
        };
        let value = format!("value-{pid}-{seq}");
        record_batch(writer, 1_700_000_000_000, &[(None, value.as_bytes())])
    }

    fn open(dir: &Path) -> Result<Partition, LogError> {
        let config = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        Partition::open(dir, 0, config)
    }

    #[tokio::test]
    async fn a_leader_that_steps_down_fails_its_waiting_writes_and_leads_again_only_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(open(dir.path()).unwrap());
        p.set_assignment(1, &[1, 2], &[1, 2], 0);
        p.become_leader(3).unwrap();
        let last = p.append(batch(7, 0, false), 0).unwrap().last_offset;
        // An acks=all write waits for follower 2, which never fetches.
        let waiting =
            tokio::spawn(crate::cluster::replicated::Unreplicated::new(p.clone(), last).wait());
        tokio::task::yield_now().await;
        assert!(p.step_down());
        assert!(!p.is_leader() && p.is_stepped_down());
        assert_eq!(
            waiting.await.unwrap(),
            Err(ResponseError::NotLeaderOrFollower),
            "woken at once, not at its timeout"
        );
        assert!(!p.step_down(), "already stepped down");
        // The metadata still names it leader in epoch 3: becoming leader again in that epoch
        // (the applier re-applying) does not undo the step-down; only resuming does.
        p.become_leader(3).unwrap();
        assert!(!p.is_leader());
        assert!(!p.resume_leadership(2), "another epoch");
        assert!(p.resume_leadership(3));
        assert!(p.is_leader());
        // A new epoch, or following, clears it too.
        assert!(p.step_down());
        p.become_leader(4).unwrap();
        assert!(p.is_leader());
        assert!(p.step_down());
        p.become_follower();
        assert!(!p.is_stepped_down() && !p.is_leader());
        assert!(!p.step_down(), "a follower has nothing to step down from");
    }

    #[test]
    fn producer_state_resumes_from_the_snapshot_after_a_clean_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).unwrap();
        for seq in 0..10 {
            p.append(batch(7, seq, false), 0).unwrap();
        }
        let aborted_at = p.append(batch(8, 0, true), 0).unwrap().base_offset;
        p.append_marker(8, 0, Marker::Abort, 1, 0).unwrap();
        let open_at = p.append(batch(8, 1, true), 0).unwrap().base_offset;
        let end = p.positions().unwrap().2;
        assert!(
            !snapshot::list(dir.path()).unwrap().is_empty(),
            "segment rolls wrote snapshots"
        );
        p.close().unwrap();
        let snapshots = snapshot::list(dir.path()).unwrap();
        assert_eq!(snapshots.len(), 2, "only the last two are kept");
        assert_eq!(
            snapshots.last(),
            Some(&end),
            "close snapshots at the log end"
        );

        // Corrupt the first batch: a full replay would now fail its CRC check.
        let first = dir.path().join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[70] ^= 0xff;
        std::fs::write(&first, &bytes).unwrap();

        let p = open(dir.path()).expect("replay starts at the snapshot");
        assert_eq!(
            p.append(batch(7, 9, false), 0).unwrap(),
            Appended {
                base_offset: 9,
                last_offset: 9,
                log_append_time: -1,
                log_start_offset: 0,
                duplicate: true
            }
        );
        assert_eq!(p.positions().unwrap().2, end, "the retry wrote nothing");
        assert_eq!(p.last_stable_offset().unwrap(), open_at);
        let aborted = p.aborted_between(0, end).unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(
            (aborted[0].producer_id, aborted[0].first_offset),
            (8, aborted_at)
        );
        p.close().unwrap();

        // Without snapshots the whole log is replayed, and meets the corrupt batch.
        snapshot::delete_where(dir.path(), |_| true).unwrap();
        assert!(open(dir.path()).is_err());
    }

    #[test]
    fn truncation_drops_snapshots_past_the_new_end_and_rebuilds_from_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).unwrap();
        for seq in 0..6 {
            p.append(batch(7, seq, false), 0).unwrap();
        }
        let cut = p.positions().unwrap().2;
        p.append(batch(8, 0, true), 0).unwrap();
        p.close().unwrap();
        let p = open(dir.path()).unwrap();
        p.truncate_to(cut).unwrap();
        assert!(snapshot::list(dir.path())
            .unwrap()
            .iter()
            .all(|o| *o <= cut));
        // Producer 8's transaction is gone with its batch; producer 7 continues.
        assert_eq!(p.last_stable_offset().unwrap(), cut);
        assert!(p.producers().unwrap().iter().all(|v| v.producer_id == 7));
        assert!(p.append(batch(7, 6, false), 0).is_ok());
        p.truncate_fully_and_start_at(100).unwrap();
        assert!(snapshot::list(dir.path()).unwrap().is_empty());
        assert!(p.producers().unwrap().is_empty());
    }
}
