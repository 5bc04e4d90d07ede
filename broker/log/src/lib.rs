//! Spate's partition commit log.
//!
//! # Layout
//! - `batch`     — record batch v2 header parsing, CRC-32C checks, base-offset rewrite (bytes only)
//! - `record`    — records inside a batch (decompression, raw record slices), for timestamp
//!   lookups and compaction only
//! - `segment`   — one segment: `<base>.log` file plus its sparse indexes
//! - `index`     — sparse offset index (`<base>.index`) and time index (`<base>.timeindex`)
//! - `log`       — `PartitionLog`: the ordered segments of one partition; append, read, roll,
//!   retention, delete-records, recovery of a torn or corrupt tail
//! - `cleaner`   — compaction (`cleanup.policy=compact`)
//! - `epoch`     — leader epoch cache (`leader-epoch-checkpoint`) for replication
//! - `config`    — `LogConfig`, the per-partition settings the log obeys
//!
//! Record batches are stored exactly as produced: the log only rewrites the base offset and
//! partition leader epoch (neither is covered by the CRC) and, for LogAppendTime topics, the
//! timestamp type and max timestamp (CRC recomputed); replicas store the leader's batches
//! byte for byte. It never decompresses on the hot path.
//! Compaction and timestamp lookups are the only code that looks at records.
//!
//! # Files (one directory per partition)
//! `{base:020}.log` / `.index` / `.timeindex` per segment (Kafka's naming), plus
//! `log-start-offset` (moved by DeleteRecords and retention, written durably),
//! `recovery-point` (offset below which data was fsynced), `leader-epoch-checkpoint` (where
//! each leader epoch starts, written durably on every change) and `clean-shutdown` (exists
//! only between `close` and the next `open`). The broker keeps its producer state snapshots
//! (`{offset:020}.snapshot`) in the same directory; the log leaves them alone, except that
//! `open` deletes leftover `.tmp` files of every kind.
//!
//! # Flush policy
//! Every append is written to the page cache (it survives a process crash). fsync happens
//! when `flush.messages` records or `flush.ms` of age have accumulated (checked on append and
//! in `flush_if_due`, which the broker calls periodically), on every segment roll, on
//! `flush()` and on `close()`. After an fsync the recovery point moves to the log end.
//!
//! # Recovery
//! `open` without a `clean-shutdown` marker re-reads, CRC-checks and re-indexes every segment
//! that may hold data past the recovery point (the segment containing it and all later ones);
//! the log is cut at the first torn, corrupt or out-of-order batch, later segments are deleted,
//! and what remains is fsynced. Segments before the recovery point (or all, after a clean
//! shutdown) are trusted: their indexes are loaded and sanity-checked, and only the headers
//! after the last index entry are scanned — any inconsistency falls back to full recovery of
//! that segment. Leftover temp and `.cleaned` files are deleted. A segment's indexes are kept
//! in memory and written when it rolls, after compaction and on close. The epoch cache is
//! trimmed to [log start, log end], and rebuilt from the batch headers if its file is missing,
//! malformed or disagrees with the last batch.
//!
//! # Replication
//! - Leader: `assign_epoch(epoch, log_end_offset())` and `set_leader_epoch(Some(epoch))` on
//!   becoming leader; `append` stamps the epoch and records epoch changes in the cache;
//!   `end_offset_for_epoch` answers OffsetsForLeaderEpoch; `read_up_to(.., high_watermark())`
//!   serves consumers.
//! - Follower: `append_as_follower` stores fetched batches untouched (their offsets and
//!   epochs); `OffsetMismatch` or a new leader epoch means: ask the leader for
//!   `end_offset_for_epoch(latest_epoch())`, `truncate_to` it (Kafka's KIP-279 rules), fetch
//!   again; `truncate_fully_and_start_at` when the leader's log start is past our log end.
//! - High watermark: owned and checkpointed by the broker, told to the log with
//!   `set_high_watermark` (in memory). Retention, `delete_records_before` and compaction never
//!   go past it; until it is set it is the log end (single-node behaviour).

pub mod batch;
pub mod cleaner;
pub mod config;
pub mod epoch;
pub mod index;
pub mod log;
pub mod record;
pub mod segment;
#[cfg(test)]
mod testutil;

pub use batch::{parse_batches, BatchMeta};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};
pub use epoch::EpochEntry;
pub use log::{AppendInfo, PartitionLog, TimestampOffset};

/// Errors the log reports; the broker maps them to Kafka error codes at the wire edge:
/// - `Corrupt` — CORRUPT_MESSAGE (2)
/// - `InvalidRecord` — INVALID_RECORD (87)
/// - `TooLarge` — MESSAGE_TOO_LARGE (10)
/// - `OffsetOutOfRange` — OFFSET_OUT_OF_RANGE (1)
/// - `OffsetMismatch` — none: internal to replication (the follower truncates and fetches
///   again); UNKNOWN_SERVER_ERROR (-1) should it ever have to reach a client
/// - `Io` — KAFKA_STORAGE_ERROR (56)
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed its CRC, has a bad length or magic, or is truncated (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// A batch is well formed but not acceptable (INVALID_RECORD), e.g. magic < 2.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// A batch exceeds `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// Requested offset is outside [log start, log end] (OFFSET_OUT_OF_RANGE); for
    /// `delete_records_before`, `end` is the high watermark.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// `append_as_follower` got batches starting below the log end: the follower's log has
    /// diverged from the leader's and must be truncated (OffsetsForLeaderEpoch) before
    /// fetching again. Internal to replication; if it must reach a client,
    /// UNKNOWN_SERVER_ERROR.
    #[error("fetched batches start at offset {got} but the log ends at {expected}")]
    OffsetMismatch { expected: i64, got: i64 },
    /// Disk trouble (KAFKA_STORAGE_ERROR).
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
