//! APIs that need one operation on the cluster for the whole request (Kafka's
//! `authorizeClusterOperation`), answered here with CLUSTER_AUTHORIZATION_FAILED in each
//! API's own shape before their handler runs. Per-resource checks live in the handlers.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use spate_auth::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::context::Context;
use crate::protocol::{Request, Response};
use crate::security::RequestContext;

/// The cluster operation a request needs as a whole, if any.
pub fn required(body: &Request) -> Option<Operation> {
    Some(match body {
        Request::AlterPartitionReassignments(_)
        | Request::ElectLeaders(_)
        | Request::UnregisterBroker(_)
        | Request::AddRaftVoter(_)
        | Request::RemoveRaftVoter(_)
        | Request::AlterUserScramCredentials(_) => Operation::Alter,
        Request::ListPartitionReassignments(_)
        | Request::DescribeQuorum(_)
        | Request::DescribeUserScramCredentials(_) => Operation::Describe,
        Request::WriteTxnMarkers(_) => Operation::ClusterAction,
        _ => return None,
    })
}

/// `None` when the request may go on; else the refusal to send.
pub fn check(ctx: &Context, rc: &RequestContext, body: &Request) -> Option<Response> {
    let op = required(body)?;
    if ctx
        .authz
        .allows(rc, op, ResourceType::Cluster, CLUSTER_NAME)
    {
        return None;
    }
    Some(denied(body))
}

fn denied(body: &Request) -> Response {
    let code = ResponseError::ClusterAuthorizationFailed.code();
    match body {
        Request::AlterPartitionReassignments(_) => Response::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        Request::ListPartitionReassignments(_) => Response::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        Request::ElectLeaders(r) => Response::ElectLeaders(
            ElectLeadersResponse::default()
                .with_error_code(code)
                .with_replica_election_results(
                    r.topic_partitions
                        .iter()
                        .flatten()
                        .map(|t| {
                            ReplicaElectionResult::default()
                                .with_topic(t.topic.clone())
                                .with_partition_result(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            PartitionResult::default()
                                                .with_partition_id(*p)
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        ),
        Request::UnregisterBroker(_) => {
            Response::UnregisterBroker(UnregisterBrokerResponse::default().with_error_code(code))
        }
        Request::AddRaftVoter(_) => {
            Response::AddRaftVoter(AddRaftVoterResponse::default().with_error_code(code))
        }
        Request::RemoveRaftVoter(_) => {
            Response::RemoveRaftVoter(RemoveRaftVoterResponse::default().with_error_code(code))
        }
        Request::DescribeQuorum(_) => {
            Response::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(code))
        }
        Request::DescribeUserScramCredentials(_) => Response::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_error_code(code),
        ),
        Request::AlterUserScramCredentials(r) => {
            let mut users: Vec<_> =
                r.0.deletions
                    .iter()
                    .map(|d| d.name.clone())
                    .chain(r.0.upsertions.iter().map(|u| u.name.clone()))
                    .collect();
            users.dedup();
            Response::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|u| {
                            AlterUserScramCredentialsResult::default()
                                .with_user(u)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            )
        }
        Request::WriteTxnMarkers(r) => Response::WriteTxnMarkers(
            WriteTxnMarkersResponse::default().with_markers(
                r.markers
                    .iter()
                    .map(|m| {
                        WritableTxnMarkerResult::default()
                            .with_producer_id(m.producer_id)
                            .with_topics(
                                m.topics
                                    .iter()
                                    .map(|t| {
                                        WritableTxnMarkerTopicResult::default()
                                            .with_name(t.name.clone())
                                            .with_partitions(
                                                t.partition_indexes
                                                    .iter()
                                                    .map(|p| {
                                                        WritableTxnMarkerPartitionResult::default()
                                                            .with_partition_index(*p)
                                                            .with_error_code(code)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        // `required` names only the APIs above.
        _ => Response::ApiVersions(ApiVersionsResponse::default().with_error_code(code)),
    }
}
