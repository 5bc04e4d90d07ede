//! Log compaction (`cleanup.policy=compact` or `compact,delete`).
//!
//! One pass cleans the *cleanable* segments: every segment before the active one, stopping
//! at the first whose largest timestamp is younger than `min.compaction.lag.ms` or that
//! reaches the high watermark. Within them only the record with the highest offset per key
//! survives; a surviving tombstone (null value) is dropped once its batch's max timestamp is
//! older than `delete.retention.ms`.
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
    let hw = log.high_watermark();
    let segments = log.segments();
    let cleanable = segments[..segments.len() - 1]
        .iter()
        .zip(&segments[1..])
        .take_while(|(s, next)| {
            // Nothing at or above the high watermark is compacted (Kafka stops at the last
            // stable offset, which is below it).
            let committed = next.base_offset() <= hw;
            // As in Kafka, a zero lag ignores timestamps (which producers may set in the future).
            committed
                && (lag <= 0
                    || s.max_timestamp()
                        .is_none_or(|(t, _)| now_ms.saturating_sub(t) >= lag))
        })
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
        // The first segment stays even when compaction empties it: it pins the log start
        // offset, which compaction must never move (only retention and DeleteRecords do), so
        // consumers resuming below the first surviving record are served, not refused.
        if seg.is_empty() && i > 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{encode, Spec};
    use crate::{FlushPolicy, LogConfig};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    fn config() -> LogConfig {
        LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            segment_bytes: 300,
            index_interval_bytes: 64,
            delete_retention_ms: 1_000,
            flush: FlushPolicy {
                messages: None,
                ms: None,
            },
            ..LogConfig::default()
        }
    }

    /// (offset, key, value) of every record in the log.
    fn contents(log: &PartitionLog) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
        let mut out = Vec::new();
        let mut from = log.log_start_offset();
        while from < log.log_end_offset() {
            let mut bytes = log.read(from, 1 << 20).expect("read");
            if bytes.is_empty() {
                break; // compaction removed everything up to the log end
            }
            let next = crate::parse_batches(&bytes)
                .expect("ok")
                .last()
                .expect("one")
                .next_offset();
            for set in RecordBatchDecoder::decode_all(&mut bytes).expect("decode") {
                out.extend(set.records.into_iter().map(|r| (r.offset, r.key, r.value)));
            }
            from = next;
        }
        out
    }

    fn put(log: &mut PartitionLog, specs: &[Spec<'_>], c: Compression) {
        log.append(encode(0, specs, c), 0).expect("append");
    }

    #[test]
    fn keeps_latest_value_per_key_with_original_offsets() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config()).expect("open");
        for round in 0..6i64 {
            let v = round.to_string().into_bytes();
            let c = [Compression::None, Compression::Gzip, Compression::Snappy][round as usize % 3];
            put(
                &mut log,
                &[(Some(b"a"), Some(&v), round), (Some(b"b"), Some(&v), round)],
                c,
            );
            put(&mut log, &[(None, Some(b"nokey"), round)], c);
        }
        put(
            &mut log,
            &[(Some(b"a"), Some(b"active"), 9)],
            Compression::None,
        );
        let before = contents(&log);
        let stats = log.compact(10_000).expect("compact");
        assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
        let after = contents(&log);
        // Null-key records all survive; only the last a/b of the cleaned range survive, plus
        // the active segment's record.
        assert_eq!(after.iter().filter(|r| r.1.is_none()).count(), 6);
        let last_a = before
            .iter()
            .filter(|r| r.1.as_deref() == Some(b"a"))
            .map(|r| r.0)
            .collect::<Vec<_>>();
        let kept_a = after
            .iter()
            .filter(|r| r.1.as_deref() == Some(b"a"))
            .map(|r| r.0)
            .collect::<Vec<_>>();
        assert_eq!(kept_a.last(), last_a.last(), "active segment untouched");
        assert!(kept_a.len() <= 2);
        for r in &after {
            assert!(before.contains(r), "offset {} kept its key and value", r.0);
        }
        // Every offset is still readable: removed ones lead to the next batch.
        for o in 0..log.log_end_offset() {
            let b = log.read(o, 1).expect("read");
            assert!(crate::parse_batches(&b).expect("ok")[0].last_offset() >= o);
        }
        // Compaction never moves the log start offset.
        assert_eq!(log.log_start_offset(), 0);
        // The cleaned log survives a restart, clean or not.
        drop(log);
        let log = PartitionLog::open(dir.path(), config()).expect("reopen");
        assert_eq!(contents(&log), after);
        assert_eq!(log.log_start_offset(), 0);
    }

    #[test]
    fn tombstones_drop_only_after_delete_retention() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config()).expect("open");
        put(
            &mut log,
            &[(Some(b"k"), Some(b"v"), 100)],
            Compression::None,
        );
        put(&mut log, &[(Some(b"k"), None, 100)], Compression::Lz4);
        log.roll().expect("roll");
        log.compact(600).expect("compact");
        assert_eq!(
            contents(&log),
            vec![(1, Some(Bytes::from_static(b"k")), None)]
        );
        log.compact(1_101).expect("compact");
        assert!(contents(&log).is_empty());
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(
            log.log_start_offset(),
            0,
            "compaction does not move the log start"
        );
        assert!(log
            .read(log.log_start_offset(), 100)
            .expect("read")
            .is_empty());
        log.append(
            encode(0, &[(Some(b"k"), Some(b"new"), 0)], Compression::None),
            0,
        )
        .expect("append");
        assert_eq!(contents(&log).len(), 1);
    }

    #[test]
    fn young_segments_and_delete_policy_are_left_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        let lagged = LogConfig {
            min_compaction_lag_ms: 500,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), lagged).expect("open");
        put(
            &mut log,
            &[
                (Some(b"k"), Some(b"1"), 1_000),
                (Some(b"k"), Some(b"2"), 1_000),
            ],
            Compression::None,
        );
        log.roll().expect("roll");
        assert_eq!(
            log.compact(1_200).expect("compact"),
            CompactionStats::default()
        );
        assert_eq!(log.compact(1_500).expect("compact").records_removed, 1);
        let delete = LogConfig {
            cleanup_policy: CleanupPolicy::Delete,
            ..config()
        };
        log.update_config(delete);
        assert_eq!(
            log.compact(9_999).expect("compact"),
            CompactionStats::default()
        );
    }
}
