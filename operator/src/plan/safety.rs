//! Safety checks before the operator takes a broker away.

use std::collections::BTreeMap;

use crate::kafka::{ClusterMetadata, TopicPartition};

/// Topics whose replication factor exceeds `remaining` brokers: a scale-down to `remaining`
/// would leave them with nowhere to put their replicas. Returns `(topic, rf)`, sorted.
pub fn scale_down_blockers(md: &ClusterMetadata, remaining: usize) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = md
        .topics
        .iter()
        .filter_map(|t| {
            let rf = t.partitions.iter().map(|p| p.replicas.len()).max()?;
            (rf > remaining).then(|| (t.name.clone(), rf))
        })
        .collect();
    out.sort();
    out
}

/// Partitions that keep `broker` from being restarted now. `min_isr` maps topic →
/// `min.insync.replicas`; `default_min_isr` covers the rest.
///
/// A partition with a replica on `broker` blocks the restart when:
/// - it is under-replicated (ISR smaller than its replicas) and `broker` is in its ISR:
///   restarting would shrink an ISR that is already short, so the roll waits for the replica
///   that is behind, usually the broker restarted just before, to catch up; or
/// - its ISR without `broker` would be below `min.insync.replicas` (Strimzi's KafkaRoller
///   rule: ISR size, minus one if `broker` is in it, must stay at or above the minimum),
///   unless its replication factor is at most the minimum: then even a full ISR cannot spare
///   a replica, no order of restarts keeps it writable, and it would block every roll.
///
/// So a fully replicated partition never blocks (RF 1 and RF ≤ `min.insync.replicas`
/// partitions are briefly unavailable while their broker restarts), and a broker outside an
/// under-replicated partition's ISR may restart while the ISR still meets the minimum: that
/// takes nothing away, and may be what brings it back.
pub fn restart_blockers(
    md: &ClusterMetadata,
    broker: i32,
    min_isr: &BTreeMap<String, usize>,
    default_min_isr: usize,
) -> Vec<TopicPartition> {
    let mut out = Vec::new();
    for t in &md.topics {
        let min = min_isr.get(&t.name).copied().unwrap_or(default_min_isr);
        for p in &t.partitions {
            if !p.replicas.contains(&broker) {
                continue;
            }
            let in_isr = p.isr.contains(&broker);
            let under_replicated = p.replicas.iter().any(|r| !p.isr.contains(r));
            let isr_after = p.isr.iter().filter(|b| **b != broker).count();
            let below_min = p.replicas.len() > min && isr_after < min;
            if (under_replicated && in_isr) || below_min {
                out.push((t.name.clone(), p.partition));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{PartitionInfo, TopicInfo};

    fn md(parts: &[(&str, &[i32], &[i32])]) -> ClusterMetadata {
        let mut topics: Vec<TopicInfo> = Vec::new();
        for (i, (name, replicas, isr)) in parts.iter().enumerate() {
            let p = PartitionInfo {
                partition: i as i32,
                leader: isr.first().copied().unwrap_or(-1),
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
            };
            match topics.iter_mut().find(|t| t.name == *name) {
                Some(t) => t.partitions.push(p),
                None => topics.push(TopicInfo {
                    name: name.to_string(),
                    id: String::new(),
                    partitions: vec![p],
                }),
            }
        }
        ClusterMetadata {
            brokers: vec![],
            topics,
        }
    }

    #[test]
    fn scale_down_below_replication_factor_is_blocked() {
        let m = md(&[
            ("orders", &[0, 1, 2], &[0, 1, 2]),
            ("logs", &[0, 1], &[0, 1]),
        ]);
        assert_eq!(scale_down_blockers(&m, 2), vec![("orders".to_string(), 3)]);
        assert!(scale_down_blockers(&m, 3).is_empty());
    }

    #[test]
    fn restart_is_blocked_when_isr_would_drop_below_min() {
        // RF 3, min.insync 2: ISR {0,1} — restarting 0 leaves {1} < 2.
        let m = md(&[("orders", &[0, 1, 2], &[0, 1])]);
        let min = BTreeMap::from([("orders".to_string(), 2)]);
        assert_eq!(
            restart_blockers(&m, 0, &min, 1),
            vec![("orders".to_string(), 0)]
        );
        // Broker 2 is behind: restarting it leaves the ISR {0,1} as it is.
        assert!(restart_blockers(&m, 2, &min, 1).is_empty());
    }

    #[test]
    fn restart_is_safe_with_full_isr() {
        let m = md(&[("orders", &[0, 1, 2], &[0, 1, 2])]);
        let min = BTreeMap::from([("orders".to_string(), 2)]);
        assert!(restart_blockers(&m, 1, &min, 1).is_empty());
    }

    #[test]
    fn roll_waits_for_the_previous_broker_to_catch_up() {
        // Broker 0 was just restarted and is not back in the ISR. With min.insync 1 the ISR
        // {1,2} could spare broker 1, but that would leave one copy of the data in sync.
        let m = md(&[("orders", &[0, 1, 2], &[1, 2]), ("logs", &[1, 2], &[1, 2])]);
        assert_eq!(
            restart_blockers(&m, 1, &BTreeMap::new(), 1),
            vec![("orders".to_string(), 0)],
            "logs is fully replicated and does not block"
        );
        // Once broker 0 is back in sync, the roll goes on.
        let m = md(&[("orders", &[0, 1, 2], &[0, 1, 2])]);
        assert!(restart_blockers(&m, 1, &BTreeMap::new(), 1).is_empty());
    }

    #[test]
    fn roll_waits_even_where_replication_factor_does_not_exceed_min_isr() {
        // RF 2 = min.insync 2 never blocks when fully replicated (it cannot be kept writable),
        // but while broker 0 catches up, restarting broker 1 would take it offline.
        let min = BTreeMap::from([("orders".to_string(), 2)]);
        let catching_up = md(&[("orders", &[0, 1], &[1])]);
        assert_eq!(
            restart_blockers(&catching_up, 1, &min, 1),
            vec![("orders".to_string(), 0)]
        );
        let full = md(&[("orders", &[0, 1], &[0, 1])]);
        assert!(restart_blockers(&full, 1, &min, 1).is_empty());
    }

    #[test]
    fn partition_already_below_min_isr_blocks_its_lagging_replica_too() {
        // ISR {0} < min.insync 2 with RF 3: broker 2 is behind; restarting it now would only
        // delay the partition becoming writable again (Strimzi blocks this too).
        let m = md(&[("orders", &[0, 1, 2], &[0])]);
        let min = BTreeMap::from([("orders".to_string(), 2)]);
        assert_eq!(
            restart_blockers(&m, 2, &min, 1),
            vec![("orders".to_string(), 0)]
        );
    }

    #[test]
    fn partitions_elsewhere_do_not_block() {
        let m = md(&[("orders", &[1, 2], &[1])]);
        assert!(restart_blockers(&m, 0, &BTreeMap::new(), 1).is_empty());
    }

    #[test]
    fn restart_never_takes_the_last_in_sync_replica() {
        let m = md(&[("orders", &[0, 1], &[0])]);
        assert_eq!(
            restart_blockers(&m, 0, &BTreeMap::new(), 0),
            vec![("orders".to_string(), 0)]
        );
    }

    #[test]
    fn single_replica_partitions_do_not_block_rolling() {
        let m = md(&[("solo", &[0], &[0])]);
        assert!(restart_blockers(&m, 0, &BTreeMap::new(), 1).is_empty());
    }
}
