//! Which step a Cluster pass takes once it has read the cluster: at most one of scale-down,
//! rebalance, rolling restart and preferred leader election, in that order.
//!
//! The reconciler gathers a [`ClusterState`] from the broker pods and the brokers' admin API,
//! asks [`next_step`], and carries out the [`Step`] (`reconcilers/cluster/`). Only the roll's
//! final safety check waits for the step: it needs each topic's `min.insync.replicas`, which
//! is read from the cluster for the one broker about to restart.

use std::collections::BTreeSet;

use super::{plan_reassignment, scale_down_blockers, Assignment, PlanError};
use crate::kafka::{ClusterMetadata, TopicPartition};

/// What a pass observed, as plain data.
#[derive(Clone, Copy, Debug)]
pub struct ClusterState<'a> {
    /// Brokers that exist once membership changes are done, sorted.
    pub target: &'a [i32],
    /// Brokers to drain and remove, sorted.
    pub leaving: &'a [i32],
    /// Brokers that vote in the metadata quorum.
    pub voters: &'a [i32],
    /// What Metadata reported.
    pub metadata: &'a ClusterMetadata,
    /// Partition reassignments in flight.
    pub in_flight: usize,
    /// Every target broker has a ready pod.
    pub all_ready: bool,
    /// Target brokers whose pod runs an outdated revision.
    pub stale: &'a [i32],
    /// `status.balancedBrokers`: the broker set partitions were last balanced over.
    pub balanced_over: &'a [i32],
}

/// The outcome of [`next_step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The broker set changed, but its partitions are already balanced over it: record
    /// `target` as balanced. Nothing moves, so `step` is still taken in the same pass.
    pub record_balanced: bool,
    /// What to do.
    pub step: Step,
}

/// The one thing a pass does to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Brokers are leaving.
    ScaleDown(ScaleDown),
    /// The broker set changed since partitions were last balanced.
    Rebalance(Rebalance),
    /// A broker runs an outdated revision.
    Roll(Roll),
    /// Leaders drifted off their preferred replicas: elect the preferred ones again.
    ElectLeaders(Vec<TopicPartition>),
    /// Nothing to do.
    Idle,
}

/// Scale-down: refuse, drain the leaving brokers, or remove them once empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleDown {
    /// Topics, `(topic, replication factor)`, with more replicas than the `remaining`
    /// brokers could hold.
    RefuseReplicationFactor {
        topics: Vec<(String, usize)>,
        remaining: usize,
    },
    /// `leaving` brokers vote in the metadata quorum (`voters`), which is fixed at creation.
    RefuseVoters { leaving: Vec<i32>, voters: Vec<i32> },
    /// Send these moves to empty the leaving brokers.
    StartDrain(Assignment),
    /// `moves` partitions must move, but other moves are in flight: wait for them first.
    WaitToDrain { moves: usize, in_flight: usize },
    /// Nothing left to plan; the drain's own moves are in flight.
    WaitForDrain { in_flight: usize },
    /// The leaving brokers hold no partitions: delete them.
    Remove,
}

/// Rebalance onto a changed broker set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebalance {
    /// Moves are in flight; planning now would plan from a layout about to change.
    Wait { in_flight: usize },
    /// Send these moves.
    Start(Assignment),
}

/// Rolling restart, one broker at a time. `stale` lists every broker to restart in order,
/// non-voters first so the metadata quorum is disturbed last; `broker` is the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roll {
    /// Not every broker is ready: restarting another would stack two outages.
    WaitForReady { broker: i32, stale: Vec<i32> },
    /// Restart `broker`, if its partitions' ISRs allow it (`plan::safety::restart_blockers`).
    Restart { broker: i32, stale: Vec<i32> },
}

/// Chooses the step for a pass that observed `s`. Fails only when no reassignment exists for
/// the target brokers (none left to hold replicas).
pub fn next_step(s: &ClusterState<'_>) -> Result<Plan, PlanError> {
    let target: BTreeSet<i32> = s.target.iter().copied().collect();
    if !s.leaving.is_empty() {
        return Ok(Plan {
            record_balanced: false,
            step: Step::ScaleDown(scale_down(s, &target)?),
        });
    }
    let mut record_balanced = false;
    // Wait for every broker to register and be ready, so the moves include them all.
    let registered = s.metadata.broker_ids();
    if s.balanced_over != s.target && target.is_subset(&registered) && s.all_ready {
        match rebalance(s, &target)? {
            Some(r) => {
                return Ok(Plan {
                    record_balanced,
                    step: Step::Rebalance(r),
                })
            }
            None => record_balanced = true,
        }
    }
    let step = if let Some(roll) = roll(s) {
        Step::Roll(roll)
    } else if let Some(partitions) = drifted_leaders(s) {
        Step::ElectLeaders(partitions)
    } else {
        Step::Idle
    };
    Ok(Plan {
        record_balanced,
        step,
    })
}

fn scale_down(s: &ClusterState<'_>, target: &BTreeSet<i32>) -> Result<ScaleDown, PlanError> {
    let topics = scale_down_blockers(s.metadata, target.len());
    if !topics.is_empty() {
        return Ok(ScaleDown::RefuseReplicationFactor {
            topics,
            remaining: target.len(),
        });
    }
    let leaving_voters: Vec<i32> = s
        .leaving
        .iter()
        .copied()
        .filter(|id| s.voters.contains(id))
        .collect();
    if !leaving_voters.is_empty() {
        return Ok(ScaleDown::RefuseVoters {
            leaving: leaving_voters,
            voters: s.voters.to_vec(),
        });
    }
    let moves = plan_reassignment(&s.metadata.assignment(), target)?;
    Ok(match (moves.is_empty(), s.in_flight) {
        (false, 0) => ScaleDown::StartDrain(moves),
        (false, in_flight) => ScaleDown::WaitToDrain {
            moves: moves.len(),
            in_flight,
        },
        (true, 0) => ScaleDown::Remove,
        (true, in_flight) => ScaleDown::WaitForDrain { in_flight },
    })
}

/// `None` when the partitions are already balanced over `target`.
fn rebalance(s: &ClusterState<'_>, target: &BTreeSet<i32>) -> Result<Option<Rebalance>, PlanError> {
    if s.in_flight > 0 {
        return Ok(Some(Rebalance::Wait {
            in_flight: s.in_flight,
        }));
    }
    let moves = plan_reassignment(&s.metadata.assignment(), target)?;
    Ok((!moves.is_empty()).then_some(Rebalance::Start(moves)))
}

fn roll(s: &ClusterState<'_>) -> Option<Roll> {
    let mut stale = s.stale.to_vec();
    stale.sort_by_key(|id| (s.voters.contains(id), *id));
    let broker = *stale.first()?;
    Some(if s.all_ready {
        Roll::Restart { broker, stale }
    } else {
        Roll::WaitForReady { broker, stale }
    })
}

/// Partitions to hand back to their preferred leader, when that is safe to ask now: every
/// broker ready, no moves in flight and no partition offline.
fn drifted_leaders(s: &ClusterState<'_>) -> Option<Vec<TopicPartition>> {
    let drifted = s.metadata.not_preferred_leader();
    let calm = s.all_ready && s.in_flight == 0 && s.metadata.offline().is_empty();
    (calm && !drifted.is_empty()).then_some(drifted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{BrokerInfo, PartitionInfo, TopicInfo};

    /// Metadata for `brokers` and one topic `orders` with these `(replicas, isr, leader)`.
    fn md(brokers: &[i32], partitions: &[(&[i32], &[i32], i32)]) -> ClusterMetadata {
        ClusterMetadata {
            brokers: brokers
                .iter()
                .map(|id| BrokerInfo {
                    id: *id,
                    host: format!("b{id}"),
                    port: 9092,
                    rack: None,
                    fenced: false,
                })
                .collect(),
            topics: vec![TopicInfo {
                name: "orders".into(),
                id: "id".into(),
                partitions: partitions
                    .iter()
                    .enumerate()
                    .map(|(i, (replicas, isr, leader))| PartitionInfo {
                        partition: i32::try_from(i).expect("small"),
                        leader: *leader,
                        replicas: replicas.to_vec(),
                        isr: isr.to_vec(),
                    })
                    .collect(),
            }],
        }
    }

    /// Three balanced, ready, up-to-date brokers, 0 voting, and `metadata`: a pass with
    /// nothing to do unless a test changes a field.
    fn steady(metadata: &ClusterMetadata) -> ClusterState<'_> {
        ClusterState {
            target: &[0, 1, 2],
            leaving: &[],
            voters: &[0],
            metadata,
            in_flight: 0,
            all_ready: true,
            stale: &[],
            balanced_over: &[0, 1, 2],
        }
    }

    /// Partitions of RF 2 spread over brokers 0..=3, each led by its preferred replica.
    fn on_four() -> ClusterMetadata {
        md(
            &[0, 1, 2, 3],
            &[
                (&[0, 1], &[0, 1], 0),
                (&[1, 2], &[1, 2], 1),
                (&[2, 3], &[2, 3], 2),
                (&[3, 0], &[3, 0], 3),
            ],
        )
    }

    fn step(s: &ClusterState<'_>) -> Step {
        next_step(s).expect("a plan").step
    }

    #[test]
    fn steady_cluster_is_left_alone() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let plan = next_step(&steady(&m)).expect("a plan");
        assert_eq!(
            plan,
            Plan {
                record_balanced: false,
                step: Step::Idle
            }
        );
    }

    #[test]
    fn scale_down_is_refused_when_a_topic_needs_more_brokers_than_remain() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let s = ClusterState {
            target: &[0, 1],
            leaving: &[2],
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::ScaleDown(ScaleDown::RefuseReplicationFactor {
                topics: vec![("orders".into(), 3)],
                remaining: 2,
            })
        );
    }

    #[test]
    fn scale_down_is_refused_when_a_leaving_broker_votes() {
        let m = md(&[0, 1, 2], &[(&[1], &[1], 1)]);
        let s = ClusterState {
            target: &[1, 2],
            leaving: &[0],
            voters: &[0, 1],
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::ScaleDown(ScaleDown::RefuseVoters {
                leaving: vec![0],
                voters: vec![0, 1],
            })
        );
    }

    #[test]
    fn replication_factor_refusal_comes_before_the_voter_refusal() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let s = ClusterState {
            target: &[1, 2],
            leaving: &[0],
            ..steady(&m)
        };
        assert!(matches!(
            step(&s),
            Step::ScaleDown(ScaleDown::RefuseReplicationFactor { .. })
        ));
    }

    #[test]
    fn drain_starts_with_moves_that_empty_the_leaving_broker() {
        let m = on_four();
        let s = ClusterState {
            leaving: &[3],
            ..steady(&m)
        };
        let Step::ScaleDown(ScaleDown::StartDrain(moves)) = step(&s) else {
            panic!("expected a drain: {:?}", step(&s));
        };
        assert_eq!(moves.len(), 2, "the two partitions on broker 3: {moves:?}");
        assert!(moves.values().all(|r| !r.contains(&3)), "{moves:?}");
    }

    #[test]
    fn drain_waits_for_moves_already_in_flight() {
        let m = on_four();
        let s = ClusterState {
            leaving: &[3],
            in_flight: 1,
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::ScaleDown(ScaleDown::WaitToDrain {
                moves: 2,
                in_flight: 1
            })
        );
    }

    #[test]
    fn drained_broker_waits_for_its_moves_to_finish() {
        let m = md(&[0, 1, 2, 3], &[(&[0, 1], &[0, 1], 0)]);
        let s = ClusterState {
            leaving: &[3],
            in_flight: 2,
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::ScaleDown(ScaleDown::WaitForDrain { in_flight: 2 })
        );
    }

    #[test]
    fn empty_leaving_broker_is_removed() {
        let m = md(&[0, 1, 2, 3], &[(&[0, 1], &[0, 1], 0)]);
        let s = ClusterState {
            leaving: &[3],
            stale: &[1],
            ..steady(&m)
        };
        assert_eq!(
            next_step(&s).expect("a plan"),
            Plan {
                record_balanced: false,
                step: Step::ScaleDown(ScaleDown::Remove),
            },
            "scale-down goes first, even with a broker to roll"
        );
    }

    #[test]
    fn new_broker_set_is_rebalanced_onto() {
        let m = md(
            &[0, 1, 2, 3],
            &[(&[0, 1], &[0, 1], 0), (&[1, 2], &[1, 2], 1)],
        );
        let s = ClusterState {
            target: &[0, 1, 2, 3],
            stale: &[0],
            ..steady(&m)
        };
        let Step::Rebalance(Rebalance::Start(moves)) = step(&s) else {
            panic!("expected a rebalance: {:?}", step(&s));
        };
        assert!(
            moves.values().any(|r| r.contains(&3)),
            "broker 3 gets replicas: {moves:?}"
        );
    }

    #[test]
    fn rebalance_waits_for_moves_in_flight() {
        let m = md(&[0, 1, 2, 3], &[(&[0, 1], &[0, 1], 0)]);
        let s = ClusterState {
            target: &[0, 1, 2, 3],
            in_flight: 3,
            ..steady(&m)
        };
        assert_eq!(step(&s), Step::Rebalance(Rebalance::Wait { in_flight: 3 }));
    }

    #[test]
    fn rebalance_waits_for_every_broker_to_register_and_be_ready() {
        let m = md(&[0, 1, 2], &[(&[0, 1], &[0, 1], 0)]);
        let unregistered = ClusterState {
            target: &[0, 1, 2, 3],
            ..steady(&m)
        };
        assert_eq!(step(&unregistered), Step::Idle);
        let m = md(&[0, 1, 2, 3], &[(&[0, 1], &[0, 1], 0)]);
        let not_ready = ClusterState {
            target: &[0, 1, 2, 3],
            all_ready: false,
            ..steady(&m)
        };
        assert_eq!(step(&not_ready), Step::Idle);
    }

    #[test]
    fn already_balanced_set_is_recorded_and_the_pass_goes_on() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let s = ClusterState {
            balanced_over: &[0, 1],
            stale: &[2],
            ..steady(&m)
        };
        assert_eq!(
            next_step(&s).expect("a plan"),
            Plan {
                record_balanced: true,
                step: Step::Roll(Roll::Restart {
                    broker: 2,
                    stale: vec![2]
                }),
            }
        );
    }

    #[test]
    fn no_target_brokers_is_an_error_not_a_plan() {
        let m = md(&[], &[(&[0], &[0], 0)]);
        let s = ClusterState {
            target: &[],
            ..steady(&m)
        };
        assert_eq!(next_step(&s), Err(PlanError::NoBrokers));
    }

    #[test]
    fn roll_restarts_non_voters_first_then_lowest_id() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let s = ClusterState {
            stale: &[2, 0, 1],
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::Roll(Roll::Restart {
                broker: 1,
                stale: vec![1, 2, 0]
            })
        );
    }

    #[test]
    fn roll_waits_while_a_broker_is_not_ready() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        let s = ClusterState {
            stale: &[1],
            all_ready: false,
            ..steady(&m)
        };
        assert_eq!(
            step(&s),
            Step::Roll(Roll::WaitForReady {
                broker: 1,
                stale: vec![1]
            })
        );
    }

    #[test]
    fn roll_comes_before_leader_election() {
        let m = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 1)]);
        let s = ClusterState {
            stale: &[2],
            ..steady(&m)
        };
        assert!(matches!(step(&s), Step::Roll(_)));
    }

    #[test]
    fn drifted_leaders_are_handed_back() {
        let m = md(
            &[0, 1, 2],
            &[(&[0, 1, 2], &[0, 1, 2], 1), (&[1, 2, 0], &[1, 2, 0], 1)],
        );
        assert_eq!(
            step(&steady(&m)),
            Step::ElectLeaders(vec![("orders".into(), 0)])
        );
    }

    #[test]
    fn leaders_stay_while_the_cluster_is_busy_or_hurt() {
        let drifted = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 1)]);
        let in_flight = ClusterState {
            in_flight: 1,
            ..steady(&drifted)
        };
        assert_eq!(step(&in_flight), Step::Idle);
        let not_ready = ClusterState {
            all_ready: false,
            ..steady(&drifted)
        };
        assert_eq!(step(&not_ready), Step::Idle);
        let offline = md(&[0, 1, 2], &[(&[0, 1, 2], &[0, 1, 2], 1), (&[2], &[], -1)]);
        assert_eq!(step(&steady(&offline)), Step::Idle);
    }
}
