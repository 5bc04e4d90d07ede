//! The transaction coordinator's table: the committed metadata of every transactional id it
//! coordinates (what `__transaction_state` holds below its high watermark) and, per id, at
//! most one transition that is written but not yet replicated.
//!
//! As Kafka's `TransactionMetadata.pendingState`: nothing acts on a transition before it is
//! committed; another request for the id meanwhile gets CONCURRENT_TRANSACTIONS (clients
//! retry it); a transition whose write fails is dropped and the committed metadata stays as
//! it was, so a retry writes (and waits) again instead of finding its work "already done".
use std::collections::HashMap;

use kafka_protocol::error::ResponseError;

use super::state::TxnMetadata;

/// A transition begun with [`TxnTable::begin`]: the id's next metadata, or `None` for a
/// tombstone (the id expires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    pub next: Option<TxnMetadata>,
    seq: u64,
}

#[derive(Debug, Default)]
pub struct TxnTable {
    committed: HashMap<String, TxnMetadata>,
    /// id → (sequence of the transition, its target).
    pending: HashMap<String, (u64, Option<TxnMetadata>)>,
    next_seq: u64,
}

impl TxnTable {
    /// The id's committed metadata.
    pub fn get(&self, id: &str) -> Option<&TxnMetadata> {
        self.committed.get(id)
    }

    /// The committed metadata of an id a request wants to change: CONCURRENT_TRANSACTIONS
    /// while a transition of it is being replicated.
    pub fn current(&self, id: &str) -> Result<Option<&TxnMetadata>, ResponseError> {
        if self.pending.contains_key(id) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(self.committed.get(id))
    }

    /// Is a transition of `id` being replicated?
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// Starts a transition of `id` to `next` (to be written, then waited for).
    pub fn begin(
        &mut self,
        id: &str,
        next: Option<TxnMetadata>,
    ) -> Result<Transition, ResponseError> {
        if self.pending.contains_key(id) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.pending.insert(id.to_string(), (seq, next.clone()));
        Ok(Transition {
            id: id.to_string(),
            next,
            seq,
        })
    }

    /// The transition's record is committed: it becomes the id's metadata. `false` when the
    /// transition is no longer pending here (its partition was unloaded meanwhile).
    pub fn complete(&mut self, t: &Transition) -> bool {
        if self.pending.get(&t.id).map(|(seq, _)| *seq) != Some(t.seq) {
            return false;
        }
        self.pending.remove(&t.id);
        match &t.next {
            Some(m) => self.committed.insert(t.id.clone(), m.clone()),
            None => self.committed.remove(&t.id),
        };
        true
    }

    /// The transition's write failed or was not replicated: forget it, keep the committed
    /// metadata.
    pub fn abandon(&mut self, t: &Transition) {
        if self.pending.get(&t.id).map(|(seq, _)| *seq) == Some(t.seq) {
            self.pending.remove(&t.id);
        }
    }

    /// Replay of `__transaction_state`: the record's metadata (or tombstone) as committed.
    pub fn load(&mut self, id: String, value: Option<TxnMetadata>) {
        match value {
            Some(m) => self.committed.insert(id, m),
            None => self.committed.remove(&id),
        };
    }

    /// Keeps only the ids `keep` says (an unloaded partition's ids go, pending ones too).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.committed.retain(|id, _| keep(id));
        self.pending.retain(|id, _| keep(id));
    }

    pub fn ids(&self) -> Vec<String> {
        self.committed.keys().cloned().collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.committed.values()
    }

    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing(id: &str) -> TxnMetadata {
        let m = TxnMetadata::new(id, 7, 60_000, 0);
        m.add_partitions(7, 0, &[("a".into(), 0)], 10)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_transition_acts_only_once_committed() {
        let mut t = TxnTable::default();
        t.load("t".into(), Some(TxnMetadata::new("t", 7, 60_000, 0)));
        let next = ongoing("t");
        let tr = t.begin("t", Some(next.clone())).unwrap();
        // Not visible before it is replicated, and nothing else may change the id meanwhile.
        assert_eq!(t.get("t").map(|m| m.partitions.len()), Some(0));
        assert_eq!(t.current("t"), Err(ResponseError::ConcurrentTransactions));
        assert_eq!(
            t.begin("t", Some(next.clone())),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert!(t.complete(&tr));
        assert_eq!(t.get("t"), Some(&next));
        assert_eq!(t.current("t"), Ok(Some(&next)));
    }

    #[test]
    fn replication_failed_leaves_the_state_unchanged_and_a_retry_writes_again() {
        let mut t = TxnTable::default();
        let before = TxnMetadata::new("t", 7, 60_000, 0);
        t.load("t".into(), Some(before.clone()));
        let next = ongoing("t");
        let tr = t.begin("t", Some(next.clone())).unwrap();
        t.abandon(&tr);
        assert_eq!(t.current("t"), Ok(Some(&before)));
        // The retry finds the partition not yet added: it is a new transition to write and
        // wait for, not an "already added" success.
        let retry = before.add_partitions(7, 0, &[("a".into(), 0)], 20).unwrap();
        assert!(retry.is_some());
        let tr2 = t.begin("t", retry).unwrap();
        // The first, abandoned transition completing late changes nothing.
        assert!(!t.complete(&tr));
        assert_eq!(t.get("t"), Some(&before));
        assert!(t.complete(&tr2));
        assert_eq!(t.get("t").map(|m| m.partitions.len()), Some(1));
    }

    #[test]
    fn an_unloaded_partition_drops_its_pending_transitions() {
        let mut t = TxnTable::default();
        t.load("a".into(), Some(TxnMetadata::new("a", 1, 1_000, 0)));
        t.load("b".into(), Some(TxnMetadata::new("b", 2, 1_000, 0)));
        let tr = t.begin("a", Some(ongoing("a"))).unwrap();
        t.retain(|id| id != "a");
        assert!(
            !t.complete(&tr),
            "a transition of an unloaded id applies nothing"
        );
        assert_eq!((t.get("a"), t.len()), (None, 1));
        assert!(!t.is_pending("a"));
    }

    #[test]
    fn a_tombstone_removes_the_id_once_committed() {
        let mut t = TxnTable::default();
        t.load("t".into(), Some(TxnMetadata::new("t", 7, 60_000, 0)));
        let tr = t.begin("t", None).unwrap();
        assert!(t.get("t").is_some());
        assert!(t.complete(&tr));
        assert!(t.get("t").is_none());
        assert!(t.is_empty());
    }
}
