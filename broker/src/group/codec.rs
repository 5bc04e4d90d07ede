//! Records of the `__consumer_offsets` topic, in Kafka's own layout, so Kafka tooling that
//! reads the topic understands Spate's too.
//!
//! Offset commit: key v1 `(group, topic, partition)`, value v3
//! `(offset, leader epoch, metadata, commit timestamp)`. Group metadata: key v2 `(group)`,
//! value v3 (`GroupMetadataValue`) with the generation, protocol, leader and members, each
//! with its subscription to the chosen protocol and its assignment; v0-v2 values written by
//! older Kafka brokers decode too. A null value is a tombstone.
use bytes::{BufMut, Bytes, BytesMut};

use crate::coordinator::fields::{put_bytes, put_nullable_str, put_str, FieldError, Reader};

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

/// What survives a restart or a coordinator move of a classic group: its generation,
/// protocol and members, so members keep heartbeating with their ids and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// One member as `GroupMetadataValue.MemberMetadata` stores it. Timeouts are milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    /// v3+.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// v1+; a v0 value's is its session timeout, as in Kafka.
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("malformed __consumer_offsets record: {0}")]
    Field(#[from] FieldError),
    #[error("malformed __consumer_offsets record: unknown key version {0}")]
    KeyVersion(i16),
    #[error("malformed __consumer_offsets record: unsupported group value version {0}")]
    GroupValueVersion(i16),
}

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

pub fn decode_key(b: &[u8]) -> Result<Key, CodecError> {
    let mut r = Reader::new(b);
    match r.i16()? {
        0 | 1 => Ok(Key::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Ok(Key::Group { group: r.string()? }),
        v => Err(CodecError::KeyVersion(v)),
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

pub fn decode_offset(b: &[u8]) -> Result<OffsetValue, CodecError> {
    let mut r = Reader::new(b);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
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
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Decodes versions 0-3 (version 4, flexible, is not written by any Kafka coordinator).
pub fn decode_group(b: &[u8]) -> Result<GroupValue, CodecError> {
    let mut r = Reader::new(b);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::GroupValueVersion(version));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let mut members = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
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
            members: vec![],
        };
        assert_eq!(decode_group(&encode_group(&g)).unwrap(), g);
        assert!(decode_key(&[0, 1, 0]).is_err());
    }

    fn member(id: &str, instance: Option<&str>) -> MemberValue {
        MemberValue {
            member_id: id.into(),
            instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(b"\x00\x01sub"),
            assignment: Bytes::from_static(b"\x00\x01assign"),
        }
    }

    #[test]
    fn group_members_round_trip() {
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1_700_000_000_000,
            members: vec![member("m1", None), member("m2", Some("instance-2"))],
        };
        assert_eq!(decode_group(&encode_group(&g)).unwrap(), g);
    }

    /// Spate wrote group values with an empty member array before members were persisted.
    #[test]
    fn group_value_written_without_members_still_decodes() {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, "consumer");
        b.put_i32(4);
        put_nullable_str(&mut b, Some("range"));
        put_nullable_str(&mut b, Some("m1"));
        b.put_i64(123);
        b.put_i32(0);
        let g = decode_group(&b).unwrap();
        assert_eq!((g.generation, g.state_timestamp), (4, 123));
        assert_eq!(g.protocol.as_deref(), Some("range"));
        assert!(g.members.is_empty());
    }

    /// A value laid out byte by byte as Kafka's GroupMetadataValue v3 (and v1, which has no
    /// state timestamp nor instance id).
    #[test]
    fn decodes_kafka_group_values() {
        let kafka_v3: &[u8] = &[
            0, 3, // version
            0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', // protocol type
            0, 0, 0, 2, // generation
            0, 5, b'r', b'a', b'n', b'g', b'e', // protocol
            0, 2, b'm', b'1', // leader
            0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // current state timestamp
            0, 0, 0, 1, // one member
            0, 2, b'm', b'1', // member id
            0, 2, b'i', b'1', // group instance id
            0, 1, b'c', // client id
            0, 2, b'/', b'h', // client host
            0, 0, 0x75, 0x30, // rebalance timeout 30000
            0, 0, 0x27, 0x10, // session timeout 10000
            0, 0, 0, 2, 0xaa, 0xbb, // subscription
            0, 0, 0, 1, 0xcc, // assignment
        ];
        let g = decode_group(kafka_v3).unwrap();
        assert_eq!(
            g,
            GroupValue {
                protocol_type: "consumer".into(),
                generation: 2,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp: 1_700_000_000_000,
                members: vec![MemberValue {
                    member_id: "m1".into(),
                    instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout_ms: 30_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(&[0xaa, 0xbb]),
                    assignment: Bytes::from_static(&[0xcc]),
                }],
            }
        );
        // Spate writes exactly Kafka's bytes.
        assert_eq!(&encode_group(&g)[..], kafka_v3);

        let kafka_v1: &[u8] = &[
            0, 1, 0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', 0, 0, 0, 2, 0xff, 0xff,
            0xff, 0xff, // null protocol and leader
            0, 0, 0, 1, 0, 2, b'm', b'1', 0, 1, b'c', 0, 2, b'/', b'h', 0, 0, 0x75, 0x30, 0, 0,
            0x27, 0x10, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let g = decode_group(kafka_v1).unwrap();
        assert_eq!((g.protocol, g.leader, g.state_timestamp), (None, None, -1));
        assert_eq!(g.members[0].instance_id, None);
        assert_eq!(g.members[0].rebalance_timeout_ms, 30_000);
        // Truncated member data is an error, not a short member list.
        assert!(decode_group(&kafka_v3[..kafka_v3.len() - 1]).is_err());
    }
}
