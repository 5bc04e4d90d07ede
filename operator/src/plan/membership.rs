//! Broker membership: which ids exist after reconciling `spec.replicas`.
//!
//! Ids are never reused while a broker with that id exists; new brokers take the lowest free
//! ids not listed in `removeBrokers`. On scale-down the brokers listed in `removeBrokers` go
//! first, then the highest ids.

use std::collections::BTreeSet;

/// The outcome of comparing existing brokers with the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Brokers that stay.
    pub keep: Vec<i32>,
    /// Brokers to create.
    pub add: Vec<i32>,
    /// Brokers to drain and remove.
    pub remove: Vec<i32>,
}

impl Membership {
    /// Every broker that exists once the change is done (kept plus added), sorted.
    pub fn target(&self) -> Vec<i32> {
        let mut t: Vec<i32> = self.keep.iter().chain(&self.add).copied().collect();
        t.sort_unstable();
        t
    }
}

/// Plans membership for `replicas` brokers given the `existing` ones.
pub fn plan_membership(
    existing: &BTreeSet<i32>,
    replicas: i32,
    remove_first: &[i32],
) -> Membership {
    let want = usize::try_from(replicas.max(0)).unwrap_or(0);
    let mut m = Membership::default();
    if existing.len() >= want {
        let mut remove: Vec<i32> = Vec::new();
        let excess = existing.len() - want;
        for id in remove_first {
            if remove.len() < excess && existing.contains(id) && !remove.contains(id) {
                remove.push(*id);
            }
        }
        for id in existing.iter().rev() {
            if remove.len() >= excess {
                break;
            }
            if !remove.contains(id) {
                remove.push(*id);
            }
        }
        remove.sort_unstable();
        m.keep = existing
            .iter()
            .copied()
            .filter(|id| !remove.contains(id))
            .collect();
        m.remove = remove;
    } else {
        m.keep = existing.iter().copied().collect();
        let mut next = 0;
        while m.keep.len() + m.add.len() < want {
            if !existing.contains(&next) && !remove_first.contains(&next) {
                m.add.push(next);
            }
            next += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn new_cluster_gets_ids_from_zero() {
        let m = plan_membership(&set(&[]), 3, &[]);
        assert_eq!(m.add, vec![0, 1, 2]);
        assert!(m.remove.is_empty());
    }

    #[test]
    fn scale_down_removes_highest_ids_by_default() {
        let m = plan_membership(&set(&[0, 1, 2, 3]), 2, &[]);
        assert_eq!(m.remove, vec![2, 3]);
        assert_eq!(m.keep, vec![0, 1]);
    }

    #[test]
    fn scale_down_removes_the_chosen_broker_first() {
        let m = plan_membership(&set(&[0, 1, 2, 3]), 3, &[1]);
        assert_eq!(m.remove, vec![1]);
        assert_eq!(m.target(), vec![0, 2, 3]);
    }

    #[test]
    fn chosen_ids_that_do_not_exist_are_ignored() {
        let m = plan_membership(&set(&[0, 1, 2]), 2, &[7]);
        assert_eq!(m.remove, vec![2]);
    }

    #[test]
    fn scale_up_fills_gaps_but_skips_removed_ids() {
        let m = plan_membership(&set(&[0, 2, 3]), 5, &[1]);
        assert_eq!(m.add, vec![4, 5]);
        let m = plan_membership(&set(&[0, 2]), 3, &[]);
        assert_eq!(m.add, vec![1]);
    }

    #[test]
    fn steady_state_changes_nothing() {
        let m = plan_membership(&set(&[0, 1, 2]), 3, &[1]);
        assert_eq!(m.keep, vec![0, 1, 2]);
        assert!(m.add.is_empty() && m.remove.is_empty());
    }
}
