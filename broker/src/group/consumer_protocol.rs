//! The classic consumer protocol's subscription and assignment (`ConsumerProtocolSubscription`
//! / `ConsumerProtocolAssignment`, kafka-protocol's generated types), used to show KIP-848
//! members to admin tools that read them through DescribeGroups.
//!
//! On the wire each is an int16 version followed by the message in that version. Version 0
//! is written: every consumer reads it, and the later fields (owned partitions, generation,
//! rack) say nothing a KIP-848 member has to tell an admin tool.
use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

const VERSION: i16 = 0;

/// Subscription v0: the topics, null user data.
pub fn subscription(topics: &[String]) -> Bytes {
    let topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    encode(&ConsumerProtocolSubscription::default().with_topics(topics))
}

/// Assignment v0: (topic, partitions) pairs by topic name, null user data. Partitions of
/// topics not in `names` (deleted meanwhile) are left out.
pub fn assignment(partitions: &BTreeSet<(Uuid, i32)>, names: &BTreeMap<Uuid, String>) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, p) in partitions {
        if let Some(name) = names.get(id) {
            by_topic.entry(name).or_default().push(*p);
        }
    }
    let assigned = by_topic
        .into_iter()
        .map(|(topic, parts)| {
            TopicPartition::default()
                .with_topic(StrBytes::from_string(topic.to_string()).into())
                .with_partitions(parts)
        })
        .collect();
    encode(&ConsumerProtocolAssignment::default().with_assigned_partitions(assigned))
}

/// The version, then the message. Encoding fails only on a string longer than `i16::MAX`
/// bytes, which no topic name is; admin tools then see empty metadata.
fn encode(message: &impl Encodable) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VERSION);
    match message.encode(&mut b, VERSION) {
        Ok(()) => b.freeze(),
        Err(e) => {
            tracing::warn!("encoding consumer protocol metadata: {e}");
            Bytes::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::protocol::Decodable;

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

    /// What a consumer reading the version first, then that version's message, gets back.
    #[test]
    fn clients_decode_what_is_written() {
        let mut b = subscription(&["a".into(), "b".into()]);
        assert_eq!(b.get_i16(), 0);
        let s = ConsumerProtocolSubscription::decode(&mut b, 0).unwrap();
        assert_eq!(s.topics, vec![StrBytes::from("a"), StrBytes::from("b")]);
        assert_eq!(s.user_data, None);
        assert!(!b.has_remaining());

        let (t, gone) = (Uuid::new_v4(), Uuid::new_v4());
        let names = BTreeMap::from([(t, "x".to_string())]);
        let mut b = assignment(&BTreeSet::from([(t, 2), (gone, 0)]), &names);
        assert_eq!(b.get_i16(), 0);
        let a = ConsumerProtocolAssignment::decode(&mut b, 0).unwrap();
        assert_eq!(
            a.assigned_partitions.len(),
            1,
            "the deleted topic is left out"
        );
        assert_eq!(&*a.assigned_partitions[0].topic.0, "x");
        assert_eq!(a.assigned_partitions[0].partitions, vec![2]);
        assert!(!b.has_remaining());
    }
}
