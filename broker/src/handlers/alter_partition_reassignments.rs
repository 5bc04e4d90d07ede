//! AlterPartitionReassignments (KIP-455): move partitions to new replica lists, or cancel a
//! move (`replicas: null`).
//!
//! # Format
//! `{timeout_ms, allow_replication_factor_change (v1), topics: [{name, partitions:
//! [{partition_index, replicas: [broker]? }]}]}` → one error code per partition.
//!
//! Each partition goes through `Registry::admin_reassign` (`cluster/admin/partitions.rs`),
//! which proposes `Reassign` / `CancelReassignment` to the metadata quorum (any broker
//! forwards to the controller, so there is no NOT_CONTROLLER) and waits until this broker has
//! applied the result.
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

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
            let outcome = ctx
                .registry
                .admin_reassign(&t.name, p.partition_index, target, allow_rf_change)
                .await;
            changed |= matches!(outcome, Ok(true));
            let outcome = outcome.map(|_| ());
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
