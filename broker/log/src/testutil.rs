//! Batch builders for unit tests: real v2 batches from `kafka-protocol`'s encoder.
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One record to encode: key, value, timestamp.
pub type Spec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Encodes `specs` as one batch with offsets from `base`.
pub fn encode(base: i64, specs: &[Spec<'_>], compression: Compression) -> Bytes {
    let records: Vec<Record> = specs
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: -1 + i as i32,
            timestamp: *ts,
            key: k.map(Bytes::copy_from_slice),
            value: v.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode test batch");
    buf.freeze()
}

/// `n` records keyed `k{i}` with timestamps `ts, ts+1, ...`, compressed with `c`.
pub fn batch_with(base: i64, n: usize, ts: i64, c: Compression) -> Bytes {
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    let vals: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("value-{base}-{i}").into_bytes())
        .collect();
    let specs: Vec<Spec<'_>> = (0..n)
        .map(|i| (Some(&keys[i][..]), Some(&vals[i][..]), ts + i as i64))
        .collect();
    encode(base, &specs, c)
}

pub fn batch(base: i64, n: usize, ts: i64) -> Bytes {
    batch_with(base, n, ts, Compression::None)
}
