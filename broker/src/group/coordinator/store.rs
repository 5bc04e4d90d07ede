//! The group coordinator's state, as the runtime loads it from `__consumer_offsets`: groups,
//! committed offsets and pending transactional offsets, rebuilt record by record on replay
//! and changed by writes once they are replicated.
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kafka_protocol::records::Record;

use super::OFFSETS_TOPIC;
use crate::coordinator::{Placement, Shard};
use crate::group::classic::Group;
use crate::group::codec::{self, Key, OffsetValue};
use crate::group::consumer_group::ConsumerGroup;

/// (topic, partition) → committed offset.
pub(super) type GroupOffsets = BTreeMap<(String, i32), OffsetValue>;

/// One partition's committed offset after a write: `None` for a tombstone.
pub(super) type OffsetChange = ((String, i32), Option<OffsetValue>);

/// Every group of the `__consumer_offsets` partitions this broker coordinates, and their
/// committed offsets.
#[derive(Default)]
pub(super) struct GroupShard {
    pub(super) groups: HashMap<String, Group>,
    pub(super) consumer_groups: HashMap<String, ConsumerGroup>,
    pub(super) offsets: HashMap<String, GroupOffsets>,
    /// Where in `__consumer_offsets` each committed offset was written: of two commits
    /// replicated in either order, the later write wins, as on replay.
    pub(super) written_at: HashMap<String, BTreeMap<(String, i32), i64>>,
    /// TxnOffsetCommit: offsets written inside a transaction, by producer id then group,
    /// applied when the transaction's commit marker reaches the group's partition and
    /// dropped on abort.
    pub(super) pending_txn: HashMap<i64, HashMap<String, GroupOffsets>>,
}

impl Shard for GroupShard {
    fn replay(&mut self, at: Placement, r: &Record) {
        if r.control {
            // A transaction marker: key (version, type), type 1 = commit.
            let commit = r.key.as_deref().is_some_and(|k| k.get(3) == Some(&1));
            self.complete_txn(at, r.producer_id, commit);
        } else if r.transactional {
            self.replay_txn_offset(r.producer_id, r.key.as_deref(), r.value.as_deref());
        } else {
            // Restored members' sessions start now, on the clock the group timers use.
            self.replay_record(r.key.as_deref(), r.value.as_deref(), Instant::now());
        }
    }

    /// Forgets every group stored in the partition (another broker coordinates them now).
    fn unload(&mut self, at: Placement) {
        self.groups.retain(|id, _| !at.holds(id));
        self.consumer_groups.retain(|id, _| !at.holds(id));
        self.offsets.retain(|id, _| !at.holds(id));
        self.written_at.retain(|id, _| !at.holds(id));
        for groups in self.pending_txn.values_mut() {
            groups.retain(|id, _| !at.holds(id));
        }
    }
}

impl GroupShard {
    /// Offsets written at `log_offset` are replicated: each becomes the committed one (or,
    /// for a tombstone, is forgotten), except where a later write already is.
    pub(super) fn apply_offsets(
        &mut self,
        group: &str,
        log_offset: i64,
        changes: Vec<OffsetChange>,
    ) {
        let written = self.written_at.entry(group.to_string()).or_default();
        for (key, value) in changes {
            if written.get(&key).is_some_and(|at| *at > log_offset) {
                continue;
            }
            written.insert(key.clone(), log_offset);
            match value {
                Some(v) => {
                    let committed = self.offsets.entry(group.to_string()).or_default();
                    committed.insert(key, v);
                }
                // A tombstone creates no entry for a group that has no offsets.
                None => {
                    if let Some(committed) = self.offsets.get_mut(group) {
                        committed.remove(&key);
                    }
                }
            }
        }
    }

    /// A transaction marker reached partition `at`: the producer's pending offsets of the
    /// groups stored there become committed (or are dropped).
    pub(super) fn complete_txn(&mut self, at: Placement, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending_txn.get_mut(&producer_id) else {
            return;
        };
        let settled: Vec<String> = groups
            .keys()
            .filter(|g| at.partitions <= 0 || at.holds(g))
            .cloned()
            .collect();
        for g in settled {
            if let Some(offsets) = groups.remove(&g) {
                if commit {
                    self.offsets.entry(g).or_default().extend(offsets);
                }
            }
        }
        if groups.is_empty() {
            self.pending_txn.remove(&producer_id);
        }
    }

    /// A TxnOffsetCommit record: pending until its transaction's marker.
    fn replay_txn_offset(&mut self, producer_id: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let (Some(key), Some(value)) = (key, value) else {
            return;
        };
        if let (
            Ok(Key::Offset {
                group,
                topic,
                partition,
            }),
            Ok(v),
        ) = (codec::decode_key(key), codec::decode_offset(value))
        {
            self.pending_txn
                .entry(producer_id)
                .or_default()
                .entry(group)
                .or_default()
                .insert((topic, partition), v);
        }
    }

    fn replay_record(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, now: Instant) {
        let Some(key) = key else { return };
        let key = match codec::decode_key(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("skipping {OFFSETS_TOPIC} record: {e}");
                return;
            }
        };
        match key {
            Key::Offset {
                group,
                topic,
                partition,
            } => match value.map(codec::decode_offset) {
                Some(Ok(v)) => {
                    self.offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), v);
                }
                Some(Err(e)) => tracing::warn!("skipping {OFFSETS_TOPIC} offset record: {e}"),
                None => {
                    if let Some(o) = self.offsets.get_mut(&group) {
                        o.remove(&(topic, partition));
                    }
                }
            },
            Key::Group { group } => match value.map(codec::decode_group) {
                // The latest record describes the whole group, members included.
                Some(Ok(v)) => {
                    let g = Group::restored(&group, v, now);
                    self.groups.insert(group, g);
                }
                Some(Err(e)) => tracing::warn!("skipping {OFFSETS_TOPIC} group record: {e}"),
                None => {
                    self.groups.remove(&group);
                    self.offsets.remove(&group);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue::committed(offset, -1, None, 0)
    }

    fn committed(state: &GroupShard, group: &str, partition: i32) -> Option<i64> {
        state
            .offsets
            .get(group)
            .and_then(|o| o.get(&("t".to_string(), partition)))
            .map(|v| v.offset)
    }

    #[test]
    fn offsets_change_only_when_their_write_is_applied_and_the_later_write_wins() {
        let mut state = GroupShard::default();
        // Two commits of one partition, written at log offsets 10 and 11, replicated and
        // applied in the opposite order: the one written later stays.
        state.apply_offsets("g", 11, vec![(("t".into(), 0), Some(value(200)))]);
        state.apply_offsets("g", 10, vec![(("t".into(), 0), Some(value(100)))]);
        assert_eq!(committed(&state, "g", 0), Some(200));
        // A write that was never applied (its replication failed) left nothing behind, and
        // the retry, written later, applies.
        assert_eq!(committed(&state, "g", 1), None);
        state.apply_offsets("g", 12, vec![(("t".into(), 1), Some(value(5)))]);
        assert_eq!(committed(&state, "g", 1), Some(5));
        // Unloading the group's partition forgets where its offsets were written too.
        state.unload(Placement {
            partition: 0,
            partitions: 1,
        });
        assert!(state.written_at.is_empty() && state.offsets.is_empty());
        state.apply_offsets("g", 1, vec![(("t".into(), 0), Some(value(7)))]);
        assert_eq!(committed(&state, "g", 0), Some(7));
    }
}
