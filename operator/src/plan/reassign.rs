//! Reassignment planning: where replicas go when brokers join or drain.
//!
//! Three steps, each moving as little as it can:
//! 1. **Evacuate**: every replica on a broker outside `targets` (draining or gone) is replaced,
//!    in place, by the target broker with the fewest replicas of that topic that the partition
//!    lacks.
//! 2. **Balance replicas**: within each topic, then overall: while the busiest broker has two
//!    or more replicas more than the idlest, move one replica of a partition the idlest lacks.
//!    Such a partition always exists (the busiest hosts more partitions than the idlest), and
//!    each move shrinks the sum of squared counts, so this ends with every count within one of
//!    the others, per topic and overall (see [`balance`]). Per topic matters: a broker that
//!    joins should take a share of every topic's traffic, not only replicas of the biggest one.
//! 3. **Balance leaders**: swap preferred-leader positions inside a partition (no data moves)
//!    while that narrows the spread of preferred leaders, per topic, then overall.
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
    let topics: BTreeSet<String> = next.keys().map(|(t, _)| t.clone()).collect();

    // 1. Evacuate replicas from brokers outside the target set, each to the target broker
    //    with the fewest replicas of that topic (then overall) that the partition lacks.
    let keys: Vec<(String, i32)> = next.keys().cloned().collect();
    for key in &keys {
        for i in 0..next[key].len() {
            if targets.contains(&next[key][i]) {
                continue;
            }
            let global = counts(&next, targets);
            let in_topic = topic_counts(&next, targets, &key.0, false);
            let replicas = &next[key];
            let pick = in_topic
                .iter()
                .filter(|(b, _)| !replicas.contains(b))
                .min_by(|a, b| {
                    a.1.cmp(b.1)
                        .then(global[a.0].cmp(&global[b.0]))
                        .then(a.0.cmp(b.0))
                })
                .map(|(b, _)| *b);
            if let (Some(b), Some(r)) = (pick, next.get_mut(key)) {
                r[i] = b;
            }
        }
    }

    // 2. Balance replica counts, within each topic (a joining broker gets a share of every
    //    topic, not just of the biggest) and overall.
    balance_to_fixpoint(&mut next, targets, &topics, false);
    // 3. Balance preferred leaders the same way, by swapping positions within partitions.
    balance_to_fixpoint(&mut next, targets, &topics, true);
    Ok(next)
}

/// Per-topic and overall passes of [`balance`], repeated until neither moves anything, so
/// planning again on the result is a no-op. It ends: a per-topic move lowers the sum over
/// topics of squared per-topic counts; an overall move leaves that sum no higher (it only
/// moves from a topic where the busy broker holds more) and lowers the overall one.
fn balance_to_fixpoint(
    next: &mut Assignment,
    targets: &BTreeSet<i32>,
    topics: &BTreeSet<String>,
    leaders: bool,
) {
    let rounds = next.values().map(Vec::len).sum::<usize>() + 1;
    for _ in 0..rounds {
        let mut moved = false;
        for topic in topics {
            moved |= balance(next, targets, Some(topic), leaders);
        }
        moved |= balance(next, targets, None, leaders);
        if !moved {
            return;
        }
    }
}

/// Replicas (or, with `leaders`, preferred leaderships) per target broker in one topic.
fn topic_counts(
    assignment: &Assignment,
    targets: &BTreeSet<i32>,
    topic: &str,
    leaders: bool,
) -> BTreeMap<i32, usize> {
    let mut c: BTreeMap<i32, usize> = targets.iter().map(|b| (*b, 0)).collect();
    for ((t, _), replicas) in assignment {
        if t != topic {
            continue;
        }
        let held: &[i32] = if leaders {
            replicas.get(..1).unwrap_or_default()
        } else {
            replicas
        };
        for b in held {
            if let Some(n) = c.get_mut(b) {
                *n += 1;
            }
        }
    }
    c
}

/// Moves replicas (or, with `leaders`, swaps the preferred leader with another replica of the
/// same partition, which moves no data) from the busiest to the idlest broker until their
/// counts are within one.
///
/// With `topic`, counts are that topic's and ties go to the busiest (idlest) broker overall,
/// so the topics' remainders spread. Without, counts are overall and a move is only taken from
/// a topic where the busy broker holds more than the idle one, which keeps every topic within
/// one. Such a topic always exists when the overall counts differ by two or more (the
/// per-topic differences sum to the overall one), and every move shrinks the sum of squared
/// counts, so replica balancing always ends within one. Returns whether anything moved.
fn balance(
    next: &mut Assignment,
    targets: &BTreeSet<i32>,
    topic: Option<&str>,
    leaders: bool,
) -> bool {
    let overall = |a: &Assignment| {
        if leaders {
            leader_counts(a, targets)
        } else {
            counts(a, targets)
        }
    };
    let limit = next.values().map(Vec::len).sum::<usize>() * 2 + 1;
    let mut moved = false;
    for _ in 0..limit {
        let global = overall(next);
        let count = match topic {
            Some(t) => topic_counts(next, targets, t, leaders),
            None => global.clone(),
        };
        let by_count_then_global = |a: &(&i32, &usize), b: &(&i32, &usize)| {
            a.1.cmp(b.1).then(global[a.0].cmp(&global[b.0]))
        };
        let Some((hi, hi_n)) = count
            .iter()
            .max_by(|a, b| by_count_then_global(a, b).then(b.0.cmp(a.0)))
        else {
            return moved;
        };
        let Some((lo, lo_n)) = count
            .iter()
            .min_by(|a, b| by_count_then_global(a, b).then(a.0.cmp(b.0)))
        else {
            return moved;
        };
        let (hi, lo) = (*hi, *lo);
        if *hi_n <= lo_n + 1 {
            return moved;
        }
        let eligible = |t: &str| match topic {
            Some(only) => t == only,
            None => {
                let c = topic_counts(next, targets, t, leaders);
                c[&hi] > c[&lo]
            }
        };
        let eligible_topics: BTreeSet<String> = next
            .keys()
            .map(|(t, _)| t.clone())
            .filter(|t| eligible(t))
            .collect();
        let Some(replicas) = next
            .iter_mut()
            .filter(|((t, _), _)| eligible_topics.contains(t))
            .map(|(_, r)| r)
            .find(|r| {
                if leaders {
                    r.first() == Some(&hi) && r.contains(&lo)
                } else {
                    r.contains(&hi) && !r.contains(&lo)
                }
            })
        else {
            return moved;
        };
        if leaders {
            if let Some(pos) = replicas.iter().position(|b| *b == lo) {
                replicas.swap(0, pos);
            }
        } else if let Some(slot) = replicas.iter_mut().find(|b| **b == hi) {
            *slot = lo;
        }
        moved = true;
    }
    moved
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
    fn joining_brokers_get_a_share_of_every_topic() {
        // A big topic (50 x RF 3) and a small one (6 x RF 3) on brokers 0..3; brokers 3 and
        // 4 join. Balancing totals alone could fill them from the big topic only.
        let mut a = Assignment::new();
        for p in 0..50 {
            a.insert(("big".into(), p), vec![p % 3, (p + 1) % 3, (p + 2) % 3]);
        }
        for p in 0..6 {
            a.insert(("small".into(), p), vec![p % 3, (p + 1) % 3, (p + 2) % 3]);
        }
        let targets = set(&[0, 1, 2, 3, 4]);
        let next = balanced_assignment(&a, &targets).expect("plan");
        for t in ["big", "small"] {
            let c = topic_counts(&next, &targets, t, false);
            assert!(spread(&c) <= 1, "{t}: {c:?}");
            let l = topic_counts(&next, &targets, t, true);
            assert!(spread(&l) <= 1, "{t} leaders: {l:?}");
        }
        assert!(spread(&counts(&next, &targets)) <= 1);
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
        let topics: BTreeSet<&String> = after.keys().map(|(t, _)| t).collect();
        for t in topics {
            let c = topic_counts(after, targets, t, false);
            assert!(spread(&c) <= 1, "replica counts of {t}: {c:?}");
        }
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
