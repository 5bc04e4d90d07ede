//! Per-partition producer state: the last five batches of every producer id, so that a
//! retried batch is answered with its original offsets instead of being written twice.
use std::collections::{HashMap, VecDeque};

use spate_log::BatchMeta;

/// Kafka keeps five batches per producer, matching `max.in.flight.requests.per.connection`.
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
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
    producers: HashMap<i64, ProducerEntry>,
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

    /// Records a batch that is now in the log (with its assigned offsets).
    pub fn record(&mut self, batch: &BatchMeta) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
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

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
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
