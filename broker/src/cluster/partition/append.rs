//! The write path: producer appends (duplicate and sequence checks, transaction
//! verification), transaction markers, and batches the broker writes itself.
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use spate_log::{BatchMeta, LogError};

use super::{log_error_code, Partition, State};
use crate::producer::{control_batch, Marker, SequenceCheck, SequenceError};

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

impl Partition {
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
    pub(super) fn apply_appended(
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
}

/// A verified transactional write whose transaction ended meanwhile (KIP-890 part 1).
fn ended_txn() -> AppendError {
    AppendError {
        code: ResponseError::InvalidTxnState,
        message: "the producer's transaction ended before this batch was written".into(),
    }
}

/// The headers of the batches in a produce request, without CRC checks (enough for the
/// idempotent-producer sequence check).
fn batch_headers(records: &[u8]) -> Result<Vec<BatchMeta>, LogError> {
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
