//! One partition this broker hosts: its log and its producer state behind one lock, so that
//! the duplicate check and the append are one step.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use spate_log::{parse_batches, LogConfig, LogError, PartitionLog, TimestampOffset};

use crate::producer::{ProducerStates, SequenceCheck, SequenceError};

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

pub struct Partition {
    pub index: i32,
    pub dir: PathBuf,
    state: Mutex<Option<State>>,
    /// Cluster mode: the leader epoch this replica leads in, or -1 while it does not lead.
    /// Unused on a single node, which leads everything.
    led_epoch: AtomicI32,
}

/// Bytes read per step when rebuilding producer state from the log.
const REPLAY_CHUNK: usize = 4 * 1024 * 1024;

impl Partition {
    /// Opens the log (recovering it) and rebuilds producer state from what it holds.
    pub fn open(dir: &Path, index: i32, config: LogConfig) -> Result<Self, LogError> {
        let log = PartitionLog::open(dir, config)?;
        let producers = replay_producers(&log)?;
        Ok(Self {
            index,
            dir: dir.to_path_buf(),
            state: Mutex::new(Some(State { log, producers })),
            led_epoch: AtomicI32::new(-1),
        })
    }

    /// Cluster mode: does this replica lead the partition now?
    pub fn is_leader(&self) -> bool {
        self.led_epoch.load(Ordering::Acquire) >= 0
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
            Ok(())
        })?;
        self.led_epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// Cluster mode: another broker leads (or nobody does).
    pub fn become_follower(&self) {
        if self.led_epoch.swap(-1, Ordering::AcqRel) >= 0 {
            let _ = self.with(|s| {
                s.log.set_leader_epoch(None);
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
        let batches = parse_batches(&records)?;
        let mut guard = self.state.lock();
        let s = guard.as_mut().ok_or_else(|| {
            AppendError::from(LogError::Io(std::io::Error::other("partition is closed")))
        })?;
        if let Some(first) = batches.first().filter(|b| b.producer_id >= 0) {
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
        let info = s.log.append(records, now_ms)?;
        for b in &info.batches {
            s.producers.record(b);
        }
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            log_start_offset: s.log.log_start_offset(),
            duplicate: false,
        })
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        self.with(|s| s.log.read(offset, max_bytes))
    }

    /// (log start offset, high watermark). A single replica's high watermark is its log end.
    pub fn offsets(&self) -> Result<(i64, i64), LogError> {
        self.with(|s| Ok((s.log.log_start_offset(), s.log.log_end_offset())))
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampOffset>, LogError> {
        self.with(|s| s.log.offset_for_timestamp(ts))
    }

    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.with(|s| Ok(s.log.max_timestamp()))
    }

    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        self.with(|s| s.log.delete_records_before(offset))
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

    /// Periodic work: fsync per the flush policy, roll, enforce retention, compact.
    pub fn maintain(&self, now_ms: i64, retention: bool, compact: bool) -> Result<(), LogError> {
        self.with(|s| {
            s.log.flush_if_due(now_ms)?;
            if retention {
                s.log.roll_if_due(now_ms)?;
                s.log.apply_retention(now_ms)?;
            }
            if compact {
                spate_log::cleaner::compact(&mut s.log, now_ms)?;
            }
            Ok(())
        })
    }

    /// Flushes and marks the log cleanly shut down. Later calls fail with a storage error.
    pub fn close(&self) -> Result<(), LogError> {
        match self.state.lock().take() {
            Some(s) => s.log.close(),
            None => Ok(()),
        }
    }
}

fn replay_producers(log: &PartitionLog) -> Result<ProducerStates, LogError> {
    let mut producers = ProducerStates::default();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, REPLAY_CHUNK)?;
        if chunk.is_empty() {
            // Compaction can leave no batch between here and the log end.
            break;
        }
        let batches = parse_batches(&chunk)?;
        let Some(last) = batches.last() else { break };
        for b in &batches {
            producers.record(b);
        }
        offset = last.last_offset() + 1;
    }
    Ok(producers)
}
