//! The classic consumer protocol's subscription and assignment encodings
//! (`ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` v0), used to show KIP-848
//! members to admin tools that read them through DescribeGroups.
use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

const VERSION: i16 = 0;

fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

/// Subscription v0: version, topics, null user data.
pub fn subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VERSION);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut b, t);
    }
    b.put_i32(-1);
    b.freeze()
}

/// Assignment v0: version, (topic, partitions) pairs, null user data.
pub fn assignment(partitions: &BTreeSet<(Uuid, i32)>, names: &BTreeMap<Uuid, String>) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, p) in partitions {
        if let Some(name) = names.get(id) {
            by_topic.entry(name).or_default().push(*p);
        }
    }
    let mut b = BytesMut::new();
    b.put_i16(VERSION);
    b.put_i32(by_topic.len() as i32);
    for (topic, parts) in by_topic {
        put_str(&mut b, topic);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_v0_layout() {
        assert_eq!(
            &subscription(&["ab".into()])[..],
            &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]
        );
        let t = Uuid::new_v4();
        let a = assignment(
            &BTreeSet::from([(t, 1), (t, 0)]),
            &BTreeMap::from([(t, "x".to_string())]),
        );
        assert_eq!(
            &a[..],
            &[
                0, 0, 0, 0, 0, 1, 0, 1, b'x', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff,
                0xff
            ]
        );
    }
}
