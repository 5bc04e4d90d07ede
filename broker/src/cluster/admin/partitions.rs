//! Partition changes an admin asks for: reassignments (KIP-455) and leader elections
//! (KIP-460). Completing a reassignment is `controller/reassignment.rs`.
use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::{ClusterMetadata, ElectionScope, MetaRequest, MetaResponse, PartitionState};

use super::super::quorum::APPLY_TIMEOUT;
use super::super::{AdminError, Quorum, Registry};

/// `Ok(true)` when the metadata changed, `Ok(false)` for a no-op.
pub type ReassignOutcome = Result<bool, AdminError>;

/// One partition's election result: `None` for success, else the error code and message.
pub type ElectionOutcome = (String, i32, Option<(ResponseError, String)>);

impl Registry {
    /// Moves a partition to `target` replicas, or cancels its move (`None`). As in Kafka, a
    /// target equal to the current replicas is a successful no-op; unlike Kafka, a new
    /// target for a partition already being moved is refused (REASSIGNMENT_IN_PROGRESS).
    pub async fn admin_reassign(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
        allow_rf_change: bool,
    ) -> ReassignOutcome {
        let q = self.quorum();
        let state = current(&q.metadata(), topic, partition)?;
        let epoch = state.partition_epoch;
        let request = match target {
            // The state machine answers NO_REASSIGNMENT_IN_PROGRESS if there is none.
            None => MetaRequest::CancelReassignment {
                topic: topic.to_string(),
                partition,
            },
            Some(target) => {
                if !state.is_reassigning() && target == state.replicas {
                    return Ok(false);
                }
                check_target(&state, &target, allow_rf_change)?;
                MetaRequest::Reassign {
                    topic: topic.to_string(),
                    partition,
                    target,
                }
            }
        };
        q.propose(request).await?;
        wait_past(q, topic, partition, epoch).await;
        Ok(true)
    }

    /// A preferred (`unclean == false`) or unclean election for `requested` partitions, or
    /// for all when `None` (for an unclean election, all the leaderless ones). Waits until
    /// this broker's metadata shows the new leaders.
    pub async fn admin_elect_leaders(
        self: &Arc<Self>,
        unclean: bool,
        requested: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionOutcome>, AdminError> {
        let q = self.quorum();
        let request = if unclean {
            MetaRequest::ElectUncleanLeaders {
                partitions: requested.unwrap_or_else(|| leaderless(&q.metadata())),
            }
        } else {
            MetaRequest::ElectPreferredLeaders {
                scope: match requested {
                    Some(list) => ElectionScope::Partitions(list),
                    None => ElectionScope::All,
                },
            }
        };
        let results = match q.propose(request).await? {
            MetaResponse::Elections(results) => results,
            other => {
                return Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    format!("unexpected answer {other:?}"),
                ))
            }
        };
        let elected: Vec<(String, i32, i32)> = results
            .iter()
            .filter_map(|r| {
                r.result
                    .as_ref()
                    .ok()
                    .map(|l| (r.topic.clone(), r.partition, *l))
            })
            .collect();
        if !elected.is_empty() {
            q.wait_for(APPLY_TIMEOUT, |md| {
                elected
                    .iter()
                    .all(|(t, p, l)| leader(md, t, *p) == Some(*l))
            })
            .await;
            self.sync().await;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                let error = r.result.err().map(|e| {
                    let code = ResponseError::try_from_code(e.kafka_error_code())
                        .unwrap_or(ResponseError::UnknownServerError);
                    (code, e.to_string())
                });
                (r.topic, r.partition, error)
            })
            .collect())
    }
}

/// What Kafka's broker checks about a new target before the controller sees it.
fn check_target(
    state: &PartitionState,
    target: &[i32],
    allow_rf_change: bool,
) -> Result<(), AdminError> {
    if target.is_empty() {
        return Err(invalid_assignment("The replica list is empty."));
    }
    if target.iter().collect::<BTreeSet<_>>().len() != target.len() {
        return Err(invalid_assignment(format!(
            "The replica list {target:?} contains duplicates."
        )));
    }
    let original = state
        .replicas
        .iter()
        .filter(|r| !state.adding.contains(r))
        .count();
    if !allow_rf_change && target.len() != original {
        return Err(AdminError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {original} to {} but allowReplicationFactorChange is false",
                target.len()
            ),
        ));
    }
    Ok(())
}

/// Waits until this broker's metadata shows the partition past `epoch`.
async fn wait_past(q: &Quorum, topic: &str, partition: i32, epoch: i32) {
    q.wait_for(APPLY_TIMEOUT, |md| {
        current(md, topic, partition).map_or(true, |p| p.partition_epoch > epoch)
    })
    .await;
}

/// The partition's current state, or UNKNOWN_TOPIC_OR_PARTITION.
fn current(
    md: &ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<PartitionState, AdminError> {
    usize::try_from(partition)
        .ok()
        .and_then(|i| md.partition(topic, i))
        .cloned()
        .ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("Unable to find partition {topic}-{partition}."),
            )
        })
}

/// Every partition without a leader.
fn leaderless(md: &ClusterMetadata) -> Vec<(String, i32)> {
    md.topics
        .iter()
        .flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader == spate_meta::NO_LEADER)
                .filter_map(move |(i, _)| Some((name.clone(), i32::try_from(i).ok()?)))
        })
        .collect()
}

fn leader(md: &ClusterMetadata, topic: &str, partition: i32) -> Option<i32> {
    usize::try_from(partition)
        .ok()
        .and_then(|i| md.partition(topic, i))
        .map(|p| p.leader)
}

fn invalid_assignment(message: impl Into<String>) -> AdminError {
    AdminError::new(ResponseError::InvalidReplicaAssignment, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_before_the_controller_sees_them() {
        let state = PartitionState::new(vec![1, 2, 3]);
        let code = |t: &[i32], allow| check_target(&state, t, allow).err().map(|e| e.code);
        assert_eq!(
            code(&[], true),
            Some(ResponseError::InvalidReplicaAssignment)
        );
        assert_eq!(
            code(&[1, 1, 2], true),
            Some(ResponseError::InvalidReplicaAssignment)
        );
        assert_eq!(
            code(&[1, 2], false),
            Some(ResponseError::InvalidReplicationFactor)
        );
        assert_eq!(code(&[1, 2], true), None);
        assert_eq!(code(&[4, 5, 6], false), None);
    }
}
