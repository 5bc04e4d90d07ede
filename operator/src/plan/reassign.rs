//! Reassignment planning: where replicas go when brokers join or drain.
//!
//! Three steps, each moving as little as it can:
//! 1. **Evacuate**: every replica on a broker outside `targets` (draining or gone) is replaced,
//!    in place, by the target broker with the fewest replicas that the partition lacks.
//! 2. **Balance replicas**: while the busiest broker has two or more replicas more than the
//!    idlest, move one replica of a partition the idlest lacks. Such a partition always exists
//!    (the busiest hosts more partitions than the idlest), and each move shrinks the sum of
//!    squared counts, so this ends with every count within one of the others.
//! 3. **Balance leaders**: swap preferred-leader positions inside a partition (no data moves)
//!    while that narrows the spread of preferred leaders.
//!
//! Replication factors never change. Rack awareness is not considered yet.

use std::collections::{BTreeMap, BTreeSet};

use super::Assignment;

/// Why no plan exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A topic has more replicas per partition than there are target brokers.
    #[error("topic {topic} has replication factor {rf} but only {brokers} brokers would remain")]
    NotEnoughBrokers {
        /// Topic.
        topic: String,
        /// Its replication factor.
        rf: usize,
        /// Target brokers.
        brokers: usize,
    },
    /// No broker to place replicas on.
    #[error("no target brokers")]
    NoBrokers,
}

fn counts(assignment: &Assignment, targets: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
    let mut c: BTreeMap<i32, usize> = targets.iter().map(|b| (*b, 0)).collect();
    for replicas in assignment.values() {
        for b in replicas {
            if let Some(n) = c.get_mut(b) {
                *n += 1;
            }
        }
    }
    c
}

fn leader_counts(assignment: &Assignment, targets: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
    let mut c: BTreeMap<i32, usize> = targets.iter().map(|b| (*b, 0)).collect();
    for replicas in assignment.values() {
        if let Some(n) = replicas.first().and_then(|b| c.get_mut(b)) {
            *n += 1;
        }
    }
    c
}

/// `(busiest, idlest)` broker by count; ties go to the lowest id.
fn extremes(c: &BTreeMap<i32, usize>) -> Option<((i32, usize), (i32, usize))> {
    let max = c.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    let min = c.iter().min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))?;
    Some(((*max.0, *max.1), (*min.0, *min.1)))
}

/// The target assignment for every partition, given the brokers that should hold replicas.
/// Partitions that keep their replica list are included unchanged; use [`changed`] for the
/// moves to send.
pub fn balanced_assignment(
    current: &Assignment,
    targets: &BTreeSet<i32>,
) -> Result<Assignment, PlanError> {
    if targets.is_empty() && !current.is_empty() {
        return Err(PlanError::NoBrokers);
    }
    for ((topic, _), replicas) in current {
        if replicas.len() > targets.len() {
            return Err(PlanError::NotEnoughBrokers {
                topic: topic.clone(),
                rf: replicas.len(),
                brokers: targets.len(),
            });
        }
    }
    let mut next = current.clone();
    let mut count = counts(&next, targets);

    // 1. Evacuate replicas from brokers outside the target set.
    for replicas in next.values_mut() {
        for i in 0..replicas.len() {
            if targets.contains(&replicas[i]) {
                continue;
            }
            let pick = count
                .iter()
                .filter(|(b, _)| !replicas.contains(b))
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(b, _)| *b);
            if let Some(b) = pick {
                replicas[i] = b;
                if let Some(n) = count.get_mut(&b) {
                    *n += 1;
                }
            }
        }
    }

    // 2. Balance replica counts.
    while let Some(((hi, hi_n), (lo, lo_n))) = extremes(&count) {
        if hi_n <= lo_n + 1 {
            break;
        }
        let Some(replicas) = next
            .values_mut()
            .find(|r| r.contains(&hi) && !r.contains(&lo))
        else {
            break;
        };
        if let Some(slot) = replicas.iter_mut().find(|b| **b == hi) {
            *slot = lo;
        }
        if let Some(n) = count.get_mut(&hi) {
            *n -= 1;
        }
        if let Some(n) = count.get_mut(&lo) {
            *n += 1;
        }
    }

    // 3. Balance preferred leaders by swapping positions within partitions.
    let mut leaders = leader_counts(&next, targets);
    let limit = next.len() * 2 + 1;
    for _ in 0..limit {
        let Some(((hi, hi_n), (lo, lo_n))) = extremes(&leaders) else {
            break;
        };
        if hi_n <= lo_n + 1 {
            break;
        }
        let Some(replicas) = next
            .values_mut()
            .find(|r| r.first() == Some(&hi) && r.contains(&lo))
        else {
            break;
        };
        if let Some(pos) = replicas.iter().position(|b| *b == lo) {
            replicas.swap(0, pos);
        }
        if let Some(n) = leaders.get_mut(&hi) {
            *n -= 1;
        }
        if let Some(n) = leaders.get_mut(&lo) {
            *n += 1;
        }
    }
    Ok(next)
}

/// The partitions whose replica list differs between `current` and `target`.
pub fn changed(current: &Assignment, target: &Assignment) -> Assignment {
    target
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The moves that bring `current` to a balanced layout over `targets` (brokers outside
/// `targets` end with no replicas).
pub fn plan_reassignment(
    current: &Assignment,
    targets: &BTreeSet<i32>,
) -> Result<Assignment, PlanError> {
    Ok(changed(current, &balanced_assignment(current, targets)?))
}

/// Replicas hosted per broker.
pub fn replica_counts(assignment: &Assignment) -> BTreeMap<i32, usize> {
    let mut c = BTreeMap::new();
    for replicas in assignment.values() {
        for b in replicas {
            *c.entry(*b).or_insert(0) += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    fn layout(parts: &[&[i32]]) -> Assignment {
        parts
            .iter()
            .enumerate()
            .map(|(i, r)| (("t".to_string(), i as i32), r.to_vec()))
            .collect()
    }

    fn spread(c: &BTreeMap<i32, usize>) -> usize {
        let max = c.values().max().copied().unwrap_or(0);
        let min = c.values().min().copied().unwrap_or(0);
        max - min
    }

    #[test]
    fn balanced_cluster_needs_no_moves() {
        let a = layout(&[&[0, 1], &[1, 2], &[2, 0]]);
        assert!(plan_reassignment(&a, &set(&[0, 1, 2]))
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn new_broker_receives_its_share() {
        // 4 partitions × RF 2 on brokers 0,1: broker 2 joins and should get 2 or 3 replicas.
        let a = layout(&[&[0, 1], &[1, 0], &[0, 1], &[1, 0]]);
        let next = balanced_assignment(&a, &set(&[0, 1, 2])).expect("plan");
        let c = counts(&next, &set(&[0, 1, 2]));
        assert!(spread(&c) <= 1, "{c:?}");
        assert!(c[&2] >= 2);
        let moves = changed(&a, &next);
        assert!(
            moves.len() <= 3,
            "only the needed partitions move: {moves:?}"
        );
    }

    #[test]
    fn draining_broker_ends_empty() {
        let a = layout(&[&[0, 1, 2], &[1, 2, 3], &[2, 3, 0], &[3, 0, 1]]);
        let next = balanced_assignment(&a, &set(&[0, 1, 2])).expect("plan");
        assert!(next.values().all(|r| !r.contains(&3)));
        assert!(next.values().all(|r| r.len() == 3));
    }

    #[test]
    fn draining_below_replication_factor_is_refused() {
        let a = layout(&[&[0, 1, 2]]);
        let err = plan_reassignment(&a, &set(&[0, 1])).expect_err("rf 3 on 2 brokers");
        assert_eq!(
            err,
            PlanError::NotEnoughBrokers {
                topic: "t".into(),
                rf: 3,
                brokers: 2
            }
        );
    }

    #[test]
    fn preferred_leaders_are_spread() {
        // Every partition prefers broker 0.
        let a = layout(&[
            &[0, 1, 2],
            &[0, 2, 1],
            &[0, 1, 2],
            &[0, 2, 1],
            &[0, 1, 2],
            &[0, 2, 1],
        ]);
        let next = balanced_assignment(&a, &set(&[0, 1, 2])).expect("plan");
        let l = leader_counts(&next, &set(&[0, 1, 2]));
        assert_eq!(l.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        for (k, r) in &next {
            let mut before = a[k].clone();
            let mut after = r.clone();
            before.sort_unstable();
            after.sort_unstable();
            assert_eq!(before, after, "leader balancing moves no data");
        }
    }

    /// Random clusters: `n` brokers (ids 0..n), topics with random replica sets.
    fn cluster() -> impl Strategy<Value = (i32, Assignment)> {
        (2..7i32).prop_flat_map(|n| {
            let partition = (1..=n.min(3) as usize)
                .prop_flat_map(move |rf| {
                    proptest::sample::subsequence((0..n).collect::<Vec<_>>(), rf)
                })
                .prop_shuffle();
            (
                Just(n),
                proptest::collection::vec(partition, 1..24).prop_map(|parts| {
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| ((format!("t{}", i % 3), i as i32), r))
                        .collect::<Assignment>()
                }),
            )
        })
    }

    fn check_invariants(before: &Assignment, after: &Assignment, targets: &BTreeSet<i32>) {
        assert_eq!(before.len(), after.len());
        for (k, r) in after {
            assert_eq!(
                r.len(),
                before[k].len(),
                "replication factor kept for {k:?}"
            );
            let distinct: BTreeSet<_> = r.iter().collect();
            assert_eq!(distinct.len(), r.len(), "distinct replicas in {r:?}");
            assert!(
                r.iter().all(|b| targets.contains(b)),
                "{r:?} outside {targets:?}"
            );
        }
        let c = counts(after, targets);
        assert!(spread(&c) <= 1, "replica counts {c:?}");
    }

    proptest! {
        #[test]
        fn scale_up_balances_replicas_within_one((n, a) in cluster(), extra in 1..3i32) {
            let targets: BTreeSet<i32> = (0..n + extra).collect();
            let after = balanced_assignment(&a, &targets).expect("enough brokers");
            check_invariants(&a, &after, &targets);
        }

        #[test]
        fn draining_brokers_end_with_no_replicas((n, a) in cluster(), drain in 0..6i32) {
            let rf = a.values().map(Vec::len).max().unwrap_or(1) as i32;
            let targets: BTreeSet<i32> = (0..n).filter(|b| *b != drain % n).collect();
            let result = balanced_assignment(&a, &targets);
            if (targets.len() as i32) < rf {
                prop_assert!(result.is_err(), "never fewer replicas than RF");
            } else {
                let after = result.expect("enough brokers");
                check_invariants(&a, &after, &targets);
                prop_assert!(after.values().all(|r| !r.contains(&(drain % n))));
            }
        }

        #[test]
        fn planning_twice_is_a_no_op((n, a) in cluster()) {
            let targets: BTreeSet<i32> = (0..n).collect();
            let once = balanced_assignment(&a, &targets).expect("plan");
            let twice = plan_reassignment(&once, &targets).expect("plan");
            prop_assert!(twice.is_empty(), "second plan moved {twice:?}");
        }
    }
}
