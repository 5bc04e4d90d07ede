//! `PartitionLog`: the ordered segments of one partition.
use crate::batch::{self, parse_batches, BatchMeta};
use crate::epoch::{EpochEntry, LeaderEpochCache};
use crate::index::write_atomic;
use crate::record::decode_batch;
use crate::segment::{self, remove_if_exists, sync_dir, Segment, MAX_RELATIVE_OFFSET};
use crate::{CleanupPolicy, LogConfig, LogError, Result, TimestampType};
use bytes::{Bytes, BytesMut};
use std::path::{Path, PathBuf};

/// Present only while the log is closed cleanly; its absence on open triggers recovery.
const CLEAN_SHUTDOWN: &str = "clean-shutdown";
/// Offset below which every batch was fsynced (a hint: missing or unreadable means 0).
const RECOVERY_POINT: &str = "recovery-point";
/// Log start offset, which DeleteRecords can move inside a segment.
const LOG_START_OFFSET: &str = "log-start-offset";
/// Largest segment a 32-bit index position can address.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Result of an append.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record of the last batch.
    pub last_offset: i64,
    /// Broker time used when the topic uses LogAppendTime, else -1.
    pub log_append_time: i64,
    /// Batches as stored (base offsets rewritten).
    pub batches: Vec<BatchMeta>,
}

/// An (offset, timestamp) answer to a timestamp query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Ascending by base offset, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    /// Stamped into every appended batch when set (the leader's epoch).
    leader_epoch: Option<i32>,
    /// Where each leader epoch starts; persisted in `leader-epoch-checkpoint`.
    epochs: LeaderEpochCache,
    /// Set by the broker once it tracks one (replication); `None` means the log end.
    high_watermark: Option<i64>,
    unflushed_records: u64,
    first_unflushed_ms: Option<i64>,
}

impl PartitionLog {
    /// Opens (creating if missing) the log in `dir`, recovering segments after the last
    /// clean shutdown: a torn or corrupt tail is truncated to the last valid batch.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let clean = dir.join(CLEAN_SHUTDOWN).exists();
        let bases = scan_dir(dir)?;
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_offset(dir, RECOVERY_POINT)?
        };
        let stored_start = read_offset(dir, LOG_START_OFFSET)?;

        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        let mut recovered = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            // A segment may hold unflushed data if anything in it is past the recovery point.
            let recover = next_base.is_none_or(|n| n > recovery_point);
            let (seg, cut) = Segment::open(dir, base, config.index_interval_bytes, recover)?;
            let overlaps = next_base.is_some_and(|n| seg.next_offset() > n);
            if recover {
                recovered.push(segments.len());
            }
            segments.push(seg);
            if cut || overlaps {
                // Everything after a torn batch was written later and cannot be trusted.
                for &b in &bases[i + 1..] {
                    tracing::warn!(segment = b, "deleting segment after a corrupt one");
                    delete_files(dir, b)?;
                }
                break;
            }
        }
        for &i in &recovered {
            segments[i].flush()?;
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                stored_start,
                config.index_interval_bytes,
            )?);
        }
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: 0,
            recovery_point: 0,
            leader_epoch: None,
            epochs: LeaderEpochCache::default(),
            high_watermark: None,
            unflushed_records: 0,
            first_unflushed_ms: None,
        };
        let first_base = log.segments[0].base_offset();
        log.log_start_offset = stored_start.max(first_base).min(log.log_end_offset());
        log.load_epoch_cache()?;
        // Everything left was either trusted as flushed or validated and fsynced above.
        log.set_recovery_point(log.log_end_offset())?;
        remove_if_exists(&dir.join(CLEAN_SHUTDOWN))?;
        sync_dir(dir)?;
        Ok(log)
    }

    /// Validates and appends the batches one producer sent for this partition, assigning
    /// offsets. Nothing is written unless every batch is valid.
    pub fn append(&mut self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        let mut metas = parse_batches(&records)?;
        for m in &metas {
            if m.size > self.config.max_message_bytes {
                return Err(LogError::TooLarge {
                    size: m.size,
                    max: self.config.max_message_bytes,
                });
            }
            if m.record_count <= 0 || m.record_count as i64 != m.last_offset_delta as i64 + 1 {
                return Err(LogError::InvalidRecord(format!(
                    "recordsCount {} does not match lastOffsetDelta {}",
                    m.record_count, m.last_offset_delta
                )));
            }
        }
        let offsets: i64 = metas.iter().map(|m| m.last_offset_delta as i64 + 1).sum();
        let leo = self.log_end_offset();
        self.maybe_roll(records.len() as u64, leo, leo + offsets, now_ms)?;

        let log_append = self.config.timestamp_type == TimestampType::LogAppendTime;
        let mut buf = BytesMut::from(&records[..]);
        let mut next = self.log_end_offset();
        for m in &mut metas {
            let bytes = &mut buf[m.position..m.position + m.size];
            batch::set_base_offset(bytes, next);
            m.base_offset = next;
            if let Some(epoch) = self.leader_epoch {
                batch::set_partition_leader_epoch(bytes, epoch);
                m.partition_leader_epoch = epoch;
            }
            if log_append {
                batch::set_log_append_time(bytes, now_ms);
                m.max_timestamp = now_ms;
                m.attributes |= batch::ATTR_LOG_APPEND_TIME;
            }
            next = m.next_offset();
        }
        self.assign_batch_epochs(&metas)?;
        self.active_mut().append(&buf, &metas, now_ms)?;
        self.unflushed_records += offsets as u64;
        self.first_unflushed_ms.get_or_insert(now_ms);
        self.flush_if_due(now_ms)?;
        let first = metas.first().map_or(next, |m| m.base_offset);
        Ok(AppendInfo {
            base_offset: first,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            batches: metas,
        })
    }

    /// Rolls before an append of `bytes` bytes whose first batch starts at `first_base` and
    /// whose last ends before `end` when the active segment is full, too old (by
    /// `rolling_ms`, see `Segment`), or its relative offsets would overflow the index. The new
    /// segment starts at `first_base` (the log end, except past a gap in fetched batches).
    fn maybe_roll(&mut self, bytes: u64, first_base: i64, end: i64, now_ms: i64) -> Result<()> {
        let active = self.active();
        let offsets_overflow = end - active.base_offset() > MAX_RELATIVE_OFFSET;
        if active.is_empty() {
            if offsets_overflow && first_base > active.base_offset() {
                // Only a follower skipping a huge compaction gap gets here.
                if let Some(empty) = self.segments.pop() {
                    empty.delete()?;
                }
                let seg = Segment::create(&self.dir, first_base, self.config.index_interval_bytes)?;
                self.segments.push(seg);
                sync_dir(&self.dir)?;
            }
            return Ok(());
        }
        let limit = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = active.size() + bytes > limit;
        let old = active
            .rolling_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms);
        if full || old || offsets_overflow {
            self.roll_at(first_base)?;
        }
        Ok(())
    }

    /// Seals the active segment (indexes written, data fsynced) and starts a new one at the
    /// log end. A no-op while the active segment is empty.
    pub fn roll(&mut self) -> Result<()> {
        self.roll_at(self.log_end_offset())
    }

    /// `roll`, with the new segment based at `base` (at least the log end).
    fn roll_at(&mut self, base: i64) -> Result<()> {
        if self.active().is_empty() {
            return Ok(());
        }
        let end = self.log_end_offset();
        let active = self.active_mut();
        active.write_indexes()?;
        active.flush()?;
        let seg = Segment::create(&self.dir, base.max(end), self.config.index_interval_bytes)?;
        sync_dir(&self.dir)?;
        self.segments.push(seg);
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        self.set_recovery_point(end)
    }

    /// Rolls when the active segment is older than `segment.ms`; the broker calls this
    /// periodically so idle partitions roll too.
    pub fn roll_if_due(&mut self, now_ms: i64) -> Result<()> {
        let due = self
            .active()
            .rolling_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms);
        if due {
            self.roll()?;
        }
        Ok(())
    }

    /// fsyncs everything appended so far and advances the recovery point.
    pub fn flush(&mut self) -> Result<()> {
        if self.unflushed_records == 0 && self.recovery_point == self.log_end_offset() {
            return Ok(());
        }
        self.active().flush()?;
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        self.set_recovery_point(self.log_end_offset())
    }

    /// Flushes when `flush.messages` or `flush.ms` (see `FlushPolicy`) says so.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<()> {
        if self.unflushed_records == 0 {
            return Ok(());
        }
        let by_count = self
            .config
            .flush
            .messages
            .is_some_and(|n| self.unflushed_records >= n);
        let by_age = match (self.config.flush.ms, self.first_unflushed_ms) {
            (Some(ms), Some(first)) => {
                now_ms.saturating_sub(first) >= i64::try_from(ms).unwrap_or(i64::MAX)
            }
            _ => false,
        };
        if by_count || by_age {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes, writes the indexes and marks the shutdown clean so the next open skips
    /// recovery.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.active_mut().write_indexes()?;
        std::fs::File::create(self.dir.join(CLEAN_SHUTDOWN))?.sync_all()?;
        sync_dir(&self.dir)
    }

    /// Whole batches from the one holding `fetch_offset`, up to `max_bytes` but at least one
    /// batch (KIP-74). Empty at the log end.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<Bytes> {
        self.read_up_to(fetch_offset, max_bytes, i64::MAX)
    }

    /// Like `read`, but never returns a batch whose base offset is >= `max_offset_exclusive`
    /// (e.g. the high watermark). Reads come from one segment at a time.
    pub fn read_up_to(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
    ) -> Result<Bytes> {
        self.check_range(fetch_offset)?;
        if fetch_offset >= self.log_end_offset() || fetch_offset >= max_offset_exclusive {
            return Ok(Bytes::new());
        }
        for seg in &self.segments[self.segment_index(fetch_offset)..] {
            if let Some(first) = seg.find(fetch_offset)? {
                return seg.read_from(&first, max_bytes, max_offset_exclusive);
            }
        }
        Ok(Bytes::new())
    }

    fn check_range(&self, offset: i64) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        Ok(())
    }

    /// Index of the segment that would hold `offset`: the last one with base <= offset.
    fn segment_index(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// The earliest record with timestamp >= `ts` at or after the log start (ListOffsets).
    /// For LogAppendTime batches every record carries the batch's max timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampOffset>> {
        let start = self.log_start_offset;
        for seg in &self.segments {
            if seg.next_offset() <= start || seg.max_timestamp().is_none_or(|(t, _)| t < ts) {
                continue;
            }
            let mut pos = seg.timestamp_scan_start(ts, start);
            while let Some(meta) =
                seg.find_from(pos, |m| m.max_timestamp >= ts && m.last_offset() >= start)?
            {
                let (_, records) = decode_batch(&seg.read_batch(&meta)?)?;
                let hit = records
                    .iter()
                    .find(|r| r.timestamp >= ts && r.offset >= start);
                if let Some(r) = hit {
                    return Ok(Some(TimestampOffset {
                        offset: r.offset,
                        timestamp: r.timestamp,
                    }));
                }
                pos = (meta.position + meta.size) as u64;
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the first record with the largest timestamp (ListOffsets
    /// MAX_TIMESTAMP). Finding the exact record means decoding its batch; should that fail,
    /// the batch's base offset is returned.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        let mut best: Option<(&Segment, i64, i64)> = None;
        for seg in &self.segments {
            if let Some((t, off)) = seg.max_timestamp() {
                if best.is_none_or(|(_, bt, _)| t > bt) {
                    best = Some((seg, t, off));
                }
            }
        }
        let (seg, ts, batch_base) = best?;
        let exact = || -> Result<Option<i64>> {
            let Some(meta) = seg.find(batch_base)? else {
                return Ok(None);
            };
            let (_, records) = decode_batch(&seg.read_batch(&meta)?)?;
            Ok(records.iter().find(|r| r.timestamp == ts).map(|r| r.offset))
        };
        let offset = match exact() {
            Ok(Some(o)) => o,
            Ok(None) => batch_base,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode the max-timestamp batch");
                batch_base
            }
        };
        Some(TimestampOffset {
            offset,
            timestamp: ts,
        })
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the high watermark, which is the
    /// log end until the broker sets one) and deletes segments wholly below it. An offset above
    /// the high watermark is out of range, as in Kafka. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        let end = self.high_watermark();
        let target = if offset == -1 { end } else { offset };
        if target < 0 || target > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if target > self.log_start_offset {
            self.set_log_start(target)?;
        }
        while self.segments.len() > 1 && self.segments[1].base_offset() <= self.log_start_offset {
            self.segments.remove(0).delete()?;
        }
        Ok(self.log_start_offset)
    }

    /// Deletes the oldest segments past `retention.ms` (by their largest timestamp) or beyond
    /// `retention.bytes`, as Kafka does: an expired active segment is rolled, then deleted.
    /// A segment goes only if everything in it is below the high watermark, so the log start
    /// never passes it. Only for policies including delete. Returns how many segments were
    /// deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize> {
        if self.config.cleanup_policy == CleanupPolicy::Compact {
            return Ok(0);
        }
        let retention_ms = self.config.retention_ms;
        let mut deleted = 0;
        if retention_ms >= 0 {
            deleted += self.delete_oldest(|seg| {
                seg.max_timestamp()
                    .is_some_and(|(t, _)| now_ms.saturating_sub(t) > retention_ms)
            })?;
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            deleted += self.delete_oldest(|seg| {
                let ok = excess - seg.size() as i64 >= 0;
                if ok {
                    excess -= seg.size() as i64;
                }
                ok
            })?;
        }
        Ok(deleted)
    }

    /// Deletes segments from the oldest while `doomed` says so and the segment ends at or
    /// below the high watermark, rolling first if the active segment goes too. An empty active
    /// segment stays; other empty ones go with the rest.
    fn delete_oldest(&mut self, mut doomed: impl FnMut(&Segment) -> bool) -> Result<usize> {
        let hw = self.high_watermark();
        let mut n = 0;
        while n < self.segments.len() {
            let seg = &self.segments[n];
            let active = n + 1 == self.segments.len();
            // Deleting it moves the log start to the next segment's base (the log end after
            // the active one).
            let upper = match self.segments.get(n + 1) {
                Some(next) => next.base_offset(),
                None => self.log_end_offset(),
            };
            if upper > hw {
                break;
            }
            let goes = if seg.is_empty() { !active } else { doomed(seg) };
            if !goes {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        if n == self.segments.len() {
            self.roll()?;
        }
        for seg in self.segments.drain(..n).collect::<Vec<_>>() {
            seg.delete()?;
        }
        self.after_segments_removed()?;
        Ok(n)
    }

    /// Drops every batch holding offsets >= `offset` (a batch straddling it goes whole), for
    /// replication's divergence handling. Below the log start the log restarts empty there
    /// (`truncate_fully_and_start_at`). The epoch cache loses the entries starting at or after
    /// the new log end (also when nothing else is cut, so an epoch this replica led without
    /// writing anything goes), the truncated segment's indexes are rebuilt and written, the
    /// recovery point is written durably at the new end and the high watermark is capped there.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset() {
            return self.truncate_epochs_from_end(offset);
        }
        if offset < 0 {
            let (start, end) = (self.log_start_offset, self.log_end_offset());
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        while self
            .segments
            .last()
            .is_some_and(|s| s.base_offset() >= offset)
        {
            if let Some(seg) = self.segments.pop() {
                seg.delete()?;
            }
        }
        match self.segments.last_mut() {
            Some(seg) => seg.truncate_to(offset)?,
            None => self.segments.push(Segment::create(
                &self.dir,
                offset,
                self.config.index_interval_bytes,
            )?),
        }
        sync_dir(&self.dir)?;
        let end = self.log_end_offset();
        self.log_start_offset = self.log_start_offset.min(end);
        self.after_truncation(end)?;
        self.truncate_epochs_from_end(end)
    }

    /// Deletes every segment and restarts the log empty at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): for a follower whose log end is below the leader's log
    /// start, or that must drop everything. Clears the epoch cache.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        if offset < 0 {
            let (start, end) = (self.log_start_offset, self.log_end_offset());
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        for seg in std::mem::take(&mut self.segments) {
            seg.delete()?;
        }
        self.segments.push(Segment::create(
            &self.dir,
            offset,
            self.config.index_interval_bytes,
        )?);
        sync_dir(&self.dir)?;
        if self.epochs.clear() {
            self.epochs.write(&self.dir)?;
        }
        self.set_log_start(offset)?;
        self.after_truncation(offset)
    }

    /// Resets flush state, makes the new end durable as the recovery point and caps the high
    /// watermark at it.
    fn after_truncation(&mut self, end: i64) -> Result<()> {
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        self.active().flush()?;
        // Durable, unlike flush's hint: a stale higher point would trust rewritten data.
        write_atomic(&self.dir.join(RECOVERY_POINT), end.to_string().as_bytes())?;
        self.recovery_point = end;
        if let Some(hw) = self.high_watermark {
            self.high_watermark = Some(hw.clamp(self.log_start_offset, end));
        }
        Ok(())
    }

    fn truncate_epochs_from_end(&mut self, end: i64) -> Result<()> {
        if self.epochs.truncate_from_end(end) {
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }

    /// Appends batches fetched from the leader exactly as they are (offsets, partition leader
    /// epochs and timestamps kept; CRCs checked), under the same flush, roll and index rules
    /// as `append`, with the wall clock as the broker time. See `append_as_follower_at`.
    pub fn append_as_follower(&mut self, records: Bytes) -> Result<AppendInfo> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.append_as_follower_at(records, now_ms)
    }

    /// `append_as_follower` with an explicit broker time (for `segment.ms` and `flush.ms`).
    ///
    /// The first batch must not start below the log end: `OffsetMismatch` then, which means
    /// the follower's log diverged and must be truncated (OffsetsForLeaderEpoch) before it
    /// fetches again. The exception is an empty log whose start falls inside that batch (a
    /// follower restarted at the leader's log start, which DeleteRecords put mid-batch): the
    /// batch is stored whole and the log start stays, as on the leader (Kafka handles this in
    /// `Partition`). It may start above the log end, as can batches after one another: the
    /// leader's compaction removes whole batches, leaving gaps. A trailing batch cut short is
    /// ignored (the next fetch starts at the new log end); an empty buffer appends nothing and
    /// returns `batches` empty with `base_offset` the log end. Record counts are not checked
    /// against offset deltas (compacted batches hold fewer records) nor sizes against
    /// `max.message.bytes` (the leader accepted them), as in Kafka. Every batch's partition
    /// leader epoch is recorded in the epoch cache before the data is written.
    pub fn append_as_follower_at(&mut self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        let metas = batch::parse_fetched_batches(&records)?;
        let leo = self.log_end_offset();
        let (Some(first), Some(last)) = (metas.first(), metas.last()) else {
            return Ok(AppendInfo {
                base_offset: leo,
                last_offset: leo - 1,
                log_append_time: -1,
                batches: Vec::new(),
            });
        };
        for pair in metas.windows(2) {
            if pair[1].base_offset < pair[0].next_offset() {
                return Err(LogError::InvalidRecord(format!(
                    "batch at offset {} overlaps the batch before it (next offset {})",
                    pair[1].base_offset,
                    pair[0].next_offset()
                )));
            }
        }
        if first.base_offset < leo {
            let empty = leo == self.log_start_offset;
            if !empty || first.last_offset() < leo {
                return Err(LogError::OffsetMismatch {
                    expected: leo,
                    got: first.base_offset,
                });
            }
            // An empty log starting inside the leader's first batch (DeleteRecords cut it):
            // keep that batch whole below the log start, as the leader does.
            let start = self.log_start_offset;
            self.truncate_fully_and_start_at(first.base_offset)?;
            self.set_log_start(start)?;
        }
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        self.assign_batch_epochs(&metas)?;
        // Batches whose offsets fit one segment's relative index go in together.
        let mut i = 0;
        while i < metas.len() {
            let group_base = metas[i].base_offset;
            let mut j = i + 1;
            while j < metas.len() && metas[j].next_offset() - group_base <= MAX_RELATIVE_OFFSET {
                j += 1;
            }
            let from = metas[i].position;
            let to = metas[j - 1].position + metas[j - 1].size;
            let end = metas[j - 1].next_offset();
            self.maybe_roll((to - from) as u64, group_base, end, now_ms)?;
            let group: Vec<BatchMeta> = metas[i..j]
                .iter()
                .map(|m| BatchMeta {
                    position: m.position - from,
                    ..m.clone()
                })
                .collect();
            self.active_mut()
                .append(&records[from..to], &group, now_ms)?;
            i = j;
        }
        let offsets: i64 = metas.iter().map(|m| m.last_offset_delta as i64 + 1).sum();
        self.unflushed_records += offsets as u64;
        self.first_unflushed_ms.get_or_insert(now_ms);
        self.flush_if_due(now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: -1,
            batches: metas,
        })
    }

    /// Records the epochs of batches about to be written (see `epoch`), durably, before the
    /// data: a crash in between leaves entries past the log end, which `open` drops.
    fn assign_batch_epochs(&mut self, metas: &[BatchMeta]) -> Result<()> {
        let mut changed = false;
        for m in metas {
            changed |= self.epochs.assign(m.partition_leader_epoch, m.base_offset);
        }
        if changed {
            // A batch straddling the log start has its epoch start there.
            self.epochs.truncate_from_start(self.log_start_offset);
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }

    /// Records that leader epoch `epoch` starts at `start_offset`; the broker calls it when
    /// this replica becomes leader, with the log end (and `set_leader_epoch` to stamp the
    /// batches it appends). Kafka's assignment rules apply (see the `epoch` module): the same
    /// epoch again is a no-op, a lower epoch or earlier start rewrites the cache's tail. A
    /// negative epoch (no epoch) is ignored; a start outside [log start, log end] is
    /// `OffsetOutOfRange`. Persisted before returning.
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if start_offset < start || start_offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset: start_offset,
                start,
                end,
            });
        }
        if self.epochs.assign(epoch, start_offset) {
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }

    /// The latest leader epoch in the epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetsForLeaderEpoch: `(epoch, end_offset)` where `epoch` is the largest known epoch
    /// <= the requested one and `end_offset` the start of the next higher epoch, or the log end
    /// when it is the latest. `None` maps to Kafka's UNDEFINED_EPOCH (-1) and
    /// UNDEFINED_EPOCH_OFFSET (-1): requested epoch negative or above every known one, or no
    /// epoch known. Below every known epoch it answers the requested epoch with the first
    /// entry's start offset, as Kafka does.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader epoch cache, oldest entry first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Sets the high watermark, clamped to [log start, log end]; returns the value kept. Kept
    /// in memory only (the broker checkpoints it, Kafka's `replication-offset-checkpoint`);
    /// retention and `delete_records_before` never move the log start past it, and truncation
    /// caps it at the new log end.
    pub fn set_high_watermark(&mut self, offset: i64) -> i64 {
        let hw = offset.clamp(self.log_start_offset, self.log_end_offset());
        self.high_watermark = Some(hw);
        hw
    }

    /// The high watermark last set (clamped to the log end), or the log end if none was.
    pub fn high_watermark(&self) -> i64 {
        let end = self.log_end_offset();
        self.high_watermark.map_or(end, |hw| hw.min(end))
    }

    /// Applies new settings from the next append, roll or retention pass (`index.interval.bytes`
    /// only for segments created afterwards).
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Stamps `epoch` into the partition leader epoch of every batch appended from now on.
    pub fn set_leader_epoch(&mut self, epoch: Option<i32>) {
        self.leader_epoch = epoch;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// Offset below which all data is known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offset of the active segment: it changes when the log rolls.
    pub fn active_base_offset(&self) -> i64 {
        self.active().base_offset()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn active(&self) -> &Segment {
        // `segments` is never empty: open and every deletion path leave an active segment.
        &self.segments[self.segments.len() - 1]
    }
    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
    pub(crate) fn segments_mut(&mut self) -> &mut Vec<Segment> {
        &mut self.segments
    }
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Keeps the log start at or past the first segment after segments were removed.
    pub(crate) fn after_segments_removed(&mut self) -> Result<()> {
        sync_dir(&self.dir)?;
        let first = self.segments[0].base_offset();
        if first > self.log_start_offset {
            self.set_log_start(first)?;
        }
        Ok(())
    }

    /// Moves the log start durably; the epoch cache follows.
    fn set_log_start(&mut self, offset: i64) -> Result<()> {
        write_atomic(
            &self.dir.join(LOG_START_OFFSET),
            offset.to_string().as_bytes(),
        )?;
        self.log_start_offset = offset;
        if let Some(hw) = self.high_watermark {
            self.high_watermark = Some(hw.max(offset));
        }
        if self.epochs.truncate_from_start(offset) {
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }

    /// Loads the epoch cache on open, trimmed to [log start, log end]. It is rebuilt from the
    /// batch headers when the checkpoint is missing or malformed, or disagrees with the last
    /// batch's epoch (the only one a lost write could leave out: entries are written before
    /// their batches).
    fn load_epoch_cache(&mut self) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if let Some(mut cache) = LeaderEpochCache::read(&self.dir)? {
            let trimmed = cache.truncate_from_end(end) | cache.truncate_from_start(start);
            if self.last_batch_epoch_matches(&cache)? {
                self.epochs = cache;
                if trimmed {
                    self.epochs.write(&self.dir)?;
                }
                return Ok(());
            }
            tracing::warn!(dir = %self.dir.display(), "leader epoch checkpoint disagrees with the log");
        }
        self.rebuild_epoch_cache()
    }

    /// Whether `cache` gives the last batch the epoch stored in it (if it has one).
    fn last_batch_epoch_matches(&self, cache: &LeaderEpochCache) -> Result<bool> {
        let Some(seg) = self.segments.iter().rev().find(|s| !s.is_empty()) else {
            return Ok(true);
        };
        let last = match seg.find(seg.next_offset() - 1) {
            Ok(Some(last)) => last,
            Ok(None) | Err(LogError::Corrupt(_) | LogError::InvalidRecord(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if last.partition_leader_epoch < 0 {
            return Ok(true);
        }
        let at = last.base_offset.max(self.log_start_offset);
        Ok(cache.epoch_for_offset(at) == Some(last.partition_leader_epoch))
    }

    /// Rebuilds the epoch cache from every batch header and writes it. An unreadable header
    /// (which reads will report) ends the scan of its segment.
    fn rebuild_epoch_cache(&mut self) -> Result<()> {
        let mut cache = LeaderEpochCache::default();
        for seg in &self.segments {
            let mut pos = 0;
            while pos < seg.size() {
                match seg.read_header(pos) {
                    Ok(m) => {
                        cache.assign(m.partition_leader_epoch, m.base_offset);
                        pos += m.size as u64;
                    }
                    Err(LogError::Io(e)) => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(segment = seg.base_offset(), error = %e, "epoch rebuild skips a bad header");
                        break;
                    }
                }
            }
        }
        cache.truncate_from_start(self.log_start_offset);
        cache.truncate_from_end(self.log_end_offset());
        self.epochs = cache;
        self.epochs.write(&self.dir)
    }

    /// Records the recovery point. The file is a hint written without fsync: if it is lost or
    /// torn the next unclean open just recovers more.
    fn set_recovery_point(&mut self, offset: i64) -> Result<()> {
        self.recovery_point = offset;
        let tmp = self.dir.join(format!("{RECOVERY_POINT}.tmp"));
        std::fs::write(&tmp, offset.to_string())?;
        std::fs::rename(tmp, self.dir.join(RECOVERY_POINT))?;
        Ok(())
    }
}

/// Base offsets of the segments in `dir`, ascending; deletes leftovers of interrupted work
/// (temp files, unswapped cleaner output, indexes without a log).
fn scan_dir(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        let base = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten();
        match (base, ext) {
            (Some(b), "log") => bases.push(b),
            (Some(b), "index" | "timeindex") => indexes.push((b, path)),
            (_, e) if e.ends_with("tmp") || e.ends_with("cleaned") => {
                tracing::info!(file = %path.display(), "removing leftover file");
                remove_if_exists(&path)?;
            }
            _ => {}
        }
    }
    for (b, path) in indexes {
        if !bases.contains(&b) {
            remove_if_exists(&path)?;
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn delete_files(dir: &Path, base: i64) -> Result<()> {
    for p in [
        segment::log_path(dir, base),
        segment::index_path(dir, base),
        segment::time_index_path(dir, base),
    ] {
        remove_if_exists(&p)?;
    }
    Ok(())
}

/// Reads an offset file; missing or unparsable reads as 0 (the safe value for both files).
fn read_offset(dir: &Path, name: &str) -> Result<i64> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
