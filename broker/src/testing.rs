//! Record batches as clients write them, shared by the unit and integration tests (which
//! cannot share a `#[cfg(test)]` module). Not used by the broker itself.
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Who writes a batch: producer id, epoch and first sequence (-1s for a plain client).
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub producer_id: i64,
    pub epoch: i16,
    pub sequence: i32,
    pub transactional: bool,
}

impl Writer {
    /// A client that is neither idempotent nor transactional.
    pub const PLAIN: Writer = Writer {
        producer_id: -1,
        epoch: -1,
        sequence: -1,
        transactional: false,
    };
}

/// One uncompressed v2 batch of (key, value) records; record `i` has timestamp
/// `timestamp + i` and, from an idempotent writer, sequence `writer.sequence + i`.
pub fn record_batch(writer: Writer, timestamp: i64, records: &[(Option<&[u8]>, &[u8])]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .zip(0i32..)
        .map(|((key, value), i)| Record {
            transactional: writer.transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id: writer.producer_id,
            producer_epoch: writer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: if writer.sequence < 0 {
                -1
            } else {
                writer.sequence + i
            },
            timestamp: timestamp + i64::from(i),
            key: key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // Encoding fixed, valid records into memory cannot fail.
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding a record batch");
    buf.freeze()
}
