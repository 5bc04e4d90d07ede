//! Property tests for the partition log: round trips, rolling, reopen, recovery from a
//! damaged tail, retention and compaction, each checked against a plain in-memory model.
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use spate_log::{parse_batches, CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};
use std::collections::HashMap;

/// One record as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
}

#[derive(Debug, Clone)]
struct Batch {
    records: Vec<Rec>,
    compression: Compression,
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        prop::option::weighted(0.9, prop::collection::vec(b'a'..b'f', 1..3)),
        prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..48)),
        0i64..10_000,
    )
        .prop_map(|(key, value, ts)| Rec { key, value, ts })
}

fn batches(max: usize) -> impl Strategy<Value = Vec<Batch>> {
    prop::collection::vec(
        (prop::collection::vec(rec(), 1..6), compression()).prop_map(|(records, compression)| {
            Batch {
                records,
                compression,
            }
        }),
        1..max,
    )
}

fn encode(b: &Batch) -> Bytes {
    let records: Vec<Record> = b
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: r.ts,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: b.compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.freeze()
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        retention_ms: -1,
        flush: FlushPolicy {
            messages: None,
            ms: None,
        },
        ..LogConfig::default()
    }
}

/// Every record at or after `from` as (offset, record), read batch by batch.
fn contents_from(log: &PartitionLog, mut from: i64) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    while from < log.log_end_offset() {
        let bytes = log.read(from, 700).expect("read");
        if bytes.is_empty() {
            // Compaction may leave no batch between `from` and the log end.
            break;
        }
        let metas = parse_batches(&bytes).expect("whole batches");
        for set in RecordBatchDecoder::decode_all(&mut bytes.clone()).expect("decode") {
            for r in set.records.into_iter().filter(|r| r.offset >= from) {
                let rec = Rec {
                    key: r.key.map(|k| k.to_vec()),
                    value: r.value.map(|v| v.to_vec()),
                    ts: r.timestamp,
                };
                out.push((r.offset, rec));
            }
        }
        from = metas.last().expect("at least one batch").next_offset();
    }
    out
}

/// Appends every batch; returns the model: (offset, record) in order.
fn fill(log: &mut PartitionLog, batches: &[Batch]) -> Vec<(i64, Rec)> {
    let mut model = Vec::new();
    for b in batches {
        let info = log.append(encode(b), 0).expect("append");
        assert_eq!(info.base_offset, model.len() as i64);
        for r in &b.records {
            model.push((model.len() as i64, r.clone()));
        }
        assert_eq!(info.last_offset, model.len() as i64 - 1);
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_from_any_offset_and_after_reopen(
        batches in batches(24),
        segment_bytes in 150u64..2_000,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config(segment_bytes)).expect("open");
        let model = fill(&mut log, &batches);
        prop_assert_eq!(log.log_end_offset(), model.len() as i64);
        for from in 0..model.len() {
            prop_assert_eq!(&contents_from(&log, from as i64), &model[from..].to_vec());
        }
        let segments = log.segment_count();
        log.close().expect("close");
        let log = PartitionLog::open(dir.path(), config(segment_bytes)).expect("reopen");
        prop_assert_eq!(log.segment_count(), segments);
        prop_assert_eq!(contents_from(&log, 0), model.clone());
        drop(log); // unclean this time: recovery must give the same log
        let log = PartitionLog::open(dir.path(), config(segment_bytes)).expect("reopen");
        prop_assert_eq!(contents_from(&log, 0), model);
    }

    #[test]
    fn recovery_keeps_exactly_the_valid_prefix(
        batches in batches(16),
        segment_bytes in 300u64..3_000,
        truncate in any::<bool>(),
        where_ in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config(segment_bytes)).expect("open");
        let model = fill(&mut log, &batches);
        let last_base = *log.segment_base_offsets().last().expect("a segment");
        drop(log);
        let path = dir.path().join(format!("{last_base:020}.log"));
        let mut data = std::fs::read(&path).expect("read segment");
        prop_assume!(!data.is_empty());
        let metas = parse_batches(&Bytes::from(data.clone())).expect("valid before damage");
        // Offset after the last batch that stays whole and valid.
        let survivors_end = if truncate {
            let cut = where_.index(data.len());
            data.truncate(cut);
            metas.iter().take_while(|m| m.position + m.size <= cut).last()
        } else {
            // Damage a CRC-covered byte (magic onwards) of one batch.
            let victim = &metas[where_.index(metas.len())];
            let at = victim.position + 16 + where_.index(victim.size - 16);
            data[at] ^= flip;
            metas.iter().take_while(|m| m.position < victim.position).last()
        }
        .map_or(last_base, |m| m.next_offset());
        std::fs::write(&path, &data).expect("damage");

        let mut log = PartitionLog::open(dir.path(), config(segment_bytes)).expect("reopen");
        prop_assert_eq!(log.log_end_offset(), survivors_end);
        prop_assert_eq!(contents_from(&log, 0), model[..survivors_end as usize].to_vec());
        let info = log.append(encode(&batches[0]), 0).expect("appendable");
        prop_assert_eq!(info.base_offset, survivors_end);
    }

    #[test]
    fn retention_drops_only_old_whole_segments(
        batches in batches(24),
        retention_bytes in prop::option::of(0i64..3_000),
        retention_ms in prop::option::of(0i64..10_000),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = LogConfig {
            retention_bytes: retention_bytes.unwrap_or(-1),
            retention_ms: retention_ms.unwrap_or(-1),
            ..config(400)
        };
        let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
        let model = fill(&mut log, &batches);
        let bases = log.segment_base_offsets();
        let size_before = log.size_bytes() as i64;
        let now = 10_000;
        log.apply_retention(now).expect("retention");
        let start = log.log_start_offset();
        prop_assert!(bases.contains(&start) || start == log.log_end_offset());
        prop_assert_eq!(log.log_end_offset(), model.len() as i64);
        prop_assert_eq!(contents_from(&log, start), model[start as usize..].to_vec());
        if let (Some(limit), None) = (retention_bytes, retention_ms) {
            prop_assert!(log.size_bytes() as i64 >= limit.min(size_before));
        }
        if let (Some(ms), None) = (retention_ms, retention_bytes) {
            // A record newer than the cutoff keeps its segment and every later one.
            if let Some((first_fresh, _)) = model.iter().find(|(_, r)| now - r.ts <= ms) {
                prop_assert!(start <= *first_fresh);
            }
        }
    }

    #[test]
    fn compaction_keeps_latest_per_key_and_drops_old_tombstones(
        batches in batches(24),
        now in 0i64..12_000,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            delete_retention_ms: 2_000,
            ..config(400)
        };
        let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
        let mut batch_max_ts = Vec::new();
        for b in &batches {
            let max = b.records.iter().map(|r| r.ts).max().unwrap_or(0);
            batch_max_ts.extend(b.records.iter().map(|_| max));
        }
        let model = fill(&mut log, &batches);
        log.roll().expect("roll so everything is cleanable");
        log.compact(now).expect("compact");

        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for (o, r) in &model {
            if let Some(k) = &r.key {
                latest.insert(k, *o);
            }
        }
        let expected: Vec<(i64, Rec)> = model
            .iter()
            .filter(|(o, r)| match &r.key {
                None => true,
                Some(k) => {
                    let expired = r.value.is_none() && now - batch_max_ts[*o as usize] > 2_000;
                    latest[&k[..]] == *o && !expired
                }
            })
            .cloned()
            .collect();
        prop_assert_eq!(contents_from(&log, log.log_start_offset()), expected.clone());
        prop_assert_eq!(log.log_end_offset(), model.len() as i64);
        log.close().expect("close");
        let log = PartitionLog::open(dir.path(), cfg).expect("reopen");
        prop_assert_eq!(contents_from(&log, log.log_start_offset()), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parse_batches_never_panics_on_garbage(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_batches(&Bytes::from(data));
    }

    #[test]
    fn open_survives_garbage_files(
        log_bytes in prop::collection::vec(any::<u8>(), 0..400),
        index in prop::collection::vec(any::<u8>(), 0..40),
        time_index in prop::collection::vec(any::<u8>(), 0..40),
        prefix_batches in batches(4),
        clean in any::<bool>(),
        lose_epoch_checkpoint in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        let model = fill(&mut log, &prefix_batches);
        drop(log);
        let base = dir.path().join("00000000000000000000");
        let mut data = std::fs::read(base.with_extension("log")).expect("read");
        data.extend_from_slice(&log_bytes);
        std::fs::write(base.with_extension("log"), &data).expect("write");
        std::fs::write(base.with_extension("index"), &index).expect("write");
        std::fs::write(base.with_extension("timeindex"), &time_index).expect("write");
        if clean {
            // A lying clean-shutdown marker must not make garbage readable either.
            std::fs::write(dir.path().join("clean-shutdown"), b"").expect("write");
        }
        if lose_epoch_checkpoint {
            // The epoch cache is then rebuilt by scanning the (garbage) headers.
            std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).expect("rm");
        }
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        let end = log.log_end_offset();
        prop_assert!(end >= model.len() as i64 || clean);
        if !clean {
            prop_assert_eq!(contents_from(&log, 0), model.clone());
        }
        let info = log.append(encode(&prefix_batches[0]), 0).expect("appendable");
        prop_assert_eq!(info.base_offset, end);
    }
}
