//! Log compaction (`cleanup.policy=compact` or `compact,delete`).
//!
//! One pass cleans the *cleanable* segments: every segment before the active one, stopping
//! at the first whose largest timestamp is younger than `min.compaction.lag.ms`. Within them
//! only the record with the highest offset per key survives; a surviving tombstone (null
//! value) is dropped once its batch's max timestamp is older than `delete.retention.ms`.
//! Records with a null key are kept. Control batches are copied untouched.
//!
//! Surviving records keep their offsets: a batch is re-emitted with its original header (base
//! offset, lastOffsetDelta, timestamps, producer id/epoch/sequence, attributes, codec) and only
//! the surviving raw records, so their deltas stay valid. A batch left with no record is
//! dropped. Each segment is written to `<base>.log.cleaned`, fsynced and renamed over the
//! original (see `Segment::swap_in`); a segment left empty is deleted.
use crate::batch::BatchMeta;
use crate::record::{decode_batch, rebuild_batch, RecordView};
use crate::segment::{self, Segment};
use crate::{CleanupPolicy, PartitionLog, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten (or deleted because nothing survived).
    pub segments_cleaned: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl PartitionLog {
    /// Compacts the cleanable segments; see the `cleaner` module docs.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStats> {
        compact(self, now_ms)
    }
}

/// Compacts the cleanable segments of `log`; a no-op for `cleanup.policy=delete`.
pub fn compact(log: &mut PartitionLog, now_ms: i64) -> Result<CompactionStats> {
    let config = log.config().clone();
    if config.cleanup_policy == CleanupPolicy::Delete {
        return Ok(CompactionStats::default());
    }
    let lag = config.min_compaction_lag_ms;
    let segments = log.segments();
    let cleanable = segments[..segments.len() - 1]
        .iter()
        .take_while(|s| s.max_timestamp().is_none_or(|(t, _)| now_ms.saturating_sub(t) >= lag))
        .count();
    if cleanable == 0 {
        return Ok(CompactionStats::default());
    }

    // Latest offset of every key in the cleanable range.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for seg in &segments[..cleanable] {
        for_each_batch(seg, |meta, records| {
            if !meta.is_control() {
                for r in records {
                    if let Some(k) = &r.key {
                        latest.insert(Bytes::copy_from_slice(k), r.offset);
                    }
                }
            }
        })?;
    }
    let keep = |meta: &BatchMeta, r: &RecordView| match &r.key {
        None => true,
        Some(k) => {
            let is_latest = latest.get(k) == Some(&r.offset);
            let expired_tombstone = r.value_is_null
                && now_ms.saturating_sub(meta.max_timestamp) > config.delete_retention_ms;
            is_latest && !expired_tombstone
        }
    };

    let mut stats = CompactionStats::default();
    let mut emptied = Vec::new();
    let dir = log.dir().to_path_buf();
    for (i, seg) in log.segments_mut()[..cleanable].iter_mut().enumerate() {
        let cleaned_path = segment::log_path(&dir, seg.base_offset()).with_extension("log.cleaned");
        let mut out = BufWriter::new(File::create(&cleaned_path)?);
        let mut removed = 0u64;
        let mut written = 0u64;
        for meta in seg.headers_from(0)? {
            let raw = seg.read_batch(&meta)?;
            let bytes = if meta.is_control() {
                raw
            } else {
                let (_, records) = decode_batch(&raw)?;
                let kept: Vec<RecordView> =
                    records.iter().filter(|r| keep(&meta, r)).cloned().collect();
                removed += (records.len() - kept.len()) as u64;
                match kept.len() {
                    0 => continue,
                    n if n == records.len() => raw,
                    _ => rebuild_batch(&raw, &meta, &kept)?,
                }
            };
            out.write_all(&bytes)?;
            written += bytes.len() as u64;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if removed == 0 {
            drop(file);
            segment::remove_if_exists(&cleaned_path)?;
            continue;
        }
        file.sync_all()?;
        drop(file);
        stats.segments_cleaned += 1;
        stats.records_removed += removed;
        stats.bytes_before += seg.size();
        stats.bytes_after += written;
        seg.swap_in(&cleaned_path)?;
        if seg.is_empty() {
            emptied.push(i);
        }
    }
    // Remove emptied segments newest first so indexes stay valid.
    for &i in emptied.iter().rev() {
        let seg = log.segments_mut().remove(i);
        seg.delete()?;
    }
    if !emptied.is_empty() {
        log.after_segments_removed()?;
    }
    tracing::debug!(?stats, "compaction pass");
    Ok(stats)
}

fn for_each_batch(seg: &Segment, mut f: impl FnMut(&BatchMeta, &[RecordView])) -> Result<()> {
    for meta in seg.headers_from(0)? {
        let (_, records) = decode_batch(&seg.read_batch(&meta)?)?;
        f(&meta, &records);
    }
    Ok(())
}
