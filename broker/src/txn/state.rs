//! One transactional id's state machine, as Kafka's `TransactionMetadata`:
//!
//! ```text
//! Empty ─AddPartitions─▶ Ongoing ─EndTxn(commit)─▶ PrepareCommit ─markers─▶ CompleteCommit
//!   ▲                      │ └────EndTxn(abort) / timeout / fencing─▶ PrepareAbort ─▶ CompleteAbort
//!   └─InitProducerId───────┴──(from Empty or Complete*: epoch bump)
//! ```
//!
//! The functions here are pure: they check a request against the metadata and return the
//! next metadata; the coordinator persists it to `__transaction_state` before acting on it.
use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

/// Kafka's `TransactionState`, with its ids as stored in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name `kafka-transactions.sh` shows (and filters ListTransactions by).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written: requests must wait (CONCURRENT_TRANSACTIONS).
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            Self::PrepareCommit | Self::PrepareAbort | Self::PrepareEpochFence
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) in the current transaction; `__consumer_offsets` partitions stand
    /// for the groups whose offsets it commits (AddOffsetsToTxn), as in Kafka.
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// What InitProducerId must do for an existing transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Hand out this metadata's producer id and (bumped) epoch; persist it first.
    Ready(TxnMetadata),
    /// An open transaction of the previous epoch must be aborted first: persist this
    /// PrepareAbort (epoch already bumped, which fences the old producer), write the abort
    /// markers, complete, then run InitProducerId again.
    AbortFirst(TxnMetadata),
    /// The epoch is exhausted: a new producer id is needed (epoch 0).
    NewProducerId,
}

/// The outcome of EndTxn's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Persist this Prepare* metadata, write markers, then complete.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn that already completed: answer success.
    AlreadyDone,
}

impl TxnMetadata {
    pub fn new(id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            transactional_id: id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Idle for `expiration_ms` with no transaction open or finishing: the coordinator may
    /// forget it (`transactional.id.expiration.ms`).
    pub fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && now_ms.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    /// InitProducerId for an id that exists. `expected` is the (producer id, epoch) a
    /// KIP-360 client names when it re-initializes; a mismatch means it was fenced.
    pub fn init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<InitStep, ResponseError> {
        if self.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            if pid != self.producer_id || epoch != self.producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
        }
        let mut next = self.clone();
        next.last_update_ms = now_ms;
        if self.state == TxnState::Ongoing && self.producer_epoch < i16::MAX {
            // Ready never hands out more than MAX - 1, so this bump cannot overflow.
            next.producer_epoch += 1;
            next.state = TxnState::PrepareAbort;
            return Ok(InitStep::AbortFirst(next));
        }
        if self.producer_epoch >= i16::MAX - 1 {
            return Ok(InitStep::NewProducerId);
        }
        next.producer_epoch += 1;
        next.state = TxnState::Empty;
        next.timeout_ms = timeout_ms;
        next.partitions.clear();
        next.start_ms = -1;
        Ok(InitStep::Ready(next))
    }

    /// The producer named in a request is this id's current one, at its current epoch.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when nothing changes (all already added).
    pub fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        if self.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if self.state == TxnState::Dead {
            return Err(ResponseError::InvalidTxnState);
        }
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(None);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.state = TxnState::Ongoing;
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn (commit or abort).
    pub fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndStep, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms;
                Ok(EndStep::Prepare(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndStep::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// After the markers are written: Complete*, partitions forgotten.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.last_update_ms = now_ms;
        next
    }

    /// The transaction timed out: abort it under a bumped epoch, which fences the producer
    /// (its next request gets PRODUCER_FENCED / INVALID_PRODUCER_EPOCH), as Kafka does.
    pub fn timed_out(&self, now_ms: i64) -> Option<TxnMetadata> {
        if self.state != TxnState::Ongoing
            || self.start_ms < 0
            || now_ms < self.start_ms.saturating_add(i64::from(self.timeout_ms))
            || self.producer_epoch >= i16::MAX - 1
        {
            return None;
        }
        let mut next = self.clone();
        next.producer_epoch += 1;
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let m = TxnMetadata::new("t", 7, 60_000, 0);
        m.add_partitions(7, 0, &[("a".into(), 0)], 10)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_transaction_goes_empty_ongoing_prepare_complete() {
        let m = TxnMetadata::new("t", 7, 60_000, 0);
        assert_eq!(m.state, TxnState::Empty);
        let m = m
            .add_partitions(7, 0, &[("a".into(), 0), ("b".into(), 1)], 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.state, m.start_ms, m.partitions.len()),
            (TxnState::Ongoing, 10, 2)
        );
        // Adding what is already there writes nothing.
        assert_eq!(m.add_partitions(7, 0, &[("a".into(), 0)], 11), Ok(None));
        let EndStep::Prepare(p) = m.end(7, 0, true, 20).unwrap() else {
            panic!("expected Prepare");
        };
        assert_eq!(p.state, TxnState::PrepareCommit);
        // While markers are written, everything waits.
        assert_eq!(
            p.add_partitions(7, 0, &[("c".into(), 0)], 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            p.end(7, 0, true, 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            p.init(1000, None, 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        let c = p.complete(30);
        assert_eq!((c.state, c.partitions.len()), (TxnState::CompleteCommit, 0));
        // A retried commit succeeds; an abort of a committed transaction does not.
        assert_eq!(c.end(7, 0, true, 31), Ok(EndStep::AlreadyDone));
        assert_eq!(c.end(7, 0, false, 31), Err(ResponseError::InvalidTxnState));
        // The next transaction starts afresh.
        let n = c
            .add_partitions(7, 0, &[("c".into(), 0)], 40)
            .unwrap()
            .unwrap();
        assert_eq!((n.start_ms, n.partitions.len()), (40, 1));
    }

    #[test]
    fn init_producer_id_bumps_the_epoch_and_fences_the_old_one() {
        let c = TxnMetadata::new("t", 7, 60_000, 0);
        let InitStep::Ready(n) = c.init(30_000, None, 5).unwrap() else {
            panic!("expected Ready");
        };
        assert_eq!((n.producer_epoch, n.timeout_ms), (1, 30_000));
        assert_eq!(
            n.add_partitions(7, 0, &[("a".into(), 0)], 6),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            n.end(8, 1, true, 6),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        // KIP-360: a client naming an epoch that is not the current one was fenced.
        assert_eq!(
            n.init(30_000, Some((7, 0)), 7),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn init_aborts_an_open_transaction_of_the_previous_epoch() {
        let m = ongoing();
        let InitStep::AbortFirst(a) = m.init(60_000, None, 50).unwrap() else {
            panic!("expected AbortFirst");
        };
        assert_eq!((a.state, a.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(a.partitions, m.partitions, "markers go to every partition");
        let done = a.complete(60);
        assert_eq!(done.state, TxnState::CompleteAbort);
        let InitStep::Ready(r) = done.init(60_000, None, 70).unwrap() else {
            panic!("expected Ready");
        };
        assert_eq!((r.state, r.producer_epoch), (TxnState::Empty, 2));
    }

    #[test]
    fn an_exhausted_epoch_needs_a_new_producer_id() {
        let mut m = TxnMetadata::new("t", 7, 60_000, 0);
        m.producer_epoch = i16::MAX - 1;
        assert_eq!(m.init(1, None, 0), Ok(InitStep::NewProducerId));
    }

    #[test]
    fn a_timed_out_transaction_is_aborted_under_a_new_epoch() {
        let m = ongoing();
        assert_eq!(m.timed_out(10 + 59_999), None);
        let a = m.timed_out(10 + 60_000).unwrap();
        assert_eq!((a.state, a.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(TxnMetadata::new("t", 1, 1, 0).timed_out(1_000_000), None);
    }

    #[test]
    fn only_idle_ids_without_a_transaction_expire() {
        let mut m = TxnMetadata::new("t", 7, 60_000, 1_000);
        assert!(!m.is_expired(10_999, 10_000));
        assert!(m.is_expired(11_000, 10_000));
        m.state = TxnState::Ongoing;
        assert!(!m.is_expired(1_000_000, 10_000));
        m.state = TxnState::PrepareCommit;
        assert!(!m.is_expired(1_000_000, 10_000));
        m.state = TxnState::CompleteAbort;
        assert!(m.is_expired(1_000_000, 10_000));
    }

    #[test]
    fn state_ids_round_trip() {
        for id in 0..8 {
            assert_eq!(TxnState::from_id(id).map(|s| s.id()), Some(id));
        }
        assert_eq!(TxnState::from_id(8), None);
    }
}
