//! Unit tests for what replication needs: follower appends, the leader epoch cache,
//! truncation and the high watermark.
use super::*;
use crate::epoch::CHECKPOINT_FILE;
use crate::testutil::batch;
use crate::FlushPolicy;

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

/// Every stored byte from `from` to the log end, read batch by batch.
fn read_all(log: &PartitionLog, mut from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while from < log.log_end_offset() {
        let bytes = log.read(from, max_bytes).expect("read");
        if bytes.is_empty() {
            break;
        }
        from = parse_batches(&bytes)
            .expect("whole")
            .last()
            .expect("one")
            .next_offset();
        out.extend_from_slice(&bytes);
    }
    out
}

/// Fetches from `leader` until `follower` has everything.
fn catch_up(leader: &PartitionLog, follower: &mut PartitionLog, max_bytes: usize, now: i64) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = leader
            .read(follower.log_end_offset(), max_bytes)
            .expect("leader read");
        assert!(!bytes.is_empty());
        follower
            .append_as_follower_at(bytes, now)
            .expect("follower append");
    }
}

fn pairs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn become_leader(log: &mut PartitionLog, epoch: i32) {
    log.assign_epoch(epoch, log.log_end_offset())
        .expect("assign");
    log.set_leader_epoch(Some(epoch));
}

/// Appends `n` batches of 2 records.
fn produce(log: &mut PartitionLog, n: usize, ts: i64) {
    for i in 0..n {
        log.append(batch(0, 2, ts + i as i64), ts).expect("append");
    }
}

#[test]
fn follower_stores_leader_batches_byte_for_byte() {
    let (ld, fd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let leader_cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_segments()
    };
    let mut leader = PartitionLog::open(ld.path(), leader_cfg).expect("open");
    let follower_cfg = LogConfig {
        segment_bytes: 700,
        ..small_segments()
    };
    let mut follower = PartitionLog::open(fd.path(), follower_cfg.clone()).expect("open");
    become_leader(&mut leader, 3);
    produce(&mut leader, 10, 100);
    become_leader(&mut leader, 5);
    produce(&mut leader, 10, 200);
    catch_up(&leader, &mut follower, 250, 7);
    assert_eq!(follower.log_end_offset(), 40);
    assert_eq!(
        read_all(&follower, 0, 1 << 20),
        read_all(&leader, 0, 1 << 20)
    );
    assert_eq!(pairs(&follower), vec![(3, 0), (5, 20)]);
    assert_eq!(pairs(&follower), pairs(&leader));
    let stored = parse_batches(&follower.read(20, 1).expect("read")).expect("ok");
    assert_eq!(
        stored[0].partition_leader_epoch, 5,
        "epoch kept, not re-stamped"
    );
    assert!(stored[0].is_log_append_time(), "leader's timestamps kept");
    assert!(
        follower.segment_count() > 2,
        "follower rolls by its own config"
    );
    let sealed = follower.segment_base_offsets()[1];
    assert!(segment::index_path(fd.path(), sealed).exists());
    // What the follower wrote reopens (trusting its indexes) to the same log.
    follower.close().expect("close");
    let follower = PartitionLog::open(fd.path(), follower_cfg).expect("reopen");
    assert_eq!(read_all(&follower, 0, 1), read_all(&leader, 0, 1 << 20));
    assert_eq!(pairs(&follower), vec![(3, 0), (5, 20)]);
}

#[test]
fn follower_append_checks_offsets_and_input() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    let info = log
        .append_as_follower_at(batch(0, 3, 0), 0)
        .expect("append");
    assert_eq!(
        (info.base_offset, info.last_offset, info.batches.len()),
        (0, 2, 1)
    );
    assert!(matches!(
        log.append_as_follower_at(batch(2, 3, 0), 0),
        Err(LogError::OffsetMismatch {
            expected: 3,
            got: 2
        })
    ));
    // Out-of-order batches inside one response.
    let mut overlap = BytesMut::from(&batch(3, 3, 0)[..]);
    overlap.extend_from_slice(&batch(5, 1, 0));
    assert!(matches!(
        log.append_as_follower_at(overlap.freeze(), 0),
        Err(LogError::InvalidRecord(_))
    ));
    let mut corrupt = BytesMut::from(&batch(3, 1, 0)[..]);
    corrupt[30] ^= 1;
    assert!(matches!(
        log.append_as_follower_at(corrupt.freeze(), 0),
        Err(LogError::Corrupt(_))
    ));
    assert_eq!(
        log.log_end_offset(),
        3,
        "nothing written by refused appends"
    );
    let empty = log.append_as_follower_at(Bytes::new(), 0).expect("empty");
    assert!(empty.batches.is_empty());
    assert_eq!((empty.base_offset, log.log_end_offset()), (3, 3));
    // A trailing batch cut short is left for the next fetch.
    let mut cut = BytesMut::from(&batch(3, 1, 0)[..]);
    let whole = cut.len();
    cut.extend_from_slice(&batch(4, 2, 0)[..40]);
    let info = log.append_as_follower_at(cut.freeze(), 0).expect("append");
    assert_eq!((info.last_offset, log.log_end_offset()), (3, 4));
    assert_eq!(log.size_bytes() as usize, whole + batch(0, 3, 0).len());
    // A gap left by the leader's compaction is accepted, also between batches.
    let mut gappy = BytesMut::from(&batch(10, 2, 0)[..]);
    gappy.extend_from_slice(&batch(20, 1, 0));
    let info = log.append_as_follower_at(gappy.freeze(), 0).expect("gap");
    assert_eq!((info.base_offset, info.last_offset), (10, 20));
    assert_eq!(log.log_end_offset(), 21);
    let at_gap = parse_batches(&log.read(5, 1).expect("read")).expect("ok");
    assert_eq!(at_gap[0].base_offset, 10);
    let at_gap = parse_batches(&log.read(15, 1).expect("read")).expect("ok");
    assert_eq!(at_gap[0].base_offset, 20);
    // Record counts below the offset span (compacted batches) are fine for a follower.
    let mut compacted = BytesMut::from(&batch(21, 1, 0)[..]);
    compacted[23..27].copy_from_slice(&4i32.to_be_bytes()); // lastOffsetDelta, CRC-covered
    crate::batch::update_crc(&mut compacted);
    let info = log
        .append_as_follower_at(compacted.freeze(), 0)
        .expect("compacted");
    assert_eq!((info.last_offset, log.log_end_offset()), (25, 26));
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg()).expect("unclean reopen keeps it all");
    assert_eq!(log.log_end_offset(), 26);
}

#[test]
fn follower_append_follows_flush_and_roll_policy() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        segment_ms: 1_000,
        flush: FlushPolicy {
            messages: Some(4),
            ms: None,
        },
        ..cfg()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    log.append_as_follower_at(batch(0, 2, 0), 100)
        .expect("append");
    assert_eq!(log.recovery_point(), 0);
    log.append_as_follower_at(batch(2, 2, 0), 200)
        .expect("append");
    assert_eq!(log.recovery_point(), 4, "flush.messages reached");
    log.append_as_follower_at(batch(4, 2, 0), 1_100)
        .expect("append");
    assert_eq!(log.segment_count(), 2, "segment.ms from the first append");
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
}

#[test]
fn epoch_cache_follows_appends_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    assert_eq!(
        (log.latest_epoch(), log.end_offset_for_epoch(0)),
        (None, None)
    );
    become_leader(&mut log, 1);
    assert_eq!(pairs(&log), vec![(1, 0)]);
    produce(&mut log, 5, 0);
    become_leader(&mut log, 2);
    become_leader(&mut log, 4); // epoch 2 wrote nothing: it goes
    produce(&mut log, 5, 0);
    assert_eq!(pairs(&log), vec![(1, 0), (4, 10)]);
    // Stamping alone (no assign_epoch) records the epoch at the first batch.
    log.set_leader_epoch(Some(6));
    produce(&mut log, 2, 0);
    assert_eq!(pairs(&log), vec![(1, 0), (4, 10), (6, 20)]);
    assert_eq!(log.latest_epoch(), Some(6));
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 24)));
    assert_eq!(log.end_offset_for_epoch(5), Some((4, 20)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(7), None);
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("file");
    assert_eq!(text, "0\n3\n1 0\n4 10\n6 20\n");
    assert!(matches!(
        log.assign_epoch(9, 25),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.assign_epoch(-1, 24).ok(), Some(()), "no epoch: ignored");
    drop(log); // unclean
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(pairs(&log), vec![(1, 0), (4, 10), (6, 20)]);
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(pairs(&log), vec![(1, 0), (4, 10), (6, 20)]);
}

#[test]
fn epoch_cache_is_rebuilt_when_missing_or_inconsistent() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for epoch in [0, 2, 3] {
        become_leader(&mut log, epoch);
        produce(&mut log, 4, 0);
    }
    become_leader(&mut log, 7); // nothing written in 7 yet
    let expected = vec![(0, 0), (2, 8), (3, 16)];
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    let reopen = || PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    drop(log);
    std::fs::remove_file(&checkpoint).expect("rm");
    let log = reopen();
    assert_eq!(pairs(&log), expected, "rebuilt from batch headers");
    assert!(checkpoint.exists(), "and written");
    drop(log);
    std::fs::write(&checkpoint, "0\n2\n5 0\n1 3\n").expect("garbage");
    assert_eq!(pairs(&reopen()), expected);
    // A checkpoint missing the last batch's epoch (lost write) is not trusted.
    std::fs::write(&checkpoint, "0\n2\n0 0\n2 8\n").expect("stale");
    assert_eq!(pairs(&reopen()), expected);
    // Entries past the log end (written before data a crash lost) are dropped.
    std::fs::write(&checkpoint, "0\n4\n0 0\n2 8\n3 16\n8 40\n").expect("ahead");
    assert_eq!(pairs(&reopen()), expected);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).expect("file"),
        "0\n3\n0 0\n2 8\n3 16\n"
    );
}

#[test]
fn epoch_cache_follows_the_log_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        retention_bytes: 250,
        retention_ms: -1,
        ..small_segments()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    for epoch in 0..4 {
        become_leader(&mut log, epoch);
        produce(&mut log, 6, 0);
    }
    assert_eq!(pairs(&log), vec![(0, 0), (1, 12), (2, 24), (3, 36)]);
    log.delete_records_before(13).expect("delete");
    assert_eq!(pairs(&log), vec![(1, 13), (2, 24), (3, 36)]);
    log.delete_records_before(30).expect("delete");
    assert_eq!(pairs(&log), vec![(2, 30), (3, 36)]);
    log.apply_retention(0).expect("retention");
    let start = log.log_start_offset();
    assert!(start > 36, "retention went past epoch 3's start: {start}");
    assert_eq!(pairs(&log), vec![(3, start)]);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, start)));
    drop(log);
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).expect("rm");
    let log = PartitionLog::open(dir.path(), config).expect("reopen");
    assert_eq!(
        pairs(&log),
        vec![(3, start)],
        "rebuild trims to the log start"
    );
}

#[test]
fn truncate_to_fixes_epochs_indexes_recovery_point_and_high_watermark() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    for epoch in [1, 2, 3] {
        become_leader(&mut log, epoch);
        produce(&mut log, 10, 0);
    }
    assert_eq!(log.set_high_watermark(55), 55);
    let before = read_all(&log, 0, 1 << 20);
    log.truncate_to(45).expect("truncate");
    assert_eq!(log.log_end_offset(), 44, "straddling batch 44..45 goes");
    assert_eq!(pairs(&log), vec![(1, 0), (2, 20), (3, 40)]);
    log.truncate_to(39).expect("truncate");
    assert_eq!(log.log_end_offset(), 38);
    assert_eq!(pairs(&log), vec![(1, 0), (2, 20)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 38)));
    assert_eq!(log.end_offset_for_epoch(3), None);
    assert_eq!(log.high_watermark(), 38);
    assert_eq!(log.recovery_point(), 38);
    let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT)).expect("file");
    assert_eq!(rp, "38");
    let after = read_all(&log, 0, 1 << 20);
    assert_eq!(after, before[..after.len()]);
    // Truncating exactly at the log end only drops epochs that wrote nothing.
    become_leader(&mut log, 9);
    log.truncate_to(38).expect("no-op on data");
    assert_eq!(pairs(&log), vec![(1, 0), (2, 20)]);
    // The rewritten indexes serve every offset, and a reopen trusts them.
    let seg = log.segment_base_offsets().last().copied().expect("one");
    let (idx, _) = log.active().index_entries();
    log.close().expect("close");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.active().base_offset(), seg);
    assert_eq!(log.active().index_entries().0, idx);
    for from in 0..38 {
        let b = parse_batches(&log.read(from, 1).expect("read")).expect("ok");
        assert!(b[0].base_offset <= from && from <= b[0].last_offset());
    }
    assert_eq!(pairs(&log), vec![(1, 0), (2, 20)]);
    become_leader(&mut log, 10);
    produce(&mut log, 1, 0);
    assert_eq!(pairs(&log), vec![(1, 0), (2, 20), (10, 38)]);
}

#[test]
fn diverged_follower_truncates_to_the_leaders_epoch_end_and_converges() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut a = PartitionLog::open(ad.path(), small_segments()).expect("open");
    let mut b = PartitionLog::open(bd.path(), cfg()).expect("open");
    // Epoch 1: A leads, B copies the first 12 offsets.
    become_leader(&mut a, 1);
    produce(&mut a, 6, 0);
    catch_up(&a, &mut b, 1 << 20, 0);
    // A keeps writing in epoch 1 but B never gets it; B becomes leader in epoch 2.
    produce(&mut a, 4, 0);
    a.set_leader_epoch(None);
    become_leader(&mut b, 2);
    b.append(batch(0, 5, 0), 0).expect("append");
    b.append(batch(0, 1, 0), 0).expect("append");
    assert_eq!((a.log_end_offset(), b.log_end_offset()), (20, 18));
    // A asks B for the end of its latest epoch and truncates there.
    let a_epoch = a.latest_epoch().expect("epoch");
    let (epoch, end) = b.end_offset_for_epoch(a_epoch).expect("known");
    assert_eq!((epoch, end), (1, 12));
    assert!(
        matches!(
            b.read(a.log_end_offset(), 1 << 20),
            Err(LogError::OffsetOutOfRange { .. })
        ),
        "A's log end is past B's"
    );
    a.truncate_to(end.min(a.log_end_offset()))
        .expect("truncate");
    assert_eq!(a.log_end_offset(), 12);
    assert_eq!(pairs(&a), vec![(1, 0)]);
    catch_up(&b, &mut a, 100, 0);
    assert_eq!(read_all(&a, 0, 1 << 20), read_all(&b, 0, 1 << 20));
    assert_eq!(pairs(&a), pairs(&b));
    assert_eq!(pairs(&a), vec![(1, 0), (2, 12)]);
}

#[test]
fn offset_mismatch_when_fetching_into_a_diverged_tail() {
    let (ad, bd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut a = PartitionLog::open(ad.path(), cfg()).expect("open");
    let mut b = PartitionLog::open(bd.path(), cfg()).expect("open");
    become_leader(&mut a, 1);
    a.append(batch(0, 4, 0), 0).expect("append");
    become_leader(&mut b, 2);
    b.append(batch(0, 2, 0), 0).expect("append");
    b.append(batch(0, 6, 0), 0).expect("append");
    // A (log end 4) fetches from B at 4: B's batch 2..7 straddles it.
    let fetched = b.read(a.log_end_offset(), 1 << 20).expect("read");
    assert!(matches!(
        a.append_as_follower_at(fetched, 0),
        Err(LogError::OffsetMismatch {
            expected: 4,
            got: 2
        })
    ));
    let (epoch, end) = b.end_offset_for_epoch(1).expect("known");
    assert_eq!(
        (epoch, end),
        (1, 0),
        "B never had epoch 1: its first entry's start"
    );
    a.truncate_to(end).expect("truncate");
    catch_up(&b, &mut a, 1 << 20, 0);
    assert_eq!(read_all(&a, 0, 1 << 20), read_all(&b, 0, 1 << 20));
}

#[test]
fn truncate_fully_restarts_empty_at_the_given_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    become_leader(&mut log, 1);
    produce(&mut log, 10, 0);
    log.set_high_watermark(10);
    log.truncate_fully_and_start_at(50).expect("truncate");
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (50, 50, 1)
    );
    assert!(log.epoch_entries().is_empty());
    assert_eq!((log.high_watermark(), log.recovery_point()), (50, 50));
    log.append_as_follower_at(batch(50, 3, 0), 0)
        .expect("append");
    drop(log);
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 53));
    // truncate_to below the log start does the same.
    let mut log = log;
    log.delete_records_before(52).expect("delete");
    log.truncate_to(51).expect("truncate");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (51, 51));
    assert!(matches!(
        log.truncate_fully_and_start_at(-1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn high_watermark_bounds_delete_records_and_retention() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_segments()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    produce(&mut log, 20, 0);
    assert_eq!(log.high_watermark(), 40, "unset: the log end");
    assert_eq!(log.set_high_watermark(99), 40, "clamped to the log end");
    assert_eq!(log.set_high_watermark(25), 25);
    assert!(matches!(
        log.delete_records_before(26),
        Err(LogError::OffsetOutOfRange { end: 25, .. })
    ));
    assert_eq!(log.delete_records_before(-1).expect("to the HW"), 25);
    // Everything is expired, but only segments wholly below the HW go.
    log.apply_retention(1_000_000).expect("retention");
    let bases = log.segment_base_offsets();
    assert!(log.log_start_offset() <= 25);
    assert!(
        bases[0] <= 25 && bases.get(1).is_none_or(|&b| b > 25),
        "{bases:?}"
    );
    assert_eq!(read_all(&log, 25, 1 << 20), read_all(&log, 25, 1));
    log.set_high_watermark(40);
    log.apply_retention(1_000_000).expect("retention");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    assert_eq!(log.set_high_watermark(3), 40, "clamped to the log start");
}

#[test]
fn compaction_stops_at_the_high_watermark() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..small_segments()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    produce(&mut log, 20, 0); // every batch has keys k0, k1
    log.roll().expect("roll");
    log.set_high_watermark(0);
    let stats = log.compact(0).expect("compact");
    assert_eq!(stats.records_removed, 0, "nothing is committed");
    let second = log.segment_base_offsets()[1];
    log.set_high_watermark(second);
    let stats = log.compact(0).expect("compact");
    assert_eq!(
        stats.segments_cleaned, 1,
        "only the first segment is below the HW"
    );
}

#[test]
fn empty_follower_takes_a_batch_straddling_its_log_start() {
    let (ld, fd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut leader = PartitionLog::open(ld.path(), small_segments()).expect("open");
    become_leader(&mut leader, 2);
    produce(&mut leader, 3, 0);
    leader.delete_records_before(3).expect("delete mid-batch");
    let mut follower = PartitionLog::open(fd.path(), small_segments()).expect("open");
    follower.append(batch(0, 1, 0), 0).expect("old data");
    // Below the leader's log start: the follower restarts there and fetches.
    follower
        .truncate_fully_and_start_at(leader.log_start_offset())
        .expect("restart");
    let fetched = leader.read(3, 1 << 20).expect("read");
    assert_eq!(parse_batches(&fetched).expect("ok")[0].base_offset, 2);
    follower.append_as_follower_at(fetched, 0).expect("append");
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (3, 6)
    );
    assert_eq!(read_all(&follower, 3, 1), read_all(&leader, 3, 1));
    assert_eq!(pairs(&follower), vec![(2, 3)]);
    assert_eq!(pairs(&follower), pairs(&leader));
    drop(follower);
    let follower = PartitionLog::open(fd.path(), small_segments()).expect("reopen");
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (3, 6)
    );
    // Not empty: the same batch is a mismatch.
    let mut follower = follower;
    assert!(matches!(
        follower.append_as_follower_at(leader.read(4, 1).expect("read"), 0),
        Err(LogError::OffsetMismatch {
            expected: 6,
            got: 4
        })
    ));
}
