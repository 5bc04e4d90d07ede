//! One partition this broker hosts: its log and its producer state behind one lock, so that
//! the duplicate check and the append are one step.
//!
//! This file holds the partition itself: opening (rebuilding producer state), reads, offsets,
//! maintenance and close. `append.rs` is the write path: producer appends with their
//! duplicate and transaction checks, markers and the broker's own writes. `replicas.rs` is
//! replication: the replica set and ISR, followers' progress and the high watermark, the
//! leader's role, and the follower's side of its log.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use spate_log::{parse_batches, LogConfig, LogError, PartitionLog, TimestampOffset};
use tokio::sync::watch;

use crate::producer::{snapshot, AbortedTxn, ProducerStates, ProducerView};

mod append;
mod replicas;

pub use append::{AppendError, Appended};
use replicas::Replicas;
pub use replicas::{Follower, ReplicaView};

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

    /// Reads from `offset`, stopping before `max_offset` (the high watermark for consumers).
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        self.with(|s| s.log.read_up_to(offset, max_bytes, max_offset))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, LogError>) -> Result<T, LogError> {
        let mut guard = self.state.lock();
        match guard.as_mut() {
            Some(s) => f(s),
            None => Err(LogError::Io(std::io::Error::other("partition is closed"))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::Marker;
    use crate::testing::{record_batch, Writer};

    /// One record from producer `pid` (epoch 0) at sequence `seq`.
    pub(super) fn batch(pid: i64, seq: i32, transactional: bool) -> Bytes {
        let writer = Writer {
            producer_id: pid,
            epoch: 0,
            sequence: seq,
            transactional,
        };
        let value = format!("value-{pid}-{seq}");
        record_batch(writer, 1_700_000_000_000, &[(None, value.as_bytes())])
    }

    pub(super) fn open(dir: &Path) -> Result<Partition, LogError> {
        let config = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        Partition::open(dir, 0, config)
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
}
