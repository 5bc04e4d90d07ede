//! Unit tests for `PartitionLog`.
use super::*;
use crate::testutil::{batch, batch_with, encode};
use crate::FlushPolicy;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy {
            messages: None,
            ms: None,
        },
        ..LogConfig::default()
    }
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..cfg()
    }
}

/// Offsets of every record returned by reading the whole log from `from`.
fn read_all_offsets(log: &PartitionLog, mut from: i64) -> Vec<i64> {
    let mut out = Vec::new();
    while from < log.log_end_offset() {
        let bytes = log.read(from, 1 << 20).expect("read");
        assert!(!bytes.is_empty(), "read at {from} returned nothing");
        for set in RecordBatchDecoder::decode_all(&mut bytes.clone()).expect("decode") {
            for r in set.records {
                if r.offset >= from {
                    out.push(r.offset);
                }
            }
        }
        from = parse_batches(&bytes)
            .expect("whole")
            .last()
            .expect("one")
            .next_offset();
    }
    out
}

#[test]
fn append_assigns_contiguous_offsets_and_read_returns_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    // Producers send base offset 0; the log assigns real ones.
    let info = log.append(batch(0, 3, 10), 1).expect("append");
    assert_eq!(
        (info.base_offset, info.last_offset, info.log_append_time),
        (0, 2, -1)
    );
    let mut two = BytesMut::from(&batch(0, 2, 20)[..]);
    two.extend_from_slice(&batch(0, 4, 30));
    let info = log.append(two.freeze(), 2).expect("append");
    assert_eq!((info.base_offset, info.last_offset), (3, 8));
    assert_eq!(info.batches[1].base_offset, 5);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(read_all_offsets(&log, 0), (0..9).collect::<Vec<_>>());
    assert_eq!(read_all_offsets(&log, 6), (6..9).collect::<Vec<_>>());
}

#[test]
fn read_bounds_follow_kafka() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    log.append(batch(0, 5, 0), 0).expect("append");
    log.append(batch(0, 5, 0), 0).expect("append");
    assert!(log.read(10, 100).expect("at end").is_empty());
    assert!(matches!(
        log.read(11, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // A batch straddling the fetch offset comes whole; max_bytes 1 still gives one batch.
    let one = log.read(7, 1).expect("read");
    let metas = parse_batches(&one).expect("whole");
    assert_eq!((metas.len(), metas[0].base_offset), (1, 5));
    assert_eq!(
        parse_batches(&log.read(0, 1 << 20).expect("read"))
            .expect("ok")
            .len(),
        2
    );
    assert!(log.read_up_to(0, 1 << 20, 0).expect("read").is_empty());
    let capped = log.read_up_to(0, 1 << 20, 5).expect("read");
    assert_eq!(parse_batches(&capped).expect("ok").len(), 1);
}

#[test]
fn rejects_bad_input_without_writing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            max_message_bytes: 200,
            ..cfg()
        },
    )
    .expect("open");
    let big = batch(0, 20, 0);
    let mut mixed = BytesMut::from(&batch(0, 1, 0)[..]);
    mixed.extend_from_slice(&big);
    assert!(matches!(
        log.append(mixed.freeze(), 0),
        Err(LogError::TooLarge { .. })
    ));
    let mut bad = BytesMut::from(&batch(0, 1, 0)[..]);
    bad[20] ^= 0xff;
    assert!(matches!(
        log.append(bad.freeze(), 0),
        Err(LogError::Corrupt(_))
    ));
    assert!(matches!(
        log.append(Bytes::from_static(b"junk"), 0),
        Err(LogError::Corrupt(_))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn log_append_time_overrides_max_timestamp() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..cfg()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    let info = log.append(batch(0, 3, 5), 777).expect("append");
    assert_eq!(info.log_append_time, 777);
    let stored = log.read(0, 1000).expect("read");
    let m = &parse_batches(&stored).expect("crc ok")[0];
    assert!(m.is_log_append_time());
    assert_eq!(m.max_timestamp, 777);
    let hit = log.offset_for_timestamp(700).expect("lookup");
    assert_eq!(
        hit,
        Some(TimestampOffset {
            offset: 0,
            timestamp: 777
        })
    );
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 0,
            timestamp: 777
        })
    );
}

#[test]
fn leader_epoch_is_stamped_when_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    log.set_leader_epoch(Some(4));
    log.append(batch(0, 1, 0), 0).expect("append");
    let m = &parse_batches(&log.read(0, 1000).expect("read")).expect("ok")[0];
    assert_eq!(m.partition_leader_epoch, 4);
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for i in 0..30 {
        log.append(batch(0, 2, i), i).expect("append");
    }
    assert!(
        log.segment_count() > 3,
        "rolled into {} segments",
        log.segment_count()
    );
    for from in 0..60 {
        assert_eq!(read_all_offsets(&log, from), (from..60).collect::<Vec<_>>());
    }
    let bases = log.segment_base_offsets();
    assert!(bases.windows(2).all(|w| w[0] < w[1]));
    assert!(dir.path().join(format!("{:020}.index", bases[1])).exists());
    assert!(dir
        .path()
        .join(format!("{:020}.timeindex", bases[1]))
        .exists());
}

#[test]
fn rolls_by_age_of_first_append() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            segment_ms: 100,
            ..cfg()
        },
    )
    .expect("open");
    log.append(batch(0, 1, 0), 1_000).expect("append");
    log.append(batch(0, 1, 0), 1_050).expect("append");
    assert_eq!(log.segment_count(), 1);
    log.append(batch(0, 1, 0), 1_100).expect("append");
    assert_eq!(log.segment_count(), 2);
    log.roll_if_due(1_150).expect("roll");
    assert_eq!(log.segment_count(), 2);
    log.roll_if_due(1_200).expect("roll");
    assert_eq!(log.segment_count(), 3);
    log.roll_if_due(5_000).expect("empty active does not roll");
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn offset_for_timestamp_finds_earliest_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
    ];
    // Batch i holds timestamps 100*i .. 100*i+3 at offsets 4*i .. 4*i+3.
    for i in 0..12i64 {
        log.append(batch_with(0, 4, 100 * i, codecs[i as usize % 4]), 0)
            .expect("append");
    }
    let at = |ts| log.offset_for_timestamp(ts).expect("lookup");
    assert_eq!(
        at(-5),
        Some(TimestampOffset {
            offset: 0,
            timestamp: 0
        })
    );
    assert_eq!(
        at(502),
        Some(TimestampOffset {
            offset: 22,
            timestamp: 502
        })
    );
    assert_eq!(
        at(504),
        Some(TimestampOffset {
            offset: 24,
            timestamp: 600
        })
    );
    assert_eq!(
        at(1103),
        Some(TimestampOffset {
            offset: 47,
            timestamp: 1103
        })
    );
    assert_eq!(at(1104), None);
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 47,
            timestamp: 1103
        })
    );
    log.delete_records_before(30).expect("delete");
    let at = |ts| log.offset_for_timestamp(ts).expect("lookup");
    assert_eq!(
        at(0),
        Some(TimestampOffset {
            offset: 30,
            timestamp: 702
        })
    );
}

#[test]
fn offset_for_timestamp_handles_out_of_order_timestamps() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    let specs = [
        (None, Some(&b"v"[..]), 50),
        (None, Some(&b"v"[..]), 10),
        (None, None, 30),
    ];
    log.append(encode(0, &specs, Compression::Snappy), 0)
        .expect("append");
    assert_eq!(
        log.offset_for_timestamp(20).expect("ok"),
        Some(TimestampOffset {
            offset: 0,
            timestamp: 50
        })
    );
    log.append(encode(0, &specs[1..], Compression::None), 0)
        .expect("append");
    assert_eq!(log.offset_for_timestamp(51).expect("ok"), None);
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 0,
            timestamp: 50
        })
    );
}

#[test]
fn delete_records_moves_start_and_drops_whole_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for i in 0..20 {
        log.append(batch(0, 2, i), i).expect("append");
    }
    let before = log.segment_count();
    let bases = log.segment_base_offsets();
    let inside = bases[2] + 1;
    assert_eq!(log.delete_records_before(inside).expect("delete"), inside);
    assert_eq!(log.segment_count(), before - 2);
    assert!(matches!(
        log.read(inside - 1, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all_offsets(&log, inside),
        (inside..40).collect::<Vec<_>>()
    );
    assert_eq!(
        log.delete_records_before(3).expect("no-op backwards"),
        inside
    );
    assert!(matches!(
        log.delete_records_before(41),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(-1).expect("to end"), 40);
    assert_eq!(log.segment_count(), 1);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
}

#[test]
fn retention_by_time_rolls_and_deletes_expired_active_segment() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_segments()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..20 {
        log.append(batch(0, 2, i * 100), 0).expect("append");
    }
    let n = log.segment_count();
    assert_eq!(log.apply_retention(1_000).expect("retention"), 0);
    // Timestamps reach 1901; at now=2_500 only segments whose max is < 1_500 go.
    let deleted = log.apply_retention(2_500).expect("retention");
    assert!(deleted > 0 && deleted < n);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert_eq!(
        read_all_offsets(&log, start),
        (start..40).collect::<Vec<_>>()
    );
    log.apply_retention(10_000).expect("retention");
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (40, 40, 0)
    );
    assert_eq!(log.segment_count(), 1);
    log.append(batch(0, 1, 0), 0).expect("still appendable");
    assert_eq!(log.log_end_offset(), 41);
}

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        retention_bytes: 1_000,
        retention_ms: -1,
        ..small_segments()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..30 {
        log.append(batch(0, 2, i), 0).expect("append");
    }
    assert!(log.apply_retention(0).expect("retention") > 0);
    assert!(
        log.size_bytes() >= 1_000 && log.size_bytes() < 1_400,
        "{}",
        log.size_bytes()
    );
    let compact_only = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..log.config().clone()
    };
    log.update_config(LogConfig {
        retention_bytes: 0,
        ..compact_only
    });
    assert_eq!(
        log.apply_retention(0).expect("compact policy keeps data"),
        0
    );
}

#[test]
fn truncate_to_drops_tail_and_stays_appendable() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for i in 0..20 {
        log.append(batch(0, 2, i), 0).expect("append");
    }
    log.truncate_to(25).expect("truncate");
    assert_eq!(
        log.log_end_offset(),
        24,
        "batch 24..25 straddles 25 and goes whole"
    );
    assert_eq!(read_all_offsets(&log, 0), (0..24).collect::<Vec<_>>());
    log.append(batch(0, 2, 0), 0).expect("append");
    assert_eq!(read_all_offsets(&log, 20), (20..26).collect::<Vec<_>>());
    log.truncate_to(0).expect("truncate all");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    drop(log);
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn clean_close_reopens_identically() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for i in 0..25 {
        log.append(batch_with(0, 3, i * 7, Compression::Gzip), i)
            .expect("append");
    }
    let all = log.read(0, usize::MAX).expect("read");
    let (end, segs) = (log.log_end_offset(), log.segment_count());
    let ts = log.offset_for_timestamp(50).expect("ok");
    log.close().expect("close");
    assert!(dir.path().join("clean-shutdown").exists());
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert!(!dir.path().join("clean-shutdown").exists());
    assert_eq!((log.log_end_offset(), log.segment_count()), (end, segs));
    assert_eq!(log.offset_for_timestamp(50).expect("ok"), ts);
    let mut again = BytesMut::new();
    let mut from = 0;
    while from < end {
        let b = log.read(from, usize::MAX).expect("read");
        from = parse_batches(&b)
            .expect("ok")
            .last()
            .expect("one")
            .next_offset();
        again.extend_from_slice(&b);
    }
    let mut first = BytesMut::new();
    let mut from = 0;
    let _ = all;
    while from < end {
        let b = log.read(from, 1).expect("read");
        from = parse_batches(&b)
            .expect("ok")
            .last()
            .expect("one")
            .next_offset();
        first.extend_from_slice(&b);
    }
    assert_eq!(again, first);
}

#[test]
fn unclean_open_truncates_torn_tail_and_cleans_strays() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    log.append(batch(0, 2, 0), 0).expect("append");
    let good = log.size_bytes();
    log.append(batch(0, 2, 0), 0).expect("append");
    drop(log); // no close: unclean
    let path = segment::log_path(dir.path(), 0);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(good + 30).expect("tear");
    std::fs::write(dir.path().join("00000000000000000000.log.cleaned"), b"x").expect("stray");
    std::fs::write(dir.path().join("00000000000000000099.index"), b"x").expect("stray");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("reopen");
    assert_eq!((log.log_end_offset(), log.size_bytes()), (2, good));
    assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
    assert!(!dir.path().join("00000000000000000099.index").exists());
    log.append(batch(0, 1, 0), 0).expect("appendable");
    assert_eq!(read_all_offsets(&log, 0), vec![0, 1, 2]);
}

#[test]
fn flush_policy_moves_recovery_point() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        flush: FlushPolicy {
            messages: Some(5),
            ms: Some(1_000),
        },
        ..cfg()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    log.append(batch(0, 3, 0), 0).expect("append");
    assert_eq!(log.recovery_point(), 0);
    log.append(batch(0, 3, 0), 10).expect("append");
    assert_eq!(log.recovery_point(), 6, "flush.messages reached");
    log.append(batch(0, 1, 0), 100).expect("append");
    log.flush_if_due(500).expect("flush");
    assert_eq!(log.recovery_point(), 6);
    log.flush_if_due(1_100).expect("flush");
    assert_eq!(log.recovery_point(), 7, "flush.ms reached");
    let rp = std::fs::read_to_string(dir.path().join("recovery-point")).expect("file");
    assert_eq!(rp, "7");
}
