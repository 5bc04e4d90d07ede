//! Record-level view of a batch, for the two places that must look inside one: timestamp
//! lookups and compaction. Records are kept as raw byte slices so compaction can re-emit
//! survivors bit for bit (duplicate header keys and all) under the original base offset.
//!
//! # Record format (v2, inside the possibly compressed payload)
//! `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint | headers`
use crate::batch::{self, BatchMeta, HEADER_SIZE, LOG_OVERHEAD};
use crate::{LogError, Result};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

/// One record of a decoded batch.
#[derive(Debug, Clone)]
pub struct RecordView {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    /// A null value marks a tombstone on compacted topics.
    pub value_is_null: bool,
    /// The whole record, length prefix included, as stored.
    pub raw: Bytes,
}

fn corrupt(what: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(what.to_string())
}

/// Decompresses a batch payload with the codec in its attributes.
pub fn decompress(codec: i16, mut data: Bytes) -> Result<Bytes> {
    let take = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    match codec {
        0 => Ok(data),
        1 => Gzip::decompress(&mut data, take).map_err(corrupt),
        2 => Snappy::decompress(&mut data, take).map_err(corrupt),
        3 => Lz4::decompress(&mut data, take).map_err(corrupt),
        4 => Zstd::decompress(&mut data, take).map_err(corrupt),
        c => Err(corrupt(format!("unknown compression codec {c}"))),
    }
}

/// Compresses raw record bytes with `codec`.
pub fn compress(codec: i16, raw: &[u8]) -> Result<Bytes> {
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| {
        b.extend_from_slice(raw);
        Ok(())
    };
    let res = match codec {
        0 => {
            out.extend_from_slice(raw);
            Ok(())
        }
        1 => Gzip::compress(&mut out, put),
        2 => Snappy::compress(&mut out, put),
        3 => Lz4::compress(&mut out, put),
        4 => Zstd::compress(&mut out, put),
        c => return Err(corrupt(format!("unknown compression codec {c}"))),
    };
    res.map_err(|e| LogError::Io(std::io::Error::other(e.to_string())))?;
    Ok(out.freeze())
}

fn varlong(buf: &mut Bytes) -> Result<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        if !buf.has_remaining() {
            return Err(corrupt("truncated varint"));
        }
        let b = buf.get_u8();
        raw |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            // Zigzag decoding.
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(corrupt("varint too long"))
}

fn varint(buf: &mut Bytes) -> Result<i32> {
    i32::try_from(varlong(buf)?).map_err(|_| corrupt("varint out of i32 range"))
}

/// A nullable length-prefixed field; `None` for length -1.
fn nullable(buf: &mut Bytes) -> Result<Option<Bytes>> {
    let len = varint(buf)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| corrupt("negative field length"))?;
    if buf.remaining() < len {
        return Err(corrupt("truncated record field"));
    }
    Ok(Some(buf.split_to(len)))
}

/// Parses `count` records from an uncompressed payload.
pub fn parse_records(mut data: Bytes, meta: &BatchMeta) -> Result<Vec<RecordView>> {
    let mut out = Vec::with_capacity(meta.record_count.clamp(0, 4096) as usize);
    for _ in 0..meta.record_count {
        let start = data.clone();
        let len = usize::try_from(varint(&mut data)?).map_err(|_| corrupt("negative length"))?;
        let prefix = start.len() - data.len();
        if data.remaining() < len {
            return Err(corrupt("truncated record"));
        }
        let raw = start.slice(..prefix + len);
        let mut rec = data.split_to(len);
        if !rec.has_remaining() {
            return Err(corrupt("empty record"));
        }
        rec.advance(1); // attributes, unused in v2
        let ts_delta = varlong(&mut rec)?;
        let offset_delta = varint(&mut rec)?;
        let key = nullable(&mut rec)?;
        let value = nullable(&mut rec)?;
        out.push(RecordView {
            offset: meta.base_offset + offset_delta as i64,
            timestamp: if meta.is_log_append_time() {
                meta.max_timestamp
            } else {
                meta.first_timestamp.wrapping_add(ts_delta)
            },
            key,
            value_is_null: value.is_none(),
            raw,
        });
    }
    Ok(out)
}

/// Parses one whole batch (CRC checked) and its records.
pub fn decode_batch(batch: &Bytes) -> Result<(BatchMeta, Vec<RecordView>)> {
    let meta = batch::parse_one(batch, 0)?;
    let payload = decompress(meta.compression(), batch.slice(HEADER_SIZE..meta.size))?;
    let records = parse_records(payload, &meta)?;
    Ok((meta, records))
}

/// Re-emits `original` (one whole batch) holding only `kept`, which must come from it.
/// Base offset, lastOffsetDelta, timestamps, producer fields and attributes are preserved, so
/// the kept records' offset and timestamp deltas stay valid and producer state is unchanged.
pub fn rebuild_batch(original: &[u8], meta: &BatchMeta, kept: &[RecordView]) -> Result<Bytes> {
    let mut raw = BytesMut::new();
    for r in kept {
        raw.extend_from_slice(&r.raw);
    }
    let payload = compress(meta.compression(), &raw)?;
    let mut out = BytesMut::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(&original[..HEADER_SIZE]);
    out.extend_from_slice(&payload);
    let length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| corrupt("batch too big"))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let count = i32::try_from(kept.len()).map_err(|_| corrupt("too many records"))?;
    out[57..61].copy_from_slice(&count.to_be_bytes());
    batch::update_crc(&mut out);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch_with, encode};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn decode_matches_kafka_protocol_decoder_for_every_codec() {
        for c in ALL {
            let b = encode(
                10,
                &[
                    (Some(b"a"), Some(b"1"), 5),
                    (None, Some(b"2"), 3),
                    (Some(b"c"), None, 9),
                ],
                c,
            );
            let (_, ours) = decode_batch(&b).expect("decodes");
            let theirs = RecordBatchDecoder::decode(&mut b.clone())
                .expect("decodes")
                .records;
            assert_eq!(ours.len(), theirs.len());
            for (o, t) in ours.iter().zip(&theirs) {
                assert_eq!(o.offset, t.offset);
                assert_eq!(o.timestamp, t.timestamp);
                assert_eq!(o.key, t.key);
                assert_eq!(o.value_is_null, t.value.is_none());
            }
        }
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_and_codec() {
        for c in ALL {
            let b = batch_with(100, 6, 1000, c);
            let (meta, recs) = decode_batch(&b).expect("decodes");
            let kept: Vec<_> = recs.into_iter().filter(|r| r.offset % 2 == 1).collect();
            let rebuilt = rebuild_batch(&b, &meta, &kept).expect("rebuilds");
            let m2 = batch::parse_one(&rebuilt, 0).expect("valid crc");
            assert_eq!(m2.base_offset, 100);
            assert_eq!(m2.last_offset(), 105);
            assert_eq!(m2.record_count, 3);
            assert_eq!(m2.compression(), meta.compression());
            let theirs = RecordBatchDecoder::decode(&mut rebuilt.clone()).expect("decodes");
            let offsets: Vec<i64> = theirs.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![101, 103, 105]);
            assert_eq!(theirs.records[1].timestamp, 1003);
        }
    }

    #[test]
    fn garbage_payload_is_an_error() {
        let b = batch_with(0, 3, 0, Compression::None);
        let meta = batch::parse_one(&b, 0).expect("valid");
        for cut in HEADER_SIZE..b.len() {
            let _ = parse_records(b.slice(HEADER_SIZE..cut), &meta);
        }
        assert!(parse_records(Bytes::from_static(&[0xff; 20]), &meta).is_err());
        assert!(decompress(1, Bytes::from_static(b"not gzip")).is_err());
        assert!(decompress(9, Bytes::new()).is_err());
    }
}
