//! Replica placement for new partitions, done inside the state machine so that every node
//! computes the same assignment from the same state (no randomness: the rotation offset comes
//! from the cluster's partition count).
//!
//! The goal is Kafka's: spread each topic evenly, replicas and leaders, so that one topic's
//! load does not land on a few brokers. Cluster-wide load only decides who gets the remainder.
//!
//! 1. Order the brokers: least loaded first (replicas, then leaderships), ties rotated by
//!    `start`; then interleave racks (a1 b1 c1 a2 b2 c2 …) so consecutive brokers differ in
//!    rack.
//! 2. Deal replica slots round-robin along that order: partition `p` takes the next `rf`
//!    brokers. Round-robin dealing keeps every broker's replica count for the topic within one
//!    of the others. When racks are uneven, a broker whose rack the partition already uses is
//!    passed over for the next one that adds a rack (rack diversity first, as in Kafka).
//! 3. Of a partition's replicas, the one leading the fewest of this topic's partitions (then
//!    the fewest cluster-wide) goes first and becomes the preferred leader.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// A candidate broker: id and rack.
type Broker = (i32, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlacementError {
    #[error("Unable to replicate the partition {requested} time(s): The target replication factor of {requested} cannot be reached because only {available} broker(s) are registered.")]
    NotEnoughBrokers { requested: usize, available: usize },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

/// Per-broker load used to order brokers: (replicas, preferred leaderships).
pub type Load = BTreeMap<i32, (usize, usize)>;

/// Places `partitions` partitions of `rf` replicas on `brokers` (id, rack), given the `load`
/// the brokers already carry. Returns one replica list per partition, preferred leader first.
pub fn place(
    brokers: &[(i32, Option<String>)],
    load: &Load,
    partitions: usize,
    rf: usize,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            requested: rf,
            available: brokers.len(),
        });
    }
    let mut order = ordered(brokers, load, start);
    let n = order.len();
    let racks = order
        .iter()
        .filter_map(|(_, r)| r.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    let existing_leaders = |id: i32| load.get(&id).map_or(0, |l| l.1);
    let mut topic_leaders: BTreeMap<i32, usize> = BTreeMap::new();
    let mut cursor = 0;
    let mut out = Vec::with_capacity(partitions);
    for _ in 0..partitions {
        let mut chosen: Vec<i32> = Vec::with_capacity(rf);
        let mut racks_used: BTreeSet<String> = BTreeSet::new();
        while chosen.len() < rf {
            // The next broker along the order that is new to this partition and, while racks
            // are left unused, adds a rack. `rf <= n` guarantees one is new to the partition.
            let pick = (0..n)
                .map(|k| (cursor + k) % n)
                .filter(|&i| !chosen.contains(&order[i].0))
                .find(|&i| {
                    racks_used.len() >= racks
                        || order[i].1.as_ref().is_none_or(|r| !racks_used.contains(r))
                })
                .or_else(|| {
                    (0..n)
                        .map(|k| (cursor + k) % n)
                        .find(|&i| !chosen.contains(&order[i].0))
                });
            let Some(pick) = pick else { break };
            // Move the pick to the cursor so that the brokers passed over come next.
            let broker = order.remove(pick);
            let at = if pick < cursor { cursor - 1 } else { cursor };
            order.insert(at, broker.clone());
            cursor = (at + 1) % n;
            if let Some(rack) = broker.1 {
                racks_used.insert(rack);
            }
            chosen.push(broker.0);
        }
        if let Some(lead) = (0..chosen.len()).min_by_key(|&k| {
            let id = chosen[k];
            (
                topic_leaders.get(&id).copied().unwrap_or(0),
                existing_leaders(id),
                k,
            )
        }) {
            let leader = chosen.remove(lead);
            chosen.insert(0, leader);
            *topic_leaders.entry(leader).or_default() += 1;
        }
        out.push(chosen);
    }
    Ok(out)
}

/// Brokers least loaded first, ties rotated by `start`, racks interleaved.
fn ordered(
    brokers: &[(i32, Option<String>)],
    load: &Load,
    start: usize,
) -> Vec<(i32, Option<String>)> {
    let mut by_id = brokers.to_vec();
    by_id.sort_by_key(|(id, _)| *id);
    let n = by_id.len();
    let mut keyed: Vec<((usize, usize, usize), Broker)> = by_id
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let (replicas, leaders) = load.get(&b.0).copied().unwrap_or_default();
            ((replicas, leaders, (i + n - start % n) % n), b)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    let sorted: Vec<(i32, Option<String>)> = keyed.into_iter().map(|(_, b)| b).collect();

    // Interleave racks: racks in order of their least loaded broker, one broker from each in
    // turn. Brokers without a rack count as a rack of their own.
    let mut queues: Vec<(Option<String>, Vec<Broker>)> = Vec::new();
    for b in sorted {
        match queues
            .iter_mut()
            .find(|(rack, _)| rack.is_some() && *rack == b.1)
        {
            Some((_, q)) => q.push(b),
            None => queues.push((b.1.clone(), vec![b])),
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        for (_, q) in &queues {
            if let Some(b) = q.get(round) {
                out.push(b.clone());
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(n: i32) -> Vec<(i32, Option<String>)> {
        (1..=n).map(|id| (id, None)).collect()
    }

    fn counts(assignment: &[Vec<i32>]) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for r in assignment {
            for b in r {
                *replicas.entry(*b).or_default() += 1;
            }
            *leaders.entry(r[0]).or_default() += 1;
        }
        (replicas, leaders)
    }

    fn spread(counts: &BTreeMap<i32, usize>, n: i32) -> usize {
        let all: Vec<usize> = (1..=n)
            .map(|b| counts.get(&b).copied().unwrap_or(0))
            .collect();
        all.iter().max().copied().unwrap_or(0) - all.iter().min().copied().unwrap_or(0)
    }

    #[test]
    fn replicas_and_leaders_balanced_on_fresh_cluster() {
        for n in 1..=7 {
            for rf in 1..=n.min(4) {
                for partitions in [1usize, 2, 3, 5, 8, 12, 30] {
                    let a = place(&brokers(n), &Load::new(), partitions, rf as usize, 0).unwrap();
                    assert_eq!(a.len(), partitions);
                    for r in &a {
                        let distinct: BTreeSet<_> = r.iter().collect();
                        assert_eq!(distinct.len(), rf as usize, "duplicate replica in {r:?}");
                    }
                    let (replicas, leaders) = counts(&a);
                    assert!(
                        spread(&replicas, n) <= 1,
                        "n={n} rf={rf} p={partitions}: {replicas:?}"
                    );
                    assert!(
                        spread(&leaders, n) <= 1,
                        "n={n} rf={rf} p={partitions}: {leaders:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn not_enough_brokers_is_an_error() {
        assert_eq!(
            place(&brokers(2), &Load::new(), 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers {
                requested: 3,
                available: 2
            })
        );
        assert_eq!(
            place(&brokers(2), &Load::new(), 1, 0, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
    }

    #[test]
    fn placement_is_deterministic() {
        let a = place(&brokers(5), &Load::new(), 20, 3, 7).unwrap();
        let b = place(&brokers(5), &Load::new(), 20, 3, 7).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn start_offset_rotates_the_first_leader() {
        let a = place(&brokers(3), &Load::new(), 1, 1, 0).unwrap();
        let b = place(&brokers(3), &Load::new(), 1, 1, 1).unwrap();
        assert_ne!(a[0][0], b[0][0]);
    }

    #[test]
    fn least_loaded_broker_gets_the_remainder() {
        // Brokers 1-3 carry 10 replicas each; broker 4 just joined. A new topic is still
        // spread evenly, and the extra partition goes to the empty broker.
        let load: Load = [(1, (10, 3)), (2, (10, 3)), (3, (10, 4))]
            .into_iter()
            .collect();
        let a = place(&brokers(4), &load, 5, 1, 0).unwrap();
        let (replicas, _) = counts(&a);
        assert_eq!(replicas.get(&4), Some(&2), "{a:?}");
        assert!(spread(&replicas, 4) <= 1, "{replicas:?}");
    }

    #[test]
    fn uneven_racks_still_get_diverse_replicas() {
        let rack = |id: i32| {
            if id <= 3 {
                "a"
            } else if id == 4 {
                "b"
            } else {
                "c"
            }
        };
        let brokers: Vec<(i32, Option<String>)> =
            (1..=5).map(|id| (id, Some(rack(id).to_string()))).collect();
        let a = place(&brokers, &Load::new(), 10, 3, 0).unwrap();
        for r in &a {
            let racks: BTreeSet<_> = r.iter().map(|b| rack(*b)).collect();
            assert_eq!(racks.len(), 3, "replicas {r:?} share a rack");
        }
    }

    #[test]
    fn replicas_spread_across_racks() {
        let brokers: Vec<(i32, Option<String>)> = vec![
            (1, Some("a".into())),
            (2, Some("a".into())),
            (3, Some("b".into())),
            (4, Some("b".into())),
            (5, Some("c".into())),
            (6, Some("c".into())),
        ];
        let a = place(&brokers, &Load::new(), 12, 3, 0).unwrap();
        for r in &a {
            let racks: BTreeSet<_> = r.iter().map(|b| (b - 1) / 2).collect();
            assert_eq!(racks.len(), 3, "replicas {r:?} share a rack");
        }
        let (replicas, leaders) = counts(&a);
        assert!(spread(&replicas, 6) <= 1, "{replicas:?}");
        assert!(spread(&leaders, 6) <= 1, "{leaders:?}");
    }
}
