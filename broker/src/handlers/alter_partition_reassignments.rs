//! AlterPartitionReassignments (KIP-455): move partitions to new replica lists, or cancel a
//! move (`replicas: null`).
//!
//! # Format
//! `{timeout_ms, allow_replication_factor_change (v1), topics: [{name, partitions:
//! [{partition_index, replicas: [broker]? }]}]}` → one error code per partition.
//!
//! Cluster mode proposes `Reassign` / `CancelReassignment` to the metadata quorum (any broker
//! forwards to the controller, so there is no NOT_CONTROLLER) and waits until this broker has
//! applied the result. Completing the move is `cluster/reassignment.rs`. As in Kafka, a target
//! equal to the current replicas is a successful no-op; unlike Kafka, a new target for a
//! partition already being moved is refused (REASSIGNMENT_IN_PROGRESS): cancel it first.
//! A single node answers for its own partitions only: `[self]` is a no-op, anything else
//! INVALID_REPLICA_ASSIGNMENT.
use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use spate_meta::{ClusterMetadata, MetaRequest, PartitionState};

use crate::cluster::quorum::APPLY_TIMEOUT;
use crate::cluster::{AdminError, Quorum};
use crate::context::{str_bytes, Context};

/// `allow_replication_factor_change` exists from v1 on; v0 always allows it.
const RF_CHANGE_FLAG_VERSION: i16 = 1;

pub async fn handle(
    ctx: &Context,
    version: i16,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version < RF_CHANGE_FLAG_VERSION || req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    let mut changed = false;
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let outcome = match ctx.registry.quorum() {
                Some(q) => {
                    let outcome =
                        reassign(ctx, q, &t.name, p.partition_index, target, allow_rf_change).await;
                    changed |= matches!(outcome, Ok(true));
                    outcome.map(|_| ())
                }
                None => single_node(ctx, &t.name, p.partition_index, target.as_deref()),
            };
            let result =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    if changed {
        // Open the new replicas here now, rather than on the applier's next turn.
        ctx.registry.sync().await;
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
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

/// Proposes the reassignment or its cancellation; `Ok(true)` when the metadata changed.
async fn reassign(
    ctx: &Context,
    q: &Arc<Quorum>,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> Result<bool, AdminError> {
    let state = current(&q.metadata(), topic, partition)?;
    let Some(target) = target else {
        // Cancel; the state machine answers NO_REASSIGNMENT_IN_PROGRESS if there is none.
        let epoch = state.partition_epoch;
        q.propose(MetaRequest::CancelReassignment {
            topic: topic.to_string(),
            partition,
        })
        .await?;
        wait_past(q, topic, partition, epoch).await;
        return Ok(true);
    };
    if !state.is_reassigning() && target == state.replicas {
        return Ok(false);
    }
    if target.is_empty() {
        return Err(invalid_assignment("The replica list is empty."));
    }
    if target.iter().collect::<BTreeSet<_>>().len() != target.len() {
        return Err(invalid_assignment(format!(
            "The replica list {target:?} contains duplicates."
        )));
    }
    let original: Vec<i32> = state
        .replicas
        .iter()
        .copied()
        .filter(|r| !state.adding.contains(r))
        .collect();
    if !allow_rf_change && target.len() != original.len() {
        return Err(AdminError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {} to {} but allowReplicationFactorChange is false",
                original.len(),
                target.len()
            ),
        ));
    }
    // Without follower fetching a new replica would never catch up and the move never end.
    if !ctx.config.replication_enable && target.iter().any(|r| !state.replicas.contains(r)) {
        return Err(invalid_assignment(
            "Adding replicas needs replication.enable=true on every broker.",
        ));
    }
    let epoch = state.partition_epoch;
    q.propose(MetaRequest::Reassign {
        topic: topic.to_string(),
        partition,
        target,
    })
    .await?;
    wait_past(q, topic, partition, epoch).await;
    Ok(true)
}

/// Waits until this broker's metadata shows the partition past `epoch`.
async fn wait_past(q: &Quorum, topic: &str, partition: i32, epoch: i32) {
    q.wait_for(APPLY_TIMEOUT, |md| {
        current(md, topic, partition).map_or(true, |p| p.partition_epoch > epoch)
    })
    .await;
}

fn single_node(
    ctx: &Context,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<(), AdminError> {
    let known = ctx
        .registry
        .topic(topic)
        .is_some_and(|t| t.partition(partition).is_some());
    if !known {
        return Err(AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find partition {topic}-{partition}."),
        ));
    }
    match target {
        None => Err(AdminError::new(
            ResponseError::NoReassignmentInProgress,
            format!("No ongoing reassignment for partition {topic}-{partition}."),
        )),
        Some([only]) if *only == ctx.config.node_id => Ok(()),
        Some(_) => Err(invalid_assignment(format!(
            "A single broker can only assign partitions to itself (broker {}).",
            ctx.config.node_id
        ))),
    }
}

fn invalid_assignment(message: impl Into<String>) -> AdminError {
    AdminError::new(ResponseError::InvalidReplicaAssignment, message)
}
