//! One file per Kafka API; `dispatch` routes a decoded request to its handler.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster_gate;
pub mod cluster_view;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod groups_admin;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;
pub mod raft_voters;
pub mod sasl;
pub mod sync_group;
pub mod txn_common;
pub mod txn_offset_commit;
pub mod unregister_broker;
pub mod write_txn_markers;

use crate::context::Context;
use crate::protocol::{Request, RequestEnvelope, Response};
use crate::security::RequestContext;

/// Runs one request that arrived on `listener`. `None` means the client expects no response
/// (Produce with acks=0).
pub async fn dispatch(
    ctx: &Context,
    env: RequestEnvelope,
    rc: &RequestContext,
) -> Option<Response> {
    let v = env.version;
    let client_id = env.client_id.unwrap_or_default();
    if let Some(refused) = cluster_gate::check(ctx, rc, &env.body) {
        return Some(refused);
    }
    Some(match env.body {
        Request::ApiVersions(r) => Response::ApiVersions(api_versions::handle(r)),
        Request::Metadata(r) => Response::Metadata(metadata::handle(ctx, v, r, rc).await),
        Request::Produce(r) => Response::Produce(produce::handle(ctx, rc, r).await?),
        Request::Fetch(r) => Response::Fetch(fetch::handle(ctx, rc, v, r).await),
        Request::ListOffsets(r) => Response::ListOffsets(list_offsets::handle(ctx, rc, v, r)),
        Request::CreateTopics(r) => {
            Response::CreateTopics(create_topics::handle(ctx, rc, v, r).await)
        }
        Request::DeleteTopics(r) => {
            Response::DeleteTopics(delete_topics::handle(ctx, rc, v, r).await)
        }
        Request::CreatePartitions(r) => {
            Response::CreatePartitions(create_partitions::handle(ctx, rc, r).await)
        }
        Request::DeleteRecords(r) => Response::DeleteRecords(delete_records::handle(ctx, rc, r)),
        Request::DescribeConfigs(r) => {
            Response::DescribeConfigs(describe_configs::handle(ctx, rc, r))
        }
        Request::AlterConfigs(r) => Response::AlterConfigs(alter_configs::handle(ctx, rc, r).await),
        Request::IncrementalAlterConfigs(r) => {
            Response::IncrementalAlterConfigs(alter_configs::handle_incremental(ctx, rc, r).await)
        }
        Request::DescribeCluster(r) => {
            Response::DescribeCluster(describe_cluster::handle(ctx, r, rc))
        }
        Request::AlterPartitionReassignments(r) => Response::AlterPartitionReassignments(
            alter_partition_reassignments::handle(ctx, v, r).await,
        ),
        Request::ListPartitionReassignments(r) => {
            Response::ListPartitionReassignments(list_partition_reassignments::handle(ctx, r))
        }
        Request::ElectLeaders(r) => Response::ElectLeaders(elect_leaders::handle(ctx, v, r).await),
        Request::InitProducerId(r) => {
            Response::InitProducerId(init_producer_id::handle(ctx, rc, v, r).await)
        }
        Request::FindCoordinator(r) => {
            Response::FindCoordinator(find_coordinator::handle(ctx, rc, v, r).await)
        }
        Request::JoinGroup(r) => {
            Response::JoinGroup(join_group::handle(ctx, rc, v, &client_id, r).await)
        }
        Request::SyncGroup(r) => Response::SyncGroup(sync_group::handle(ctx, rc, r).await),
        Request::Heartbeat(r) => Response::Heartbeat(heartbeat::handle(ctx, rc, r)),
        Request::LeaveGroup(r) => Response::LeaveGroup(leave_group::handle(ctx, rc, v, r)),
        Request::OffsetCommit(r) => Response::OffsetCommit(offset_commit::handle(ctx, rc, r).await),
        Request::OffsetFetch(r) => Response::OffsetFetch(offset_fetch::handle(ctx, rc, v, r)),
        Request::ListGroups(r) => Response::ListGroups(groups_admin::list(ctx, rc, r)),
        Request::DescribeGroups(r) => Response::DescribeGroups(groups_admin::describe(ctx, rc, r)),
        Request::DeleteGroups(r) => Response::DeleteGroups(groups_admin::delete(ctx, rc, r).await),
        Request::OffsetDelete(r) => {
            Response::OffsetDelete(groups_admin::delete_offsets(ctx, rc, r).await)
        }
        Request::ConsumerGroupDescribe(r) => {
            Response::ConsumerGroupDescribe(consumer_group_describe::handle(ctx, rc, r))
        }
        Request::ConsumerGroupHeartbeat(r) => Response::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(ctx, rc, &client_id, r),
        ),
        Request::DescribeQuorum(r) => {
            Response::DescribeQuorum(describe_quorum::handle(ctx, r).await)
        }
        Request::UnregisterBroker(r) => {
            Response::UnregisterBroker(unregister_broker::handle(ctx, r).await)
        }
        Request::AddRaftVoter(r) => Response::AddRaftVoter(raft_voters::add(ctx, r).await),
        Request::RemoveRaftVoter(r) => Response::RemoveRaftVoter(raft_voters::remove(ctx, r).await),
        Request::AddPartitionsToTxn(r) => {
            Response::AddPartitionsToTxn(add_partitions_to_txn::handle(ctx, rc, v, r).await)
        }
        Request::AddOffsetsToTxn(r) => {
            Response::AddOffsetsToTxn(add_offsets_to_txn::handle(ctx, rc, v, r).await)
        }
        Request::TxnOffsetCommit(r) => {
            Response::TxnOffsetCommit(txn_offset_commit::handle(ctx, rc, v, r).await)
        }
        Request::EndTxn(r) => Response::EndTxn(end_txn::handle(ctx, rc, v, r).await),
        Request::WriteTxnMarkers(r) => {
            Response::WriteTxnMarkers(write_txn_markers::handle(ctx, r).await)
        }
        Request::DescribeProducers(r) => {
            Response::DescribeProducers(describe_producers::handle(ctx, rc, r))
        }
        Request::DescribeTransactions(r) => {
            Response::DescribeTransactions(describe_transactions::handle(ctx, rc, r))
        }
        Request::ListTransactions(r) => {
            Response::ListTransactions(list_transactions::handle(ctx, rc, r))
        }
        Request::SaslHandshake(_) => Response::SaslHandshake(sasl::handshake()),
        Request::SaslAuthenticate(_) => Response::SaslAuthenticate(sasl::authenticate()),
        Request::DescribeUserScramCredentials(r) => {
            Response::DescribeUserScramCredentials(describe_user_scram_credentials::handle(ctx, r))
        }
        Request::AlterUserScramCredentials(r) => Response::AlterUserScramCredentials(
            alter_user_scram_credentials::handle(ctx, r.0).await,
        ),
        Request::DescribeAcls(r) => Response::DescribeAcls(acls::describe(ctx, rc, r)),
        Request::CreateAcls(r) => Response::CreateAcls(acls::create(ctx, rc, r).await),
        Request::DeleteAcls(r) => Response::DeleteAcls(acls::delete(ctx, rc, r).await),
        Request::DescribeClientQuotas(r) => {
            Response::DescribeClientQuotas(client_quotas::describe(ctx, rc, r))
        }
        Request::AlterClientQuotas(r) => {
            Response::AlterClientQuotas(client_quotas::alter(ctx, rc, r).await)
        }
    })
}
