//! Records of the `__transaction_state` topic, in Kafka's layout (`TransactionLogKey` v0 and
//! `TransactionLogValue` v0), so Kafka tooling that reads the topic understands Spate's too.
//!
//! Key: `int16 version (0), string transactional id`. Value: `int16 version (0), int64
//! producer id, int16 producer epoch, int32 timeout ms, int8 state, nullable array of
//! (string topic, array of int32 partition), int64 last update ms, int64 start ms`. A null
//! value is a tombstone (an expired transactional id).
use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};
use crate::coordinator::fields::{put_str, FieldError, Reader};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("malformed __transaction_state record: {0}")]
    Field(#[from] FieldError),
    #[error("malformed __transaction_state record: unknown key version {0}")]
    KeyVersion(i16),
    #[error("malformed __transaction_state record: unknown value version {0}")]
    ValueVersion(i16),
    /// Flexible (KIP-915): the same fields with compact encodings; Spate writes v0 only.
    #[error("malformed __transaction_state record: value version 1 is not read")]
    FlexibleValue,
    #[error("malformed __transaction_state record: unknown transaction state {0}")]
    State(i8),
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn decode_key(b: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(b);
    match r.i16()? {
        0 => Ok(r.string()?),
        v => Err(CodecError::KeyVersion(v)),
    }
}

pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.id());
    // Kafka writes the partitions only while they matter (not for Empty / Complete*).
    if m.partitions.is_empty() {
        b.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &m.partitions {
            match topics.last_mut() {
                Some((last, ps)) if *last == t.as_str() => ps.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        b.put_i32(topics.len() as i32);
        for (t, ps) in topics {
            put_str(&mut b, t);
            b.put_i32(ps.len() as i32);
            for p in ps {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

pub fn decode_value(transactional_id: &str, b: &[u8]) -> Result<TxnMetadata, CodecError> {
    let mut r = Reader::new(b);
    match r.i16()? {
        0 => {}
        1 => return Err(CodecError::FlexibleValue),
        v => return Err(CodecError::ValueVersion(v)),
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state_id = r.i8()?;
    let state = TxnState::from_id(state_id).ok_or(CodecError::State(state_id))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let n = r.i32()?;
        for _ in 0..n.max(0) {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        assert_eq!(decode_key(&encode_key("tx-1")).unwrap(), "tx-1");
        assert_eq!(&encode_key("ab")[..], &[0, 0, 0, 2, b'a', b'b']);
        let m = TxnMetadata {
            transactional_id: "tx-1".into(),
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 100,
            last_update_ms: 200,
        };
        let v = encode_value(&m);
        assert_eq!(decode_value("tx-1", &v).unwrap(), m);
        let empty = TxnMetadata {
            state: TxnState::CompleteCommit,
            partitions: BTreeSet::new(),
            ..m
        };
        assert_eq!(decode_value("tx-1", &encode_value(&empty)).unwrap(), empty);
        assert!(decode_value("tx-1", &v[..v.len() - 1]).is_err());
    }
}
