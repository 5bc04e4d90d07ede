//! Server-side partition assignors for the consumer rebalance protocol (KIP-848).
//!
//! `uniform` (the default, as in Kafka) spreads every subscribed partition evenly over the
//! members subscribed to its topic and keeps partitions where they are when that stays
//! balanced; `range` gives each member contiguous ranges per topic, like the client-side
//! range assignor.
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A topic partition by topic id, as the consumer protocol names them.
pub type TopicPartition = (Uuid, i32);

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

pub fn is_known(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// Inputs: each member's subscribed topic ids and current assignment; each topic's
/// partition count. Output: the target assignment of every member.
pub fn assign(
    assignor: &str,
    subscriptions: &BTreeMap<String, BTreeSet<Uuid>>,
    current: &BTreeMap<String, BTreeSet<TopicPartition>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (&topic, &count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, t)| t.contains(&topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        if assignor == RANGE {
            let (per, extra) = (
                count as usize / members.len(),
                count as usize % members.len(),
            );
            let mut next = 0;
            for (i, m) in members.iter().enumerate() {
                let n = per + usize::from(i < extra);
                for p in next..next + n {
                    out.entry((*m).clone())
                        .or_default()
                        .insert((topic, p as i32));
                }
                next += n;
            }
            continue;
        }
        // Uniform and sticky: quotas per member for this topic, previous owners kept first.
        let n = members.len();
        let (base, extra) = (count as usize / n, count as usize % n);
        let mut quota: BTreeMap<&String, usize> = BTreeMap::new();
        // Members already holding the most of this topic get the spare slots, to move less.
        let mut by_holding: Vec<&String> = members.clone();
        by_holding.sort_by_key(|m| {
            std::cmp::Reverse(
                current
                    .get(*m)
                    .map_or(0, |c| c.iter().filter(|(t, _)| *t == topic).count()),
            )
        });
        for (i, m) in by_holding.iter().enumerate() {
            quota.insert(m, base + usize::from(i < extra));
        }
        let mut unassigned = Vec::new();
        for p in 0..count {
            let tp = (topic, p);
            let owner = members
                .iter()
                .find(|m| current.get(**m).is_some_and(|c| c.contains(&tp)));
            match owner {
                Some(m) if quota[*m] > 0 => {
                    if let Some(q) = quota.get_mut(*m) {
                        *q -= 1;
                    }
                    out.entry((*m).clone()).or_default().insert(tp);
                }
                _ => unassigned.push(tp),
            }
        }
        for tp in unassigned {
            if let Some((m, q)) = quota
                .iter_mut()
                .filter(|(_, q)| **q > 0)
                .max_by_key(|(_, q)| **q)
            {
                *q -= 1;
                out.entry((*m).clone()).or_default().insert(tp);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[&str], topics: &[Uuid]) -> BTreeMap<String, BTreeSet<Uuid>> {
        members
            .iter()
            .map(|m| (m.to_string(), topics.iter().copied().collect()))
            .collect()
    }

    fn counts(a: &BTreeMap<String, BTreeSet<TopicPartition>>) -> Vec<usize> {
        a.values().map(|s| s.len()).collect()
    }

    #[test]
    fn uniform_spreads_evenly_and_moves_little() {
        let t = Uuid::new_v4();
        let parts = BTreeMap::from([(t, 4)]);
        let one = assign(UNIFORM, &subs(&["a"], &[t]), &BTreeMap::new(), &parts);
        assert_eq!(counts(&one), vec![4]);
        let two = assign(UNIFORM, &subs(&["a", "b"], &[t]), &one, &parts);
        assert_eq!(counts(&two), vec![2, 2]);
        // a kept two of its partitions, b got the other two.
        assert!(two["a"].is_subset(&one["a"]));
        let four = assign(UNIFORM, &subs(&["a", "b", "c", "d"], &[t]), &two, &parts);
        assert_eq!(counts(&four), vec![1, 1, 1, 1]);
        let five = assign(
            UNIFORM,
            &subs(&["a", "b", "c", "d", "e"], &[t]),
            &four,
            &parts,
        );
        assert_eq!(five.values().filter(|s| s.is_empty()).count(), 1);
        let all: BTreeSet<TopicPartition> = five.values().flatten().copied().collect();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn range_gives_contiguous_blocks() {
        let t = Uuid::new_v4();
        let a = assign(
            RANGE,
            &subs(&["a", "b"], &[t]),
            &BTreeMap::new(),
            &BTreeMap::from([(t, 5)]),
        );
        assert_eq!(a["a"], BTreeSet::from([(t, 0), (t, 1), (t, 2)]));
        assert_eq!(a["b"], BTreeSet::from([(t, 3), (t, 4)]));
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut s = subs(&["a"], &[t1]);
        s.insert("b".into(), BTreeSet::from([t2]));
        let a = assign(
            UNIFORM,
            &s,
            &BTreeMap::new(),
            &BTreeMap::from([(t1, 2), (t2, 3)]),
        );
        assert!(a["a"].iter().all(|(t, _)| *t == t1));
        assert_eq!(a["b"].len(), 3);
    }
}
