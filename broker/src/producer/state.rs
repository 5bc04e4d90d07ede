//! Per-partition producer state: the last five batches of every producer id, so that a
//! retried batch is answered with its original offsets instead of being written twice; and
//! the partition's side of transactions: which producers have a transaction open here (from
//! their first transactional batch to their commit or abort marker), the last stable offset
//! that follows from them, and the index of aborted transactions read_committed fetches need.
//!
//! Everything here is derived from the log: it is rebuilt on open and after truncation from
//! the newest snapshot (`snapshot`) plus a replay of the log after it, and followers apply
//! the batches they fetch, so it survives restarts and leader failover.
use std::collections::{BTreeSet, HashMap, VecDeque};

use spate_log::BatchMeta;

/// Kafka keeps five batches per producer, matching `max.in.flight.requests.per.connection`.
pub(super) const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CachedBatch {
    pub(super) first_seq: i32,
    pub(super) last_seq: i32,
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ProducerEntry {
    pub(super) epoch: i16,
    pub(super) batches: VecDeque<CachedBatch>,
    /// The first offset of this producer's open transaction on this partition.
    pub(super) txn_first_offset: Option<i64>,
    /// The coordinator epoch of the last marker (DescribeProducers shows it).
    pub(super) coordinator_epoch: i32,
    pub(super) last_timestamp: i64,
}

/// A transaction that was aborted on this partition: its records lie between `first_offset`
/// and `last_offset` (the abort marker). Fetch v4+ hands these to read_committed consumers,
/// which drop the producer's records in that range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The kind of a control batch (the type field of its one record's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub txn_start_offset: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not from an idempotent producer, or the next in sequence: append it.
    Append,
    /// Already written: answer with the original offsets and write nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// A zombie: a newer epoch of this producer id exists (INVALID_PRODUCER_EPOCH).
    #[error("producer epoch {got} is older than the current epoch {current}")]
    StaleEpoch { got: i16, current: i16 },
    /// A gap or reordering (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence {got}, expected {expected}")]
    OutOfOrder { got: i32, expected: i32 },
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    pub(super) producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: (first offset, producer id), earliest first.
    pub(super) ongoing: BTreeSet<(i64, i64)>,
    /// Aborted transactions, in the order of their markers (so by `last_offset`).
    pub(super) aborted: Vec<AbortedTxn>,
    /// KIP-890 part 1: producers whose next transaction here is being verified with the
    /// coordinator, with (epoch, guard). A marker ends the verification, so a batch verified
    /// before its transaction was aborted cannot open a new, hanging one. In memory only:
    /// a restart just makes the next batch verify again.
    verifying: HashMap<i64, (i16, u64)>,
    next_guard: u64,
}

impl ProducerStates {
    pub fn check(&self, batch: &BatchMeta) -> Result<SequenceCheck, SequenceError> {
        if batch.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return expect_first(batch, 0);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                got: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if batch.producer_epoch > entry.epoch {
            return expect_first(batch, 0);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == batch.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            });
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        expect_first(batch, expected)
    }

    /// Whether `batch` would open a transaction here, so that it must first be verified to
    /// belong to the producer's ongoing transaction (KIP-890 part 1).
    pub fn needs_verification(&self, batch: &BatchMeta) -> bool {
        batch.is_transactional() && self.opens_txn(batch.producer_id)
    }

    /// Whether a transactional write of `producer_id` would open a transaction here.
    pub fn opens_txn(&self, producer_id: i64) -> bool {
        producer_id >= 0
            && self
                .producers
                .get(&producer_id)
                .is_none_or(|e| e.txn_first_offset.is_none())
    }

    /// Starts (or joins) the verification of `producer_id`'s next transaction here: the
    /// guard to append with once the coordinator confirmed it. Concurrent requests of one
    /// producer share a guard.
    pub fn start_verification(&mut self, producer_id: i64, epoch: i16) -> u64 {
        if let Some((e, guard)) = self.verifying.get(&producer_id) {
            if *e == epoch {
                return *guard;
            }
        }
        self.next_guard += 1;
        self.verifying.insert(producer_id, (epoch, self.next_guard));
        self.next_guard
    }

    /// May `batch`, verified under `guard`, be appended? Yes if it opens no transaction
    /// (one is open already) or the verification is still the current one.
    pub fn verified(&self, batch: &BatchMeta, guard: u64) -> bool {
        !self.needs_verification(batch)
            || self.verifying.get(&batch.producer_id) == Some(&(batch.producer_epoch, guard))
    }

    /// A transaction marker for `producer_id` at `epoch` may be written: not from an epoch
    /// older than the producer's current one (a fenced coordinator or a late retry).
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(SequenceError::StaleEpoch {
                got: epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a batch that is now in the log. `buf[batch.position..]` holds its bytes (a
    /// control batch's type is in its record). Control batches end the producer's
    /// transaction; transactional data batches open one if none is open.
    pub fn apply(&mut self, buf: &[u8], batch: &BatchMeta) {
        if batch.is_control() {
            let end = (batch.position + batch.size).min(buf.len());
            let marker = buf
                .get(batch.position..end)
                .and_then(control_type)
                .unwrap_or(Marker::Abort);
            let coordinator_epoch = buf
                .get(batch.position..end)
                .and_then(control_coordinator_epoch)
                .unwrap_or(-1);
            self.end_txn(batch, marker, coordinator_epoch);
        } else {
            self.record(batch);
        }
    }

    /// Applies a commit or abort marker at `batch` (its offset is the transaction's end).
    pub fn end_txn(&mut self, batch: &BatchMeta, marker: Marker, coordinator_epoch: i32) {
        if batch.producer_id < 0 {
            return;
        }
        self.verifying.remove(&batch.producer_id);
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = batch.max_timestamp;
        if let Some(first) = entry.txn_first_offset.take() {
            self.ongoing.remove(&(first, batch.producer_id));
            if marker == Marker::Abort {
                self.aborted.push(AbortedTxn {
                    producer_id: batch.producer_id,
                    first_offset: first,
                    last_offset: batch.base_offset,
                });
            }
        }
    }

    /// The last stable offset: the first offset of the earliest open transaction, capped by
    /// `high_watermark`. read_committed consumers read below it.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.ongoing
            .first()
            .map_or(high_watermark, |(first, _)| (*first).min(high_watermark))
    }

    /// Aborted transactions overlapping `[from, to)`: ended at or after `from` and begun
    /// before `to`, as Kafka's `collectAbortedTransactions`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (retention removed them).
    pub fn trim_aborted(&mut self, log_start: i64) {
        let cut = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..cut);
    }

    /// Every producer with state here, for DescribeProducers.
    pub fn producers(&self) -> Vec<ProducerView> {
        let mut out: Vec<ProducerView> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerView {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Records a data batch that is now in the log (with its assigned offsets).
    pub fn record(&mut self, batch: &BatchMeta) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = batch.max_timestamp;
        if batch.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.base_offset);
            self.ongoing.insert((batch.base_offset, batch.producer_id));
        }
        if batch.base_sequence < 0 {
            // Internal transactional writes (TxnOffsetCommit) carry no sequence.
            return;
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset: batch.base_offset,
            last_offset: batch.last_offset(),
        });
    }

    /// Drops producers whose last batch is `expiration_ms` or more older than `now_ms` and
    /// that have no transaction open here (Kafka's `removeExpiredProducers`). A dropped
    /// producer is unknown here from then on: its next batch must start at sequence 0 (Kafka
    /// accepts any sequence from an unknown producer; we keep the check that protects the
    /// order of a new producer's first batches). Returns how many were dropped.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// The marker type of a control batch (`batch` is the whole batch, uncompressed as Kafka
/// writes them): its first record's key is `int16 version, int16 type` (0 abort, 1 commit).
pub fn control_type(batch: &[u8]) -> Option<Marker> {
    let (key, _) = control_record(batch)?;
    match i16::from_be_bytes([*key.get(2)?, *key.get(3)?]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

/// The coordinator epoch in a control record's value (`int16 version, int32 epoch`).
fn control_coordinator_epoch(batch: &[u8]) -> Option<i32> {
    let (_, value) = control_record(batch)?;
    let v = value.get(2..6)?;
    Some(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// (key, value) of a batch's first record.
fn control_record(batch: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut pos = spate_log::batch::HEADER_SIZE;
    let _len = read_varint(batch, &mut pos)?;
    pos += 1; // attributes
    let _ts = read_varint(batch, &mut pos)?;
    let _delta = read_varint(batch, &mut pos)?;
    let klen = usize::try_from(read_varint(batch, &mut pos)?).ok()?;
    let key = batch.get(pos..pos + klen)?;
    pos += klen;
    let vlen = usize::try_from(read_varint(batch, &mut pos)?).ok()?;
    let value = batch.get(pos..pos + vlen)?;
    Some((key, value))
}

/// A zigzag varint (varlong) as record fields use.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn expect_first(batch: &BatchMeta, expected: i32) -> Result<SequenceCheck, SequenceError> {
    if batch.base_sequence == expected {
        Ok(SequenceCheck::Append)
    } else {
        Err(SequenceError::OutOfOrder {
            got: batch.base_sequence,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            position: 0,
            size: 0,
            base_offset,
            last_offset_delta: count - 1,
            partition_leader_epoch: 0,
            attributes: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn retried_batches_are_duplicates_with_original_offsets() {
        let mut s = ProducerStates::default();
        let b0 = batch(1, 0, 0, 3, 10);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.record(&b0);
        let b1 = batch(1, 0, 3, 2, 13);
        assert_eq!(s.check(&b1), Ok(SequenceCheck::Append));
        s.record(&b1);
        assert_eq!(
            s.check(&batch(1, 0, 0, 3, -1)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            })
        );
        assert_eq!(
            s.check(&batch(1, 0, 3, 2, -1)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 13,
                last_offset: 14
            })
        );
    }

    #[test]
    fn gaps_and_zombies_are_refused() {
        let mut s = ProducerStates::default();
        s.record(&batch(1, 2, 0, 1, 0));
        assert_eq!(
            s.check(&batch(1, 2, 5, 1, 0)),
            Err(SequenceError::OutOfOrder {
                got: 5,
                expected: 1
            })
        );
        assert_eq!(
            s.check(&batch(1, 1, 1, 1, 0)),
            Err(SequenceError::StaleEpoch { got: 1, current: 2 })
        );
        // A new epoch starts again at sequence 0.
        assert_eq!(s.check(&batch(1, 3, 0, 1, 0)), Ok(SequenceCheck::Append));
        assert!(s.check(&batch(1, 3, 1, 1, 0)).is_err());
        // A producer never seen must start at 0.
        assert!(s.check(&batch(9, 0, 4, 1, 0)).is_err());
        // Non-idempotent batches are never checked.
        assert_eq!(s.check(&batch(-1, -1, -1, 1, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut s = ProducerStates::default();
        let mut idle = batch(1, 0, 0, 1, 0);
        idle.max_timestamp = 1_000;
        s.record(&idle);
        let mut open = batch(2, 0, 0, 1, 1);
        open.max_timestamp = 1_000;
        open.attributes |= 0x10; // transactional
        s.record(&open);
        let mut recent = batch(3, 0, 0, 1, 2);
        recent.max_timestamp = 50_000;
        s.record(&recent);
        assert_eq!(s.expire(60_000, 60_000), 0, "not yet a full expiration old");
        assert_eq!(s.expire(61_000, 60_000), 1);
        let left: Vec<i64> = s.producers().iter().map(|p| p.producer_id).collect();
        assert_eq!(left, vec![2, 3]);
        assert!(
            s.check(&batch(1, 0, 1, 1, 0)).is_err(),
            "forgotten: must start over"
        );
    }

    #[test]
    fn a_marker_cancels_a_pending_verification() {
        let mut s = ProducerStates::default();
        let mut first = batch(1, 0, 0, 1, 0);
        first.attributes |= 0x10; // transactional
        assert!(s.needs_verification(&first));
        let guard = s.start_verification(1, 0);
        assert_eq!(
            s.start_verification(1, 0),
            guard,
            "concurrent requests share it"
        );
        assert!(s.verified(&first, guard));
        assert!(!s.verified(&first, guard + 1));
        // The transaction is aborted before the verified batch lands: it may not open a new one.
        s.end_txn(&batch(1, 0, -1, 1, 0), Marker::Abort, 0);
        assert!(!s.verified(&first, guard));
        // Verified again, it lands and opens the transaction; later batches need nothing.
        let guard = s.start_verification(1, 0);
        assert!(s.verified(&first, guard));
        s.record(&first);
        let mut second = batch(1, 0, 1, 1, 1);
        second.attributes |= 0x10;
        assert!(!s.needs_verification(&second));
        assert!(s.verified(&second, 0));
        // Non-transactional batches never need it.
        assert!(!s.needs_verification(&batch(2, 0, 0, 1, 2)));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&batch(1, 0, i, 1, i as i64));
        }
        assert!(matches!(
            s.check(&batch(1, 0, 6, 1, 0)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert!(matches!(
            s.check(&batch(1, 0, 1, 1, 0)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }
}

/// Encodes a control batch: one record whose key is `(version 0, type)` and whose value is
/// `(version 0, coordinator epoch)`, transactional and control attributes set, no sequence.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Result<bytes::Bytes, String> {
    use bytes::BufMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let mut key = bytes::BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    });
    let mut value = bytes::BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod txn_tests {
    use super::*;

    fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            position: 0,
            size: 0,
            base_offset,
            last_offset_delta: count - 1,
            partition_leader_epoch: 0,
            attributes: 0x10,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    fn marker(pid: i64, epoch: i16, offset: i64, m: Marker) -> (bytes::Bytes, BatchMeta) {
        let bytes = control_batch(pid, epoch, m, 7, 0).unwrap();
        let mut meta = spate_log::batch::parse_one(&bytes, 0).unwrap();
        meta.base_offset = offset;
        (bytes, meta)
    }

    #[test]
    fn control_batches_round_trip_their_type_and_coordinator_epoch() {
        let (bytes, meta) = marker(4, 2, 0, Marker::Commit);
        assert!(meta.is_control() && meta.is_transactional());
        assert_eq!(meta.base_sequence, -1);
        assert_eq!(control_type(&bytes), Some(Marker::Commit));
        assert_eq!(control_coordinator_epoch(&bytes), Some(7));
        let (bytes, _) = marker(4, 2, 0, Marker::Abort);
        assert_eq!(control_type(&bytes), Some(Marker::Abort));
    }

    #[test]
    fn last_stable_offset_stops_at_the_earliest_open_transaction() {
        let mut s = ProducerStates::default();
        assert_eq!(s.last_stable_offset(10), 10);
        s.record(&txn_batch(1, 0, 0, 2, 3)); // 3..4
        s.record(&txn_batch(2, 0, 0, 1, 5)); // 5
        s.record(&txn_batch(1, 0, 2, 1, 6)); // 6: same txn, first offset stays 3
        assert_eq!(s.last_stable_offset(10), 3);
        assert_eq!(s.last_stable_offset(2), 2, "never above the high watermark");
        let (b, m) = marker(1, 0, 7, Marker::Commit);
        s.apply(&b, &m);
        assert_eq!(s.last_stable_offset(10), 5);
        let (b, m) = marker(2, 0, 8, Marker::Abort);
        s.apply(&b, &m);
        assert_eq!(s.last_stable_offset(10), 10);
        // The producer's sequence continues across transactions within an epoch.
        assert_eq!(
            s.check(&txn_batch(1, 0, 3, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn aborted_index_lists_transactions_overlapping_the_fetched_range() {
        let mut s = ProducerStates::default();
        s.record(&txn_batch(1, 0, 0, 2, 0)); // 0..1
        let (b, m) = marker(1, 0, 2, Marker::Abort);
        s.apply(&b, &m);
        s.record(&txn_batch(2, 0, 0, 1, 3));
        let (b, m) = marker(2, 0, 4, Marker::Commit);
        s.apply(&b, &m);
        s.record(&txn_batch(1, 0, 2, 1, 5));
        let (b, m) = marker(1, 0, 6, Marker::Abort);
        s.apply(&b, &m);
        let all = s.aborted_between(0, 100);
        assert_eq!(
            all,
            vec![
                AbortedTxn {
                    producer_id: 1,
                    first_offset: 0,
                    last_offset: 2
                },
                AbortedTxn {
                    producer_id: 1,
                    first_offset: 5,
                    last_offset: 6
                }
            ]
        );
        assert_eq!(s.aborted_between(3, 5).len(), 0);
        assert_eq!(s.aborted_between(2, 3).len(), 1);
        assert_eq!(s.aborted_between(6, 7)[0].first_offset, 5);
        s.trim_aborted(3);
        assert_eq!(s.aborted_between(0, 100).len(), 1);
    }

    #[test]
    fn a_marker_from_a_newer_epoch_fences_the_old_one() {
        let mut s = ProducerStates::default();
        s.record(&txn_batch(1, 0, 0, 1, 0));
        // The coordinator bumped the epoch and aborted (InitProducerId of a new instance).
        let (b, m) = marker(1, 1, 1, Marker::Abort);
        s.apply(&b, &m);
        assert_eq!(
            s.check(&txn_batch(1, 0, 1, 1, -1)),
            Err(SequenceError::StaleEpoch { got: 0, current: 1 })
        );
        assert!(s.check_marker(1, 0).is_err());
        assert_eq!(
            s.check(&txn_batch(1, 1, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(s.aborted_between(0, 10).len(), 1);
    }
}
