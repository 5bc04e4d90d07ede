//! One log segment: `<base>.log` holding whole batches back to back, plus its sparse indexes.
//!
//! A segment is opened either *trusted* (its data was fsynced before the recovery point or
//! the log shut down cleanly: load the indexes, check them, scan only the headers after the
//! last index entry) or *recovered* (every batch re-read and CRC-checked, the file truncated
//! at the first bad one, indexes rebuilt).
use crate::batch::{self, BatchMeta, HEADER_SIZE, LOG_OVERHEAD};
use crate::index::{self, OffsetIndex, TimeIndex};
use crate::{LogError, Result};
use bytes::{Bytes, BytesMut};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Highest offset distance from the segment base an index entry can express.
pub const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
pub fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}
pub fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

pub struct Segment {
    dir: PathBuf,
    base_offset: i64,
    file: File,
    size: u64,
    /// Offset after the last batch; the base offset while empty.
    next_offset: i64,
    /// Largest batch max timestamp and the base offset of the first batch that reached it.
    max_timestamp: Option<(i64, i64)>,
    /// Time the segment's age counts from (`segment.ms`): broker time of the first append, or
    /// after a restart the first batch's max timestamp (Kafka's choice).
    rolling_ms: Option<i64>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    index_interval: u64,
}

impl Segment {
    /// Creates an empty segment, replacing any file of that name.
    pub fn create(dir: &Path, base_offset: i64, index_interval: u32) -> Result<Self> {
        for p in [
            index_path(dir, base_offset),
            time_index_path(dir, base_offset),
        ] {
            remove_if_exists(&p)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(log_path(dir, base_offset))?;
        Ok(Self::empty(dir, base_offset, file, index_interval))
    }

    fn empty(dir: &Path, base_offset: i64, file: File, index_interval: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            base_offset,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: None,
            rolling_ms: None,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_interval: index_interval as u64,
        }
    }

    /// Opens an existing segment. With `recover`, or when a trusted load finds anything
    /// inconsistent, every batch is CRC-checked and the file is cut at the first bad one.
    /// Returns the segment and whether bytes were cut.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        recover: bool,
    ) -> Result<(Self, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(log_path(dir, base_offset))?;
        let size = file.metadata()?.len();
        let mut seg = Self::empty(dir, base_offset, file, index_interval);
        seg.size = size;
        if !recover && seg.load_trusted()? {
            seg.init_rolling_ms()?;
            return Ok((seg, false));
        }
        let cut = seg.recover()?;
        seg.init_rolling_ms()?;
        Ok((seg, cut))
    }

    fn init_rolling_ms(&mut self) -> Result<()> {
        // Unreadable here means corrupt data the next read reports; age then counts from now.
        self.rolling_ms = match self.size {
            0 => None,
            _ => self.read_header(0).ok().map(|m| m.max_timestamp),
        };
        Ok(())
    }

    /// Loads the index files and scans headers after the last index entry. `Ok(false)` when
    /// anything does not add up, so the caller falls back to full recovery.
    fn load_trusted(&mut self) -> Result<bool> {
        let offsets = read_optional(&index_path(&self.dir, self.base_offset))?;
        let times = read_optional(&time_index_path(&self.dir, self.base_offset))?;
        let (Some(offsets), Some(times)) = (offsets, times) else {
            return Ok(self.size == 0);
        };
        let (Some(oi), Some(ti)) = (
            OffsetIndex::decode(&offsets, self.size),
            TimeIndex::decode(&times),
        ) else {
            return Ok(false);
        };
        let (start_pos, expected_base) = match oi.last() {
            Some((rel, pos)) => (pos as u64, Some(self.base_offset + rel as i64)),
            None => (0, None),
        };
        if ti
            .last()
            .is_some_and(|(_, rel)| self.base_offset + rel as i64 >= i64::MAX / 2)
        {
            return Ok(false);
        }
        self.max_timestamp = ti.last().map(|(t, rel)| (t, self.base_offset + rel as i64));
        self.offset_index = oi;
        self.time_index = ti;
        let mut pos = start_pos;
        let mut next = self.base_offset;
        while pos < self.size {
            let Ok(meta) = self.read_header(pos) else {
                return Ok(false);
            };
            let fits = pos + meta.size as u64 <= self.size;
            let first_ok = pos != start_pos || expected_base.is_none_or(|b| b == meta.base_offset);
            if !fits || !first_ok || meta.base_offset < next {
                return Ok(false);
            }
            next = meta.next_offset();
            if self
                .max_timestamp
                .is_none_or(|(t, _)| meta.max_timestamp > t)
            {
                self.max_timestamp = Some((meta.max_timestamp, meta.base_offset));
            }
            pos += meta.size as u64;
        }
        self.next_offset = next;
        self.bytes_since_index = self.size - start_pos;
        Ok(true)
    }

    /// Re-reads every batch with its CRC, truncates at the first bad or out-of-order one and
    /// rebuilds the indexes. Returns whether bytes were cut.
    pub fn recover(&mut self) -> Result<bool> {
        let end = self.rebuild(true)?;
        let cut = end < self.size;
        if cut {
            tracing::warn!(
                segment = self.base_offset,
                valid = end,
                size = self.size,
                "truncating torn or corrupt segment tail"
            );
            self.file.set_len(end)?;
            self.file.sync_all()?;
            self.size = end;
        }
        Ok(cut)
    }

    /// Rebuilds in-memory state from the file, stopping at the first invalid batch; returns
    /// the end of the valid prefix.
    fn rebuild(&mut self, check_crc: bool) -> Result<u64> {
        self.offset_index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.max_timestamp = None;
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        let mut pos = 0u64;
        while pos < self.size {
            let meta = match self.read_valid_batch(pos, check_crc) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(LogError::Io(e)) => return Err(LogError::Io(e)),
                Err(_) => break,
            };
            let in_order = meta.base_offset >= self.next_offset
                && meta.last_offset() - self.base_offset <= MAX_RELATIVE_OFFSET;
            if !in_order {
                break;
            }
            self.track(&meta, pos);
            pos += meta.size as u64;
        }
        Ok(pos)
    }

    /// Reads the batch at `pos` if it lies wholly inside the file (and, with `check_crc`,
    /// passes it). `Ok(None)` for a torn tail.
    fn read_valid_batch(&self, pos: u64, check_crc: bool) -> Result<Option<BatchMeta>> {
        let mut prefix = [0u8; LOG_OVERHEAD];
        if pos + LOG_OVERHEAD as u64 > self.size {
            return Ok(None);
        }
        self.file.read_exact_at(&mut prefix, pos)?;
        let size = batch::batch_size(&prefix)?;
        if pos + size as u64 > self.size {
            return Ok(None);
        }
        if check_crc {
            let buf = self.read_bytes(pos, size)?;
            return batch::parse_one(&buf, pos as usize).map(Some);
        }
        self.read_header(pos).map(Some)
    }

    /// Updates indexes and counters for a batch just placed at `pos`.
    fn track(&mut self, meta: &BatchMeta, pos: u64) {
        if self
            .max_timestamp
            .is_none_or(|(t, _)| meta.max_timestamp > t)
        {
            self.max_timestamp = Some((meta.max_timestamp, meta.base_offset));
        }
        if self.bytes_since_index >= self.index_interval {
            let rel = (meta.base_offset - self.base_offset) as u32;
            self.offset_index.push(rel, pos as u32);
            if let Some((t, off)) = self.max_timestamp {
                self.time_index.push(t, (off - self.base_offset) as u32);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += meta.size as u64;
        self.next_offset = meta.next_offset();
    }

    /// Appends already-validated batches (`metas` positions are relative to `data`).
    pub fn append(&mut self, data: &[u8], metas: &[BatchMeta], now_ms: i64) -> Result<()> {
        let start = self.size;
        if let Err(e) = self.file.write_all_at(data, start) {
            // Best effort: drop a partial write so the file ends with a whole batch.
            let _ = self.file.set_len(start);
            return Err(e.into());
        }
        for m in metas {
            self.track(m, start + m.position as u64);
        }
        self.size = start + data.len() as u64;
        self.rolling_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Reads the header of the batch at `pos`.
    pub fn read_header(&self, pos: u64) -> Result<BatchMeta> {
        if pos + HEADER_SIZE as u64 > self.size {
            return Err(LogError::Corrupt(format!(
                "batch header at {pos} past end of segment {}",
                self.base_offset
            )));
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.file.read_exact_at(&mut buf, pos)?;
        batch::parse_header(&buf, pos as usize)
    }

    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<Bytes> {
        let mut buf = BytesMut::zeroed(len);
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf.freeze())
    }

    /// Reads the whole batch described by `meta` (from this segment's headers).
    pub fn read_batch(&self, meta: &BatchMeta) -> Result<Bytes> {
        self.read_bytes(meta.position as u64, meta.size)
    }

    /// Position scans may start from to find `offset`, per the offset index.
    fn scan_start(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        if rel <= 0 {
            return 0;
        }
        let rel = rel.min(u32::MAX as i64) as u32;
        self.offset_index
            .lookup(rel)
            .map_or(0, |(_, pos)| pos as u64)
    }

    /// The first batch whose last offset is >= `offset`, if any.
    pub fn find(&self, offset: i64) -> Result<Option<BatchMeta>> {
        self.find_from(self.scan_start(offset), |m| m.last_offset() >= offset)
    }

    /// The first batch at or after `pos` satisfying `pred`.
    pub fn find_from(
        &self,
        mut pos: u64,
        pred: impl Fn(&BatchMeta) -> bool,
    ) -> Result<Option<BatchMeta>> {
        while pos < self.size {
            let meta = self.read_header(pos)?;
            if pred(&meta) {
                return Ok(Some(meta));
            }
            pos += meta.size as u64;
        }
        Ok(None)
    }

    /// Headers of every batch from `pos` to the end.
    pub fn headers_from(&self, mut pos: u64) -> Result<Vec<BatchMeta>> {
        let mut out = Vec::new();
        while pos < self.size {
            let meta = self.read_header(pos)?;
            pos += meta.size as u64;
            out.push(meta);
        }
        Ok(out)
    }

    /// Whole batches starting at `start` (a batch boundary) up to `max_bytes` — but at least
    /// one batch (KIP-74) — stopping before a batch whose base offset is >= `limit`.
    pub fn read_from(&self, start: &BatchMeta, max_bytes: usize, limit: i64) -> Result<Bytes> {
        let pos = start.position as u64;
        if start.base_offset >= limit {
            return Ok(Bytes::new());
        }
        let available = self.size.saturating_sub(pos) as usize;
        if start.size > available {
            return Err(LogError::Corrupt(format!(
                "batch at {pos} of segment {} runs past its end",
                self.base_offset
            )));
        }
        // One read covering max_bytes (or the first batch), then walk prefixes in memory.
        let chunk = self.read_bytes(pos, max_bytes.max(start.size).min(available))?;
        let mut end = start.size;
        while end + LOG_OVERHEAD <= chunk.len() {
            let Ok(size) = batch::batch_size(&chunk[end..]) else {
                break; // the next read reports it
            };
            let mut base = [0u8; 8];
            base.copy_from_slice(&chunk[end..end + 8]);
            if end + size > chunk.len() || i64::from_be_bytes(base) >= limit {
                break;
            }
            end += size;
        }
        Ok(chunk.slice(..end))
    }

    /// Where a scan for the first record with timestamp >= `ts` and offset >= `from_offset`
    /// may start: no earlier batch can hold one.
    pub fn timestamp_scan_start(&self, ts: i64, from_offset: i64) -> u64 {
        let by_time = self
            .time_index
            .lookup(ts)
            .map_or(0, |(_, rel)| self.scan_start(self.base_offset + rel as i64));
        by_time.max(self.scan_start(from_offset))
    }

    /// Drops every batch that holds offsets >= `offset` (a batch straddling it goes whole).
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let Some(meta) = self.find(offset)? else {
            return Ok(());
        };
        self.file.set_len(meta.position as u64)?;
        self.size = meta.position as u64;
        self.rebuild(false)?;
        if self.size == 0 {
            // Age counts from the next append again.
            self.rolling_ms = None;
        }
        self.write_indexes()?;
        Ok(())
    }

    /// Replaces the log file with `cleaned` (same batches minus compacted records) and
    /// rebuilds the indexes. Stale index files go first so a crash can never pair them with
    /// the new data.
    pub fn swap_in(&mut self, cleaned: &Path) -> Result<()> {
        remove_if_exists(&index_path(&self.dir, self.base_offset))?;
        remove_if_exists(&time_index_path(&self.dir, self.base_offset))?;
        let path = log_path(&self.dir, self.base_offset);
        std::fs::rename(cleaned, &path)?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().read(true).write(true).open(&path)?;
        self.size = self.file.metadata()?.len();
        let end = self.rebuild(false)?;
        if end != self.size {
            return Err(LogError::Corrupt(format!(
                "cleaned segment {} does not parse to its end",
                self.base_offset
            )));
        }
        self.write_indexes()
    }

    /// fsyncs the data.
    pub fn flush(&self) -> Result<()> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Writes both index files (durably). Records the current max timestamp in the time index
    /// first, so a reopened segment knows it without a scan.
    pub fn write_indexes(&mut self) -> Result<()> {
        if let Some((t, off)) = self.max_timestamp {
            self.time_index.push(t, (off - self.base_offset) as u32);
        }
        index::write_atomic(
            &index_path(&self.dir, self.base_offset),
            &self.offset_index.encode(),
        )?;
        index::write_atomic(
            &time_index_path(&self.dir, self.base_offset),
            &self.time_index.encode(),
        )?;
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> Result<()> {
        let (dir, base) = (self.dir, self.base_offset);
        drop(self.file);
        for p in [
            log_path(&dir, base),
            index_path(&dir, base),
            time_index_path(&dir, base),
        ] {
            remove_if_exists(&p)?;
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// (max timestamp, base offset of the first batch that has it).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }
    pub fn rolling_ms(&self) -> Option<i64> {
        self.rolling_ms
    }
    pub fn index_entries(&self) -> (usize, usize) {
        (self.offset_index.len(), self.time_index.len())
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// fsyncs a directory so renames, creations and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::parse_batches;
    use crate::testutil::batch;

    fn append(seg: &mut Segment, base: i64, n: usize, ts: i64) {
        let b = batch(base, n, ts);
        let metas = parse_batches(&b).expect("valid");
        seg.append(&b, &metas, 0).expect("append");
    }

    #[test]
    fn find_and_read_whole_batches() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 100).expect("create");
        for i in 0..10 {
            append(&mut seg, i * 3, 3, i * 10);
        }
        assert_eq!(seg.next_offset(), 30);
        assert!(seg.index_entries().0 > 0, "sparse index has entries");
        let m = seg.find(13).expect("io").expect("found");
        assert_eq!(m.base_offset, 12);
        let one = seg.read_from(&m, 1, i64::MAX).expect("read");
        assert_eq!(
            parse_batches(&one).expect("whole").len(),
            1,
            "at least one batch"
        );
        let all = seg.read_from(&m, 1 << 20, i64::MAX).expect("read");
        assert_eq!(parse_batches(&all).expect("whole").len(), 6);
        let limited = seg.read_from(&m, 1 << 20, 18).expect("read");
        assert_eq!(parse_batches(&limited).expect("whole").len(), 2);
        assert!(seg.find(30).expect("io").is_none());
    }

    #[test]
    fn reopen_trusted_matches_recovered_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 5, 64).expect("create");
        for i in 0..8 {
            append(&mut seg, 5 + i * 2, 2, 100 - i);
        }
        seg.write_indexes().expect("indexes");
        let (next, max) = (seg.next_offset(), seg.max_timestamp());
        drop(seg);
        let (trusted, cut) = Segment::open(dir.path(), 5, 64, false).expect("open");
        assert!(!cut);
        assert_eq!(
            (trusted.next_offset(), trusted.max_timestamp()),
            (next, max)
        );
        drop(trusted);
        let (recovered, cut) = Segment::open(dir.path(), 5, 64, true).expect("open");
        assert!(!cut);
        assert_eq!(
            (recovered.next_offset(), recovered.max_timestamp()),
            (next, max)
        );
        assert_eq!(max, Some((101, 5)));
    }

    #[test]
    fn recovery_cuts_torn_tail() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 4096).expect("create");
        append(&mut seg, 0, 2, 0);
        let good = seg.size();
        append(&mut seg, 2, 2, 0);
        seg.file.set_len(seg.size() - 3).expect("tear");
        drop(seg);
        let (seg, cut) = Segment::open(dir.path(), 0, 4096, false).expect("open");
        assert!(cut, "trusted load notices the torn tail and recovers");
        assert_eq!((seg.size(), seg.next_offset()), (good, 2));
    }

    #[test]
    fn truncate_drops_straddling_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 1).expect("create");
        for i in 0..4 {
            append(&mut seg, i * 5, 5, i);
        }
        seg.truncate_to(12).expect("truncate");
        assert_eq!(seg.next_offset(), 10);
        assert_eq!(seg.max_timestamp(), Some((1 + 4, 5)));
    }
}
