//! Records of the `__consumer_offsets` topic, in Kafka's own layout, so Kafka tooling that
//! reads the topic understands Spate's too.
//!
//! Offset commit: key v1 `(group, topic, partition)`, value v3
//! `(offset, leader epoch, metadata, commit timestamp)`. Group metadata: key v2 `(group)`,
//! value v3 with the generation, protocol and members. A null value is a tombstone.
use bytes::{Buf, BufMut, Bytes, BytesMut};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

impl OffsetValue {
    /// A commit as OffsetCommit and TxnOffsetCommit carry it (metadata null means empty).
    pub fn committed(offset: i64, leader_epoch: i32, metadata: Option<&str>, now: i64) -> Self {
        Self {
            offset,
            leader_epoch,
            metadata: metadata.unwrap_or_default().to_string(),
            commit_timestamp: now,
        }
    }
}

/// What survives a restart of a group: its generation and protocol. Members are not restored;
/// they rejoin, as after a coordinator move in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct CodecError(String);

pub fn encode_key(key: &Key) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        Key::Group { group } => {
            b.put_i16(GROUP_KEY_VERSION);
            put_str(&mut b, group);
        }
    }
    b.freeze()
}

pub fn decode_key(mut b: &[u8]) -> Result<Key, CodecError> {
    match get_i16(&mut b)? {
        0 | 1 => Ok(Key::Offset {
            group: get_str(&mut b)?,
            topic: get_str(&mut b)?,
            partition: get_i32(&mut b)?,
        }),
        2 => Ok(Key::Group {
            group: get_str(&mut b)?,
        }),
        v => Err(CodecError(format!("unknown key version {v}"))),
    }
}

pub fn encode_offset(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_VALUE_VERSION);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

pub fn decode_offset(mut b: &[u8]) -> Result<OffsetValue, CodecError> {
    let version = get_i16(&mut b)?;
    let offset = get_i64(&mut b)?;
    let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
    let metadata = get_str(&mut b)?;
    let commit_timestamp = get_i64(&mut b)?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

pub fn encode_group(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.state_timestamp);
    b.put_i32(0); // members: not persisted, see GroupValue
    b.freeze()
}

pub fn decode_group(mut b: &[u8]) -> Result<GroupValue, CodecError> {
    let version = get_i16(&mut b)?;
    let protocol_type = get_str(&mut b)?;
    let generation = get_i32(&mut b)?;
    let protocol = get_nullable_str(&mut b)?;
    let leader = get_nullable_str(&mut b)?;
    let state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
    })
}

/// Kafka places a group on `__consumer_offsets` partition `Utils.abs(group.hashCode()) % n`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: Math.abs, with MIN_VALUE mapped to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn need(b: &[u8], n: usize) -> Result<(), CodecError> {
    if b.len() < n {
        return Err(CodecError(format!("needed {n} bytes, {} left", b.len())));
    }
    Ok(())
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

fn get_nullable_str(b: &mut &[u8]) -> Result<Option<String>, CodecError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    need(b, len as usize)?;
    let s = String::from_utf8(b[..len as usize].to_vec()).map_err(|e| CodecError(e.to_string()))?;
    b.advance(len as usize);
    Ok(Some(s))
}

fn get_str(b: &mut &[u8]) -> Result<String, CodecError> {
    get_nullable_str(b)?.ok_or_else(|| CodecError("null string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            Key::Group {
                group: "grp".into(),
            },
        ] {
            assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        }
        let o = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        assert_eq!(decode_offset(&encode_offset(&o)).unwrap(), o);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            state_timestamp: 9,
        };
        assert_eq!(decode_group(&encode_group(&g)).unwrap(), g);
        assert!(decode_key(&[0, 1, 0]).is_err());
    }

    #[test]
    fn partitions_like_kafka() {
        // Java: "my-group".hashCode() == -1906497762; Utils.abs(..) % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }
}
