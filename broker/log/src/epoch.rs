//! Leader epoch cache: where each leader epoch starts in the log (Kafka's
//! `LeaderEpochFileCache`, KIP-101 / KIP-279).
//!
//! Entries are `(epoch, start_offset)`, strictly ascending in both. An entry is added when
//! this replica becomes leader (`PartitionLog::assign_epoch`, start = log end) and when a
//! stored batch carries a partition leader epoch other than the latest entry's (appends as
//! leader or follower, and rebuilds from the batch headers). Assigning follows Kafka: a no-op
//! when the epoch equals the latest one and starts no earlier; otherwise every trailing entry
//! with an epoch >= the new one or a start >= the new start is dropped first, so the cache
//! stays monotonic and is a deterministic function of the sequence of assignments (replicas
//! holding the same batches build the same cache). Epochs below 0 (`NO_PARTITION_LEADER_EPOCH`)
//! are ignored.
//!
//! # File
//! `leader-epoch-checkpoint`, Kafka's text format: a version line (`0`), a count line, then
//! one `epoch start_offset` line per entry. Written whole on every change through a temp file,
//! fsync and rename, then the directory is fsynced.
use crate::index::write_atomic;
use crate::segment::sync_dir;
use crate::Result;
use std::path::Path;

/// The cache's file name in the partition directory (Kafka's).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: i32 = 0;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The in-memory cache; `PartitionLog` persists it after every change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (see the module docs). Returns whether
    /// the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self
            .latest()
            .is_some_and(|l| l.epoch == epoch && start_offset >= l.start_offset)
        {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            if let Some(dropped) = self.entries.pop() {
                tracing::info!(
                    epoch = dropped.epoch,
                    start = dropped.start_offset,
                    new_epoch = epoch,
                    new_start = start_offset,
                    "dropping leader epoch entry that is not below the new one"
                );
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The epoch the record at `offset` was written in, per the cache.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Kafka's `endOffsetFor` (OffsetsForLeaderEpoch): for the latest epoch, the log end;
    /// otherwise the largest epoch <= `epoch` (or `epoch` itself if every known epoch is
    /// larger) with the start offset of the first epoch above it. `None` (Kafka's
    /// UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET) when `epoch` is negative, the cache is empty
    /// or `epoch` is above every known one.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let next = self.entries.get(higher)?;
        let floor = higher
            .checked_sub(1)
            .map_or(epoch, |i| self.entries[i].epoch);
        Some((floor, next.start_offset))
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated there).
    /// Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: drops entries wholly below it and moves the one
    /// covering it (the last starting at or before it) to start there. Returns whether the
    /// cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(cover) = covered.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if covered == 1 && cover.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..covered);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: cover.epoch,
                start_offset,
            },
        );
        true
    }

    /// Empties the cache. Returns whether it changed.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The checkpoint file's text.
    pub fn encode(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses checkpoint text; `None` when it is malformed, of another version, its count
    /// disagrees with its lines, or its entries are negative or not strictly ascending.
    pub fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next()?.parse::<i32>().ok()? != VERSION {
            return None;
        }
        let count: usize = lines.next()?.parse().ok()?;
        let mut cache = Self::default();
        for line in lines {
            let mut parts = line.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start_offset: i64 = parts.next()?.parse().ok()?;
            if parts.next().is_some() || epoch < 0 || start_offset < 0 {
                return None;
            }
            let ascending = cache
                .latest()
                .is_none_or(|l| epoch > l.epoch && start_offset > l.start_offset);
            if !ascending {
                return None;
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        (cache.entries.len() == count).then_some(cache)
    }

    /// Reads the checkpoint in `dir`: `Ok(None)` when it is missing or malformed (the caller
    /// rebuilds it from the log).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let parsed = std::str::from_utf8(&bytes).ok().and_then(Self::decode);
        if parsed.is_none() {
            tracing::warn!(file = %path.display(), "malformed leader epoch checkpoint");
        }
        Ok(parsed)
    }

    /// Writes the checkpoint in `dir` durably (temp file, fsync, rename, directory fsync).
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(CHECKPOINT_FILE), self.encode().as_bytes())?;
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, s) in entries {
            assert!(c.assign(e, s));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_follows_kafka() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "same epoch, later start: no-op");
        assert!(!c.assign(-1, 20), "no epoch is ignored");
        assert!(c.assign(3, 20));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 20)]);
        // Becoming leader again at the same offset replaces the epoch that wrote nothing.
        assert!(c.assign(4, 20));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (4, 20)]);
        // A lower epoch or earlier start rewrites the tail, as in Kafka.
        assert!(c.assign(4, 12));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (4, 12)]);
        assert!(c.assign(1, 30));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 30)]);
    }

    #[test]
    fn end_offset_for_epoch_has_kafka_semantics() {
        let c = cache(&[(1, 5), (3, 20), (6, 40)]);
        assert_eq!(c.end_offset_for(6, 55), Some((6, 55)), "latest: log end");
        assert_eq!(c.end_offset_for(3, 55), Some((3, 40)));
        assert_eq!(
            c.end_offset_for(4, 55),
            Some((3, 40)),
            "unknown: floor epoch"
        );
        assert_eq!(c.end_offset_for(2, 55), Some((1, 20)));
        assert_eq!(
            c.end_offset_for(0, 55),
            Some((0, 5)),
            "below all: first start"
        );
        assert_eq!(c.end_offset_for(7, 55), None, "above all");
        assert_eq!(c.end_offset_for(-1, 55), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 9), None);
        assert_eq!(c.epoch_for_offset(4), None);
        assert_eq!(c.epoch_for_offset(20), Some(3));
        assert_eq!(c.epoch_for_offset(39), Some(3));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 5), (3, 20), (6, 40)]);
        assert!(!c.truncate_from_end(41));
        assert!(c.truncate_from_end(40));
        assert_eq!(pairs(&c), vec![(1, 5), (3, 20)]);
        assert!(!c.truncate_from_start(5));
        assert!(
            !c.truncate_from_start(2),
            "below the first entry: nothing to do"
        );
        assert!(c.truncate_from_start(25));
        assert_eq!(pairs(&c), vec![(3, 25)]);
        assert!(!c.truncate_from_start(25));
        let mut c = cache(&[(1, 5), (3, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), vec![(3, 20)]);
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
    }

    #[test]
    fn checkpoint_round_trip_and_rejects_garbage() {
        let c = cache(&[(0, 0), (4, 17)]);
        assert_eq!(c.encode(), "0\n2\n0 0\n4 17\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c));
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n"),
            Some(LeaderEpochCache::default())
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n2\n3 0\n2 5\n",
            "0\n2\n0 5\n1 5\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 x\n",
            "0\n1\n0 1 2\n",
            "x",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn read_and_write_files() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read"), None);
        let c = cache(&[(2, 3)]);
        c.write(dir.path()).expect("write");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read"), Some(c));
        assert!(!dir.path().join(format!("{CHECKPOINT_FILE}.tmp")).exists());
        std::fs::write(dir.path().join(CHECKPOINT_FILE), [0xff, 0xfe]).expect("garbage");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read"), None);
    }
}
