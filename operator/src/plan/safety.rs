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

/// Partitions that restarting `broker` would take below `min.insync.replicas` (their ISR
/// minus this broker is smaller than the topic's minimum), or offline. Partitions whose
/// replication factor is not above the minimum are skipped, as no restart order could keep
/// them writable. `min_isr` maps topic → `min.insync.replicas`; `default_min_isr` covers the
/// rest.
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
            if !p.replicas.contains(&broker) || p.replicas.len() <= min {
                continue;
            }
            let isr_after = p.isr.iter().filter(|b| **b != broker).count();
            if isr_after < min || isr_after == 0 {
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
        // Broker 2 is not in the ISR: restarting it changes nothing.
        assert!(restart_blockers(&m, 2, &min, 1).is_empty());
    }

    #[test]
    fn restart_is_safe_with_full_isr() {
        let m = md(&[("orders", &[0, 1, 2], &[0, 1, 2])]);
        let min = BTreeMap::from([("orders".to_string(), 2)]);
        assert!(restart_blockers(&m, 1, &min, 1).is_empty());
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
