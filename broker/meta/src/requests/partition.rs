//! Partition leadership and replica sets: AlterPartition-style changes, preferred leader
//! elections and reassignments.

use std::collections::BTreeSet;

use super::{partition_index, ElectionResult, ElectionScope, MetaResponse, RequestError};
use crate::state_machine::{ClusterMetadata, PartitionState, NO_LEADER};

fn stored(md: &ClusterMetadata, topic: &str, idx: usize) -> Result<PartitionState, RequestError> {
    md.partition(topic, idx)
        .cloned()
        .ok_or_else(|| RequestError::UnknownTopic(topic.to_string()))
}

fn store(md: &mut ClusterMetadata, topic: &str, idx: usize, p: PartitionState) -> MetaResponse {
    if let Some(slot) = md.partition_mut(topic, idx) {
        *slot = p.clone();
    }
    MetaResponse::Partition(p)
}

fn has_duplicates(ids: &[i32]) -> bool {
    ids.iter().collect::<BTreeSet<_>>().len() != ids.len()
}

pub(super) fn change(
    md: &mut ClusterMetadata,
    topic: &str,
    partition: i32,
    leader: Option<i32>,
    isr: Option<&[i32]>,
    expected_partition_epoch: i32,
) -> Result<MetaResponse, RequestError> {
    let idx = partition_index(md, topic, partition)?;
    let mut p = stored(md, topic, idx)?;
    if p.partition_epoch != expected_partition_epoch {
        return Err(RequestError::StalePartitionEpoch {
            topic: topic.to_string(),
            partition,
            expected: expected_partition_epoch,
            current: p.partition_epoch,
        });
    }

    let new_isr = isr.map_or_else(|| p.isr.clone(), <[i32]>::to_vec);
    if new_isr.is_empty() {
        return Err(RequestError::InvalidIsr("the ISR must not be empty".into()));
    }
    if has_duplicates(&new_isr) {
        return Err(RequestError::InvalidIsr(format!(
            "{new_isr:?} has duplicates"
        )));
    }
    if let Some(stranger) = new_isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(RequestError::InvalidIsr(format!(
            "broker {stranger} is not a replica of {topic}-{partition} ({:?})",
            p.replicas
        )));
    }
    // Only members joining the ISR must be eligible: a fenced member that is already in the
    // ISR (e.g. the last one, kept so the partition can recover cleanly) may stay.
    let ineligible: Vec<i32> = new_isr
        .iter()
        .copied()
        .filter(|r| !p.isr.contains(r) && !md.is_eligible(*r))
        .collect();
    if !ineligible.is_empty() {
        return Err(RequestError::IneligibleReplica(ineligible));
    }

    let new_leader = match leader {
        Some(NO_LEADER) => {
            return Err(RequestError::InvalidLeader(
                "a partition cannot be made leaderless on request".into(),
            ))
        }
        Some(l) => {
            if l != p.leader && !md.is_eligible(l) {
                return Err(RequestError::InvalidLeader(format!(
                    "broker {l} is fenced, shutting down or unregistered"
                )));
            }
            l
        }
        None => p.leader,
    };
    if new_leader != NO_LEADER && !new_isr.contains(&new_leader) {
        return Err(RequestError::InvalidLeader(format!(
            "leader {new_leader} must be in the ISR {new_isr:?}"
        )));
    }
    if !p.change(new_leader, new_isr) {
        return Err(RequestError::NoChange);
    }
    Ok(store(md, topic, idx, p))
}

pub(super) fn elect_preferred(
    md: &mut ClusterMetadata,
    scope: &ElectionScope,
) -> Result<MetaResponse, RequestError> {
    let (targets, report_all): (Vec<(String, i32)>, bool) = match scope {
        ElectionScope::All => {
            let all = md
                .topics
                .iter()
                .flat_map(|(name, t)| {
                    (0..t.partitions.len()).map(move |i| (name.clone(), i as i32))
                })
                .collect();
            (all, false)
        }
        ElectionScope::Partitions(list) => (list.clone(), true),
    };
    let mut results = Vec::new();
    for (topic, partition) in targets {
        let result = elect_one(md, &topic, partition);
        let not_needed = matches!(result, Err(RequestError::ElectionNotNeeded { .. }));
        if report_all || !not_needed {
            results.push(ElectionResult {
                topic,
                partition,
                result,
            });
        }
    }
    Ok(MetaResponse::Elections(results))
}

fn elect_one(md: &mut ClusterMetadata, topic: &str, partition: i32) -> Result<i32, RequestError> {
    let idx = partition_index(md, topic, partition)?;
    let mut p = stored(md, topic, idx)?;
    let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
    if p.leader == preferred {
        return Err(RequestError::ElectionNotNeeded {
            topic: topic.to_string(),
            partition,
        });
    }
    if !p.isr.contains(&preferred) || !md.is_eligible(preferred) {
        return Err(RequestError::PreferredLeaderNotAvailable {
            topic: topic.to_string(),
            partition,
            replica: preferred,
        });
    }
    let isr = p.isr.clone();
    p.change(preferred, isr);
    store(md, topic, idx, p);
    Ok(preferred)
}

pub(super) fn elect_unclean(
    md: &mut ClusterMetadata,
    partitions: &[(String, i32)],
) -> MetaResponse {
    let elected = md.elect_unclean(Some(partitions), true);
    let results = partitions
        .iter()
        .map(|(topic, partition)| {
            let result = match elected
                .iter()
                .find(|(t, p, _)| t == topic && p == partition)
            {
                Some((.., leader)) => Ok(*leader),
                None => match md
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(usize::try_from(*partition).ok()?))
                {
                    None => Err(RequestError::UnknownPartition {
                        topic: topic.clone(),
                        partition: *partition,
                    }),
                    Some(p) if p.leader != NO_LEADER => Err(RequestError::ElectionNotNeeded {
                        topic: topic.clone(),
                        partition: *partition,
                    }),
                    Some(_) => Err(RequestError::EligibleLeadersNotAvailable {
                        topic: topic.clone(),
                        partition: *partition,
                    }),
                },
            };
            ElectionResult {
                topic: topic.clone(),
                partition: *partition,
                result,
            }
        })
        .collect();
    MetaResponse::Elections(results)
}

pub(super) fn reassign(
    md: &mut ClusterMetadata,
    topic: &str,
    partition: i32,
    target: &[i32],
) -> Result<MetaResponse, RequestError> {
    let idx = partition_index(md, topic, partition)?;
    let mut p = stored(md, topic, idx)?;
    if p.is_reassigning() {
        return Err(RequestError::ReassignmentInProgress {
            topic: topic.to_string(),
            partition,
        });
    }
    if target.is_empty() {
        return Err(RequestError::InvalidReplicaAssignment(
            "the target replica list is empty".into(),
        ));
    }
    if has_duplicates(target) {
        return Err(RequestError::InvalidReplicaAssignment(format!(
            "{target:?} has duplicates"
        )));
    }
    if let Some(unknown) = target.iter().find(|b| !md.brokers.contains_key(b)) {
        return Err(RequestError::InvalidReplicaAssignment(format!(
            "broker {unknown} is not registered"
        )));
    }
    if target == p.replicas.as_slice() {
        return Err(RequestError::NoChange);
    }
    // Kafka's merged replica list: the target first (so its first replica is preferred), then
    // the replicas on their way out.
    let mut merged = target.to_vec();
    merged.extend(p.replicas.iter().filter(|r| !target.contains(r)));
    p.adding = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    p.removing = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    p.replicas = merged;
    p.partition_epoch = p.partition_epoch.saturating_add(1);
    // Only removing (or only reordering): nothing to wait for, finish now if the ISR allows.
    if p.adding.is_empty() {
        if let Ok(done) = finish(md, p.clone()) {
            p = done;
        }
    }
    Ok(store(md, topic, idx, p))
}

/// Completes a reassignment in `p` if every added replica is in the ISR and some target
/// replica is; otherwise says what it waits for.
fn finish(md: &ClusterMetadata, mut p: PartitionState) -> Result<PartitionState, Vec<i32>> {
    let waiting: Vec<i32> = p
        .adding
        .iter()
        .copied()
        .filter(|r| !p.isr.contains(r))
        .collect();
    if !waiting.is_empty() {
        return Err(waiting);
    }
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    let replicas: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    if isr.is_empty() {
        // No target replica is in sync yet; dropping the old ones would lose the data.
        return Err(replicas);
    }
    let leader = if p.leader == NO_LEADER || p.removing.contains(&p.leader) {
        md.elect_leader(&replicas, &isr)
    } else {
        p.leader
    };
    p.replicas = replicas;
    p.adding.clear();
    p.removing.clear();
    if !p.change(leader, isr) {
        // The replica set changed even if leader and ISR did not.
        p.partition_epoch = p.partition_epoch.saturating_add(1);
    }
    Ok(p)
}

pub(super) fn complete_reassignment(
    md: &mut ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<MetaResponse, RequestError> {
    let idx = partition_index(md, topic, partition)?;
    let p = stored(md, topic, idx)?;
    if !p.is_reassigning() {
        return Err(RequestError::NoReassignmentInProgress {
            topic: topic.to_string(),
            partition,
        });
    }
    let done = finish(md, p).map_err(|waiting| RequestError::ReassignmentNotCaughtUp {
        topic: topic.to_string(),
        partition,
        waiting,
    })?;
    Ok(store(md, topic, idx, done))
}

pub(super) fn cancel_reassignment(
    md: &mut ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<MetaResponse, RequestError> {
    let idx = partition_index(md, topic, partition)?;
    let mut p = stored(md, topic, idx)?;
    if !p.is_reassigning() {
        return Err(RequestError::NoReassignmentInProgress {
            topic: topic.to_string(),
            partition,
        });
    }
    let replicas: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(RequestError::InvalidReplicaAssignment(
            "cancelling would leave no original replica in the ISR".into(),
        ));
    }
    let leader = if p.leader == NO_LEADER || p.adding.contains(&p.leader) {
        md.elect_leader(&replicas, &isr)
    } else {
        p.leader
    };
    p.replicas = replicas;
    p.adding.clear();
    p.removing.clear();
    if !p.change(leader, isr) {
        p.partition_epoch = p.partition_epoch.saturating_add(1);
    }
    Ok(store(md, topic, idx, p))
}
