//! Record batch (magic v2) header parsing on raw bytes.
//!
//! # Format (big-endian)
//! ```text
//! 0  baseOffset i64            | 8  batchLength i32 (bytes after this field)
//! 12 partitionLeaderEpoch i32  | 16 magic i8 (= 2)       | 17 crc u32 (CRC-32C of 21..end)
//! 21 attributes i16            | 23 lastOffsetDelta i32  | 27 firstTimestamp i64
//! 35 maxTimestamp i64          | 43 producerId i64       | 51 producerEpoch i16
//! 53 baseSequence i32          | 57 recordsCount i32     | 61 records...
//! ```
use crate::{LogError, Result};
use bytes::Bytes;

/// Bytes before `batchLength`'s payload: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, records excluded.
pub const HEADER_SIZE: usize = 61;
/// Smallest legal `batchLength`: the header after the 12-byte prefix.
pub const MIN_BATCH_LENGTH: usize = HEADER_SIZE - LOG_OVERHEAD;

const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const FIRST_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bit: timestamps are LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;

/// What the broker needs to know about one batch, read from its 61-byte header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMeta {
    /// Offset of this batch in the byte buffer it was parsed from.
    pub position: usize,
    /// Total size of the batch in bytes (12-byte prefix + batchLength).
    pub size: usize,
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchMeta {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            self.base_sequence
        } else {
            // Sequences wrap at i32::MAX, as in Kafka.
            ((self.base_sequence as i64 + self.last_offset_delta as i64) % (i32::MAX as i64 + 1))
                as i32
        }
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Total batch size (prefix included) announced by the first 12 bytes of `prefix`.
/// Fails when the length is below the v2 header size (garbage, or a zero-filled tail).
pub fn batch_size(prefix: &[u8]) -> Result<usize> {
    if prefix.len() < LOG_OVERHEAD {
        return Err(LogError::Corrupt(format!(
            "{} bytes cannot hold a batch prefix",
            prefix.len()
        )));
    }
    let len = i32_at(prefix, LENGTH);
    if len < MIN_BATCH_LENGTH as i32 {
        return Err(LogError::Corrupt(format!(
            "batch length {len} is too small"
        )));
    }
    Ok(LOG_OVERHEAD + len as usize)
}

/// Reads the header of the batch starting at `buf[0]`, without checking the CRC. `buf` must
/// hold at least the header; `position` is recorded in the result as is.
pub fn parse_header(buf: &[u8], position: usize) -> Result<BatchMeta> {
    if buf.len() < HEADER_SIZE {
        return Err(LogError::Corrupt(format!(
            "{} bytes cannot hold a batch header",
            buf.len()
        )));
    }
    let size = batch_size(buf)?;
    let magic = buf[MAGIC] as i8;
    if magic != 2 {
        return Err(LogError::InvalidRecord(format!(
            "unsupported magic {magic}; only v2 batches are accepted"
        )));
    }
    let meta = BatchMeta {
        position,
        size,
        base_offset: i64_at(buf, BASE_OFFSET),
        last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA),
        partition_leader_epoch: i32_at(buf, LEADER_EPOCH),
        attributes: i16_at(buf, ATTRIBUTES),
        first_timestamp: i64_at(buf, FIRST_TIMESTAMP),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP),
        producer_id: i64_at(buf, PRODUCER_ID),
        producer_epoch: i16_at(buf, PRODUCER_EPOCH),
        base_sequence: i32_at(buf, BASE_SEQUENCE),
        record_count: i32_at(buf, RECORDS_COUNT),
    };
    if meta.last_offset_delta < 0 || meta.record_count < 0 {
        return Err(LogError::Corrupt(format!(
            "negative lastOffsetDelta {} or recordsCount {}",
            meta.last_offset_delta, meta.record_count
        )));
    }
    if meta
        .base_offset
        .checked_add(meta.last_offset_delta as i64 + 1)
        .is_none()
    {
        return Err(LogError::Corrupt("batch offsets overflow i64".into()));
    }
    Ok(meta)
}

/// CRC-32C of the batch as stored in its header vs. computed over attributes..end.
/// `batch` must be exactly one whole batch.
pub fn crc_matches(batch: &[u8]) -> bool {
    batch.len() >= HEADER_SIZE && crc32c::crc32c(&batch[ATTRIBUTES..]) == i32_at(batch, CRC) as u32
}

/// Parses one whole batch at the start of `buf` (header + CRC); returns its metadata.
pub fn parse_one(buf: &[u8], position: usize) -> Result<BatchMeta> {
    let size = batch_size(buf)?;
    if size > buf.len() {
        return Err(LogError::Corrupt(format!(
            "batch of {size} bytes truncated at {} bytes",
            buf.len()
        )));
    }
    let meta = parse_header(&buf[..size], position)?;
    if !crc_matches(&buf[..size]) {
        return Err(LogError::Corrupt(format!(
            "CRC mismatch in batch at offset {}",
            meta.base_offset
        )));
    }
    Ok(meta)
}

/// Parses and validates every batch in `buf` (magic 2, sane lengths, CRC-32C), in order.
/// A buffer holding anything else — a truncated batch, trailing garbage, an empty buffer —
/// is an error.
pub fn parse_batches(buf: &Bytes) -> Result<Vec<BatchMeta>> {
    if buf.is_empty() {
        return Err(LogError::Corrupt("no record batches".into()));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let meta = parse_one(&buf[pos..], pos)?;
        pos += meta.size;
        out.push(meta);
    }
    Ok(out)
}

/// Parses batches fetched from another broker: like `parse_batches`, except that a trailing
/// batch cut short (a Kafka leader may end a fetch response with one) is left out instead of
/// being an error, and an empty buffer gives no batches. Whole batches are checked as fully
/// as by `parse_batches`.
pub fn parse_fetched_batches(buf: &[u8]) -> Result<Vec<BatchMeta>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= LOG_OVERHEAD {
        let rest = &buf[pos..];
        if batch_size(rest)? > rest.len() {
            break;
        }
        let meta = parse_one(rest, pos)?;
        pos += meta.size;
        out.push(meta);
    }
    Ok(out)
}

/// Rewrites the base offset of the batch at `batch[0]` (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at `batch[0]` (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch (exactly one whole batch) as LogAppendTime with `now_ms` as its max
/// timestamp, and recomputes the CRC since both fields are covered by it.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16_at(batch, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    update_crc(batch);
}

/// Recomputes the CRC of one whole batch after its covered fields changed.
pub fn update_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, batch_with};
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    #[test]
    fn parses_two_batches_in_order() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&batch(0, 3, 100));
        buf.extend_from_slice(&batch(3, 2, 200));
        let metas = parse_batches(&buf.freeze()).expect("valid");
        assert_eq!(metas.len(), 2);
        assert_eq!((metas[0].base_offset, metas[0].last_offset()), (0, 2));
        assert_eq!(metas[0].record_count, 3);
        assert_eq!(metas[1].position, metas[0].size);
        assert_eq!(metas[1].max_timestamp, 201);
        assert_eq!(metas[1].first_timestamp, 200);
        assert_eq!(metas[1].base_sequence, -1);
    }

    #[test]
    fn every_compression_parses_and_reports_its_codec() {
        for (i, c) in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .enumerate()
        {
            let b = batch_with(0, 5, 0, c);
            let metas = parse_batches(&b).expect("valid");
            assert_eq!(metas[0].compression(), i as i16);
        }
    }

    #[test]
    fn empty_buffer_is_corrupt() {
        assert!(matches!(
            parse_batches(&Bytes::new()),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn flipped_payload_bit_fails_crc() {
        let mut b = BytesMut::from(&batch(0, 2, 0)[..]);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            parse_batches(&b.freeze()),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn fetched_batches_tolerate_only_a_cut_tail() {
        let mut two = BytesMut::from(&batch(0, 3, 0)[..]);
        let first = two.len();
        two.extend_from_slice(&batch(3, 2, 0));
        let two = two.freeze();
        assert_eq!(parse_fetched_batches(&two).expect("whole").len(), 2);
        assert!(parse_fetched_batches(&[]).expect("empty").is_empty());
        for cut in 0..two.len() {
            let metas = parse_fetched_batches(&two[..cut]).expect("cut tail is dropped");
            assert_eq!(metas.len(), usize::from(cut >= first), "cut at {cut}");
        }
        let mut bad = BytesMut::from(&two[..]);
        bad[first - 1] ^= 1;
        assert!(matches!(
            parse_fetched_batches(&bad),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn truncation_anywhere_is_an_error_not_a_panic() {
        let b = batch(0, 3, 0);
        for cut in 1..b.len() {
            assert!(parse_batches(&b.slice(..cut)).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_garbage_is_corrupt() {
        let mut b = BytesMut::from(&batch(0, 1, 0)[..]);
        b.extend_from_slice(&[0xff; 7]);
        assert!(parse_batches(&b.freeze()).is_err());
    }

    #[test]
    fn small_or_negative_length_is_corrupt() {
        let mut b = BytesMut::from(&batch(0, 1, 0)[..]);
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            parse_batches(&b.clone().freeze()),
            Err(LogError::Corrupt(_))
        ));
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            parse_batches(&b.freeze()),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn magic_other_than_two_is_invalid_record() {
        let mut b = BytesMut::from(&batch(0, 1, 0)[..]);
        b[MAGIC] = 1;
        assert!(matches!(
            parse_batches(&b.freeze()),
            Err(LogError::InvalidRecord(_))
        ));
    }

    #[test]
    fn base_offset_and_epoch_rewrite_keep_crc_valid() {
        let mut b = BytesMut::from(&batch(0, 2, 0)[..]);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let metas = parse_batches(&b.clone().freeze()).expect("crc still valid");
        assert_eq!(metas[0].base_offset, 42);
        assert_eq!(metas[0].partition_leader_epoch, 7);
        let decoded = RecordBatchDecoder::decode(&mut b.freeze()).expect("decodes");
        assert_eq!(decoded.records[1].offset, 43);
    }

    #[test]
    fn log_append_time_sets_bit_and_max_timestamp_with_valid_crc() {
        let mut b = BytesMut::from(&batch(0, 2, 5)[..]);
        set_log_append_time(&mut b, 999);
        let metas = parse_batches(&b.clone().freeze()).expect("crc recomputed");
        assert!(metas[0].is_log_append_time());
        assert_eq!(metas[0].max_timestamp, 999);
        let decoded = RecordBatchDecoder::decode(&mut b.freeze()).expect("decodes");
        assert_eq!(
            decoded.records[0].timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }
}
