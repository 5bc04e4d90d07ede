//! Records of the `__transaction_state` topic, in Kafka's layout (`TransactionLogKey` v0 and
//! `TransactionLogValue` v0), so Kafka tooling that reads the topic understands Spate's too.
//!
//! Key: `int16 version (0), string transactional id`. Value: `int16 version (0), int64
//! producer id, int16 producer epoch, int32 timeout ms, int8 state, nullable array of
//! (string topic, array of int32 partition), int64 last update ms, int64 start ms`. A null
//! value is a tombstone (an expired transactional id).
use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed __transaction_state record: {0}")]
pub struct CodecError(String);

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn decode_key(mut b: &[u8]) -> Result<String, CodecError> {
    match get_i16(&mut b)? {
        0 => get_str(&mut b),
        v => Err(CodecError(format!("unknown key version {v}"))),
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

pub fn decode_value(transactional_id: &str, mut b: &[u8]) -> Result<TxnMetadata, CodecError> {
    let version = get_i16(&mut b)?;
    if !(0..=1).contains(&version) {
        return Err(CodecError(format!("unknown value version {version}")));
    }
    if version == 1 {
        // Flexible (KIP-915): the same fields with compact encodings; Spate writes v0 only.
        return Err(CodecError("value version 1 is not read".into()));
    }
    let producer_id = get_i64(&mut b)?;
    let producer_epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    need(b, 1)?;
    let state_id = b.get_i8();
    let state = TxnState::from_id(state_id)
        .ok_or_else(|| CodecError(format!("unknown transaction state {state_id}")))?;
    let mut partitions = BTreeSet::new();
    let topics = get_i32(&mut b)?;
    for _ in 0..topics.max(0) {
        let topic = get_str(&mut b)?;
        let n = get_i32(&mut b)?;
        for _ in 0..n.max(0) {
            partitions.insert((topic.clone(), get_i32(&mut b)?));
        }
    }
    let last_update_ms = get_i64(&mut b)?;
    let start_ms = get_i64(&mut b)?;
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

fn put_str(b: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&s.as_bytes()[..len as usize]);
}

fn need(b: &[u8], n: usize) -> Result<(), CodecError> {
    if b.len() < n {
        Err(CodecError(format!("needed {n} bytes, {} left", b.len())))
    } else {
        Ok(())
    }
}

fn get_i16(b: &mut &[u8]) -> Result<i16, CodecError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut &[u8]) -> Result<i32, CodecError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Result<i64, CodecError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_str(b: &mut &[u8]) -> Result<String, CodecError> {
    let len = get_i16(b)?;
    let len = usize::try_from(len).map_err(|_| CodecError("null string".into()))?;
    need(b, len)?;
    let s = String::from_utf8(b[..len].to_vec()).map_err(|e| CodecError(e.to_string()))?;
    b.advance(len);
    Ok(s)
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
