//! Producer state snapshots: `{offset:020}.snapshot` files in the partition directory, each
//! holding the whole `ProducerStates` as of that offset (every batch below it applied, none
//! at or above it). On open the partition loads the newest valid snapshot inside
//! [log start, log end] and replays only the log after it, instead of the whole log.
//!
//! # Format (version 1, big-endian, as Kafka's producer snapshots)
//! ```text
//! u16 version = 1 | u32 CRC-32C of everything after it | i64 offset
//! u32 producer count, then per producer (ascending id):
//!   i64 id | i16 epoch | i32 coordinator epoch | i64 last timestamp
//!   i64 open transaction's first offset (-1: none)
//!   u8 batch count (<= 5), then per batch: i32 first seq | i32 last seq | i64 base | i64 last
//! u32 aborted count, then per aborted transaction (by last offset):
//!   i64 producer id | i64 first offset | i64 last offset
//! ```
//! A file that is short, long, of another version, fails its CRC or names another offset
//! than its file name is ignored; the caller falls back to an older one or a full replay.
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::BufMut;

use super::state::{AbortedTxn, CachedBatch, ProducerEntry, ProducerStates, CACHED_BATCHES};

const VERSION: u16 = 1;
const SUFFIX: &str = ".snapshot";
/// How many snapshots a partition keeps: the newest, and one before it in case it is torn.
const KEEP: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("producer snapshot is truncated")]
    Truncated,
    #[error("producer snapshot version {0} is not supported")]
    Version(u16),
    #[error("producer snapshot CRC mismatch")]
    Crc,
    #[error("producer snapshot is malformed: {0}")]
    Malformed(&'static str),
}

/// Encodes `states` as of `offset`.
pub fn encode(states: &ProducerStates, offset: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + states.producers.len() * 64);
    body.put_i64(offset);
    let mut ids: Vec<&i64> = states.producers.keys().collect();
    ids.sort_unstable();
    body.put_u32(ids.len() as u32);
    for id in ids {
        let e = &states.producers[id];
        body.put_i64(*id);
        body.put_i16(e.epoch);
        body.put_i32(e.coordinator_epoch);
        body.put_i64(e.last_timestamp);
        body.put_i64(e.txn_first_offset.unwrap_or(-1));
        body.put_u8(e.batches.len() as u8);
        for b in &e.batches {
            body.put_i32(b.first_seq);
            body.put_i32(b.last_seq);
            body.put_i64(b.base_offset);
            body.put_i64(b.last_offset);
        }
    }
    body.put_u32(states.aborted.len() as u32);
    for a in &states.aborted {
        body.put_i64(a.producer_id);
        body.put_i64(a.first_offset);
        body.put_i64(a.last_offset);
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.put_u16(VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.extend_from_slice(&body);
    out
}

/// Decodes a snapshot, which must be of `offset`. Never panics on bad input.
pub fn decode(buf: &[u8], offset: i64) -> Result<ProducerStates, SnapshotError> {
    let mut r = Reader(buf);
    let version = r.u16()?;
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let crc = r.u32()?;
    if crc32c::crc32c(r.0) != crc {
        return Err(SnapshotError::Crc);
    }
    if r.i64()? != offset {
        return Err(SnapshotError::Malformed(
            "offset differs from the file name",
        ));
    }
    let mut states = ProducerStates::default();
    for _ in 0..r.u32()? {
        let id = r.i64()?;
        let mut entry = ProducerEntry {
            epoch: r.i16()?,
            coordinator_epoch: r.i32()?,
            last_timestamp: r.i64()?,
            ..ProducerEntry::default()
        };
        let first = r.i64()?;
        let count = usize::from(r.u8()?);
        if count > CACHED_BATCHES {
            return Err(SnapshotError::Malformed("too many cached batches"));
        }
        let mut batches = VecDeque::with_capacity(count);
        for _ in 0..count {
            batches.push_back(CachedBatch {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        entry.batches = batches;
        if first >= 0 {
            if first >= offset {
                return Err(SnapshotError::Malformed(
                    "transaction starts past the snapshot",
                ));
            }
            entry.txn_first_offset = Some(first);
            states.ongoing.insert((first, id));
        }
        if states.producers.insert(id, entry).is_some() {
            return Err(SnapshotError::Malformed("producer listed twice"));
        }
    }
    for _ in 0..r.u32()? {
        let a = AbortedTxn {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            last_offset: r.i64()?,
        };
        if states
            .aborted
            .last()
            .is_some_and(|prev| prev.last_offset > a.last_offset)
        {
            return Err(SnapshotError::Malformed(
                "aborted transactions out of order",
            ));
        }
        states.aborted.push(a);
    }
    if !r.0.is_empty() {
        return Err(SnapshotError::Malformed("trailing bytes"));
    }
    Ok(states)
}

/// Checked big-endian reads.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        self.take().map(u16::from_be_bytes)
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        self.take().map(i16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        self.take().map(u32::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        self.take().map(i64::from_be_bytes)
    }
}

pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// Offsets of the snapshots in `dir`, ascending.
pub fn list(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if stem.len() == 20 {
            if let Ok(offset) = stem.parse::<i64>() {
                out.push(offset);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes a snapshot of `states` at `offset` durably (temp file, fsync, rename, fsync of the
/// directory; the log removes a leftover `.tmp` on open), then deletes all but the newest
/// `KEEP`.
pub fn write(dir: &Path, offset: i64, states: &ProducerStates) -> std::io::Result<()> {
    let target = path(dir, offset);
    let tmp = dir.join(format!("{offset:020}{SUFFIX}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encode(states, offset))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    let all = list(dir)?;
    for old in &all[..all.len().saturating_sub(KEEP)] {
        remove(dir, *old)?;
    }
    sync_dir(dir)
}

/// The newest readable snapshot with an offset in `[min, max]`, with its offset. Unreadable
/// ones are logged and skipped.
pub fn load_latest(
    dir: &Path,
    min: i64,
    max: i64,
) -> std::io::Result<Option<(i64, ProducerStates)>> {
    for offset in list(dir)?.into_iter().rev() {
        if offset > max || offset < min {
            continue;
        }
        let bytes = match std::fs::read(path(dir, offset)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match decode(&bytes, offset) {
            Ok(states) => return Ok(Some((offset, states))),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), offset, error = %e, "ignoring producer snapshot");
            }
        }
    }
    Ok(None)
}

/// Deletes the snapshots `doomed` picks (durably: a stale snapshot must not come back after
/// the log below it was rewritten). Returns how many went.
pub fn delete_where(dir: &Path, doomed: impl Fn(i64) -> bool) -> std::io::Result<usize> {
    let mut n = 0;
    for offset in list(dir)? {
        if doomed(offset) {
            remove(dir, offset)?;
            n += 1;
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

fn remove(dir: &Path, offset: i64) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, offset)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::state::{control_batch, Marker};
    use crate::producer::SequenceCheck;
    use spate_log::BatchMeta;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, base: i64, txn: bool) -> BatchMeta {
        BatchMeta {
            position: 0,
            size: 0,
            base_offset: base,
            last_offset_delta: count - 1,
            partition_leader_epoch: 0,
            attributes: if txn { 0x10 } else { 0 },
            first_timestamp: 0,
            max_timestamp: 1000 + base,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    fn abort(s: &mut ProducerStates, pid: i64, epoch: i16, offset: i64) {
        let bytes = control_batch(pid, epoch, Marker::Abort, 3, 0).unwrap();
        let mut meta = spate_log::batch::parse_one(&bytes, 0).unwrap();
        meta.base_offset = offset;
        s.apply(&bytes, &meta);
    }

    /// Idempotent producer 1 with seven batches (five cached), producer 2 with an aborted
    /// transaction and then an open one: state as of offset 20.
    fn sample() -> ProducerStates {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&batch(1, 0, i * 2, 2, i64::from(i) * 2, false));
        }
        s.record(&batch(2, 4, 0, 1, 14, true));
        abort(&mut s, 2, 4, 15);
        s.record(&batch(2, 4, 1, 2, 16, true));
        s
    }

    #[test]
    fn a_snapshot_round_trips_every_producer_transaction_and_abort() {
        let s = sample();
        let back = decode(&encode(&s, 20), 20).unwrap();
        assert_eq!(back.producers(), s.producers());
        assert_eq!(back.last_stable_offset(100), 16);
        assert_eq!(back.aborted_between(0, 100), s.aborted_between(0, 100));
        assert_eq!(back.aborted_between(0, 100).len(), 1);
        assert_eq!(
            back.check(&batch(1, 0, 12, 2, -1, false)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 12,
                last_offset: 13
            })
        );
        assert_eq!(
            back.check(&batch(1, 0, 14, 1, -1, false)),
            Ok(SequenceCheck::Append)
        );
        assert!(
            back.check(&batch(1, 0, 2, 2, -1, false)).is_err(),
            "evicted"
        );
        // It goes on as the original would: the abort marker closes the open transaction.
        let mut back = back;
        abort(&mut back, 2, 4, 20);
        assert_eq!(back.last_stable_offset(100), 100);
        assert_eq!(back.aborted_between(0, 100).len(), 2);
        // An empty state round trips too.
        let empty = decode(&encode(&ProducerStates::default(), 0), 0).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn corrupt_torn_or_foreign_snapshots_are_rejected() {
        let good = encode(&sample(), 20);
        assert_eq!(
            decode(&good, 21).err(),
            Some(SnapshotError::Malformed(
                "offset differs from the file name"
            ))
        );
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 20).is_err(), "torn at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, 20).is_err(), "flipped byte {i}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long, 20).err(), Some(SnapshotError::Crc));
        let mut other = good;
        other[1] = 9;
        assert_eq!(decode(&other, 20).err(), Some(SnapshotError::Version(9)));
    }

    #[test]
    fn a_bad_newest_snapshot_falls_back_to_an_older_one_and_only_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        for offset in [20, 30, 40] {
            write(dir.path(), offset, &s).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![30, 40]);
        std::fs::write(path(dir.path(), 40), b"torn").unwrap();
        let (offset, loaded) = load_latest(dir.path(), 0, 100).unwrap().unwrap();
        assert_eq!(offset, 30);
        assert_eq!(loaded.producers(), s.producers());
        assert!(load_latest(dir.path(), 0, 29).unwrap().is_none());
        assert!(load_latest(dir.path(), 31, 100).unwrap().is_none());
        assert_eq!(delete_where(dir.path(), |o| o > 35).unwrap(), 1);
        assert_eq!(list(dir.path()).unwrap(), vec![30]);
    }
}
