//! Sparse offset and time indexes.
//!
//! Both live in memory while the segment is open (they are small: one entry per
//! `index.interval.bytes` of log) and are written whole to `<base>.index` / `<base>.timeindex`
//! when a segment rolls, after compaction and on clean shutdown. The log file is the source
//! of truth: an index that is missing or fails its sanity checks is rebuilt from batch headers,
//! and after an unclean shutdown the indexes of recovered segments are always rebuilt.
//!
//! # Format (big-endian, Kafka's entry layout)
//! - `.index`: `relativeOffset u32 | position u32` — a batch starting at `position` has base
//!   offset `segmentBase + relativeOffset`.
//! - `.timeindex`: `timestamp i64 | relativeOffset u32` — the first batch whose max timestamp
//!   reached `timestamp`; every earlier batch's max timestamp is lower.
use std::io::Write;
use std::path::Path;

/// Offset index: (relative base offset, file position) of some batches, both ascending.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// The last entry whose offset is <= `rel`: the scan for `rel` may start at its position.
    pub fn lookup(&self, rel: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(o, _)| o <= rel);
        i.checked_sub(1).map(|i| self.entries[i])
    }
    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }
    pub fn push(&mut self, rel: u32, position: u32) {
        if self.last().is_none_or(|(o, p)| rel > o && position > p) {
            self.entries.push((rel, position));
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for (o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }
    /// Decodes an index file; `None` when it cannot belong to a log of `log_size` bytes
    /// (torn size, entries not strictly ascending, positions past the end).
    pub fn decode(buf: &[u8], log_size: u64) -> Option<Self> {
        if !buf.len().is_multiple_of(8) {
            return None;
        }
        let mut idx = Self::default();
        for e in buf.chunks_exact(8) {
            let o = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let p = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            let ascending = idx.last().is_none_or(|(lo, lp)| o > lo && p > lp);
            if !ascending || p as u64 >= log_size {
                return None;
            }
            idx.entries.push((o, p));
        }
        Some(idx)
    }
}

/// Time index: (max timestamp so far, relative base offset of the batch that reached it).
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// The last entry whose timestamp is <= `ts`: no batch before its offset holds a record
    /// with a timestamp >= `ts`.
    pub fn lookup(&self, ts: i64) -> Option<(i64, u32)> {
        let i = self.entries.partition_point(|&(t, _)| t <= ts);
        i.checked_sub(1).map(|i| self.entries[i])
    }
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }
    /// Adds an entry when `ts` grows past the last one (ties keep the earlier offset).
    pub fn push(&mut self, ts: i64, rel: u32) {
        if self.last().is_none_or(|(t, o)| ts > t && rel >= o) {
            self.entries.push((ts, rel));
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for (t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }
    /// Decodes a time index file; `None` when torn or not ascending.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if !buf.len().is_multiple_of(12) {
            return None;
        }
        let mut idx = Self::default();
        for e in buf.chunks_exact(12) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&e[..8]);
            let t = i64::from_be_bytes(t);
            let o = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if idx.last().is_some_and(|(lt, lo)| t <= lt || o < lo) {
                return None;
            }
            idx.entries.push((t, o));
        }
        Some(idx)
    }
}

/// Replaces `path` with `data` durably: write a temp file, fsync, rename over.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 8192);
        assert_eq!(idx.lookup(0), Some((0, 0)));
        assert_eq!(idx.lookup(15), Some((10, 4096)));
        assert_eq!(idx.lookup(99), Some((20, 8192)));
        let empty = OffsetIndex::default();
        assert_eq!(empty.lookup(5), None);
    }

    #[test]
    fn offset_index_round_trips_and_rejects_nonsense() {
        let mut idx = OffsetIndex::default();
        idx.push(3, 100);
        idx.push(9, 300);
        let bytes = idx.encode();
        let back = OffsetIndex::decode(&bytes, 1000).expect("valid");
        assert_eq!(back.lookup(9), Some((9, 300)));
        assert!(OffsetIndex::decode(&bytes[..5], 1000).is_none(), "torn");
        assert!(
            OffsetIndex::decode(&bytes, 200).is_none(),
            "position past end"
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(
            OffsetIndex::decode(&swapped, 1000).is_none(),
            "not ascending"
        );
    }

    #[test]
    fn time_index_keeps_first_offset_of_each_new_max() {
        let mut idx = TimeIndex::default();
        idx.push(100, 0);
        idx.push(100, 5); // not a new max: ignored
        idx.push(90, 6);
        idx.push(200, 7);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(99), None);
        assert_eq!(idx.lookup(100), Some((100, 0)));
        assert_eq!(idx.lookup(150), Some((100, 0)));
        assert_eq!(idx.lookup(500), Some((200, 7)));
        let back = TimeIndex::decode(&idx.encode()).expect("valid");
        assert_eq!(back.last(), Some((200, 7)));
        assert!(TimeIndex::decode(&[0; 13]).is_none());
    }
}
