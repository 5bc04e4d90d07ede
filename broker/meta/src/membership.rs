//! Changes to the quorum's membership and the leader's view of it (Kafka's KIP-853 and
//! DescribeQuorum).
//!
//! Voters vote and count for commits; learners (Kafka's observers: broker-only nodes) receive
//! the replicated log but do not vote. Every change runs on the leader ([`apply_on_leader`]);
//! other nodes forward it over gRPC (`ChangeMembership`). Changes are idempotent, because
//! nodes repeat them on every start: joining again with the same address changes nothing, and
//! joining with a new address (a restarted pod with a new IP) replaces the stored address.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};

use crate::types::{NodeId, Raft};

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A node asks to receive the log without voting. Already a member with this address:
    /// nothing to do; with another address: the address is updated.
    JoinAsLearner { node_id: NodeId, addr: String },
    /// A decommissioned learner stops receiving the log. Refused for a voter.
    RemoveLearner { node_id: NodeId },
    /// Promotes a node to voter once it has caught up. `addr` is needed unless the node is
    /// already a learner.
    AddVoter {
        node_id: NodeId,
        addr: Option<String>,
    },
    /// Demotes a voter; it stays a learner (it keeps receiving the log, as a Kafka observer),
    /// so a running broker keeps its metadata. Refused for the last voter.
    RemoveVoter { node_id: NodeId },
}

/// The leader's answer to a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipReply {
    /// Done (or nothing was needed).
    Done,
    /// The receiver is not the leader; try `leader` if known.
    NotLeader { leader: Option<(NodeId, String)> },
    /// Another membership change is still being committed; try again shortly.
    Busy(String),
    /// Refused; retrying will not help.
    Refused(String),
}

/// One member of the quorum as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    pub node_id: NodeId,
    /// The gRPC address stored in the membership.
    pub addr: String,
    /// Index of the last log entry the leader knows this node holds; `None`: nothing yet.
    pub matched_index: Option<u64>,
}

/// The quorum as its leader sees it (what Kafka's DescribeQuorum reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    pub leader_id: NodeId,
    pub term: u64,
    /// Index of the last committed entry; `None`: nothing committed yet.
    pub commit_index: Option<u64>,
    /// Index of the leader's last log entry.
    pub last_log_index: Option<u64>,
    pub voters: Vec<ReplicaView>,
    /// Learners.
    pub observers: Vec<ReplicaView>,
}

/// The answer to a forwarded DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumReply {
    View(QuorumView),
    NotLeader { leader: Option<(NodeId, String)> },
}

type Metrics = RaftMetrics<NodeId, BasicNode>;

fn is_leader(m: &Metrics) -> bool {
    m.state == ServerState::Leader && m.current_leader == Some(m.id)
}

/// The leader known to `m`, with its address.
pub(crate) fn leader_hint(m: &Metrics) -> Option<(NodeId, String)> {
    m.current_leader.and_then(|id| {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| (id, n.addr.clone()))
    })
}

/// The quorum as `raft` sees it, if it leads. `commit_index` comes from the log store (openraft
/// 0.9's metrics do not carry it).
pub(crate) fn quorum_view(raft: &Raft, commit_index: Option<u64>) -> QuorumReply {
    let m = raft.metrics().borrow().clone();
    if !is_leader(&m) {
        return QuorumReply::NotLeader {
            leader: leader_hint(&m),
        };
    }
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let matched = m.replication.clone().unwrap_or_default();
    let view = |id: NodeId| ReplicaView {
        node_id: id,
        addr: membership
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        matched_index: if id == m.id {
            m.last_log_index
        } else {
            matched.get(&id).copied().flatten().map(|l| l.index)
        },
    };
    QuorumReply::View(QuorumView {
        leader_id: m.id,
        term: m.current_term,
        commit_index: commit_index.max(m.last_applied.map(|l| l.index)),
        last_log_index: m.last_log_index,
        voters: voters.iter().copied().map(view).collect(),
        observers: membership
            .learner_ids()
            .filter(|id| !voters.contains(id))
            .map(view)
            .collect(),
    })
}

/// Runs `change` if `raft` leads. `timeout` bounds the wait for a new voter to catch up and
/// for the change to commit.
pub(crate) async fn apply_on_leader(
    raft: &Raft,
    change: MembershipChange,
    timeout: Duration,
) -> MembershipReply {
    match tokio::time::timeout(timeout, apply(raft, change)).await {
        Ok(reply) => reply,
        Err(_) => MembershipReply::Busy(format!("the change did not commit within {timeout:?}")),
    }
}

async fn apply(raft: &Raft, change: MembershipChange) -> MembershipReply {
    let m = raft.metrics().borrow().clone();
    if !is_leader(&m) {
        return MembershipReply::NotLeader {
            leader: leader_hint(&m),
        };
    }
    let membership = m.membership_config.membership();
    let is_voter = |id: &NodeId| membership.voter_ids().any(|v| v == *id);
    let result = match change {
        MembershipChange::JoinAsLearner { node_id, addr } => {
            match membership.get_node(&node_id) {
                Some(node) if node.addr == addr => return MembershipReply::Done,
                Some(node) => {
                    // `add_learner` keeps an existing node's address; SetNodes replaces it. Safe
                    // here: the id stays the same process's, only its address moved.
                    tracing::info!(node_id, old = %node.addr, new = %addr, "updating a member's address");
                    let nodes = BTreeMap::from([(node_id, BasicNode::new(addr))]);
                    raft.change_membership(ChangeMembers::SetNodes(nodes), true)
                        .await
                        .map(|_| ())
                }
                None => {
                    tracing::info!(node_id, %addr, "adding a learner");
                    raft.add_learner(node_id, BasicNode::new(addr), false)
                        .await
                        .map(|_| ())
                }
            }
        }
        MembershipChange::RemoveLearner { node_id } => {
            if is_voter(&node_id) {
                return MembershipReply::Refused(format!(
                    "node {node_id} is a voter; remove it as a voter first"
                ));
            }
            if membership.get_node(&node_id).is_none() {
                return MembershipReply::Done;
            }
            tracing::info!(node_id, "removing a learner");
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), true)
                .await
                .map(|_| ())
        }
        MembershipChange::AddVoter { node_id, addr } => {
            if is_voter(&node_id) {
                return MembershipReply::Done;
            }
            let known = membership.get_node(&node_id).map(|n| n.addr.clone());
            let Some(addr) = addr.or(known) else {
                return MembershipReply::Refused(format!(
                    "node {node_id} is not a learner and no address was given"
                ));
            };
            tracing::info!(node_id, %addr, "adding a voter");
            // Blocks until the node has caught up, so the quorum never waits for a laggard.
            match raft.add_learner(node_id, BasicNode::new(addr), true).await {
                Ok(_) => raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), true)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        MembershipChange::RemoveVoter { node_id } => {
            if !is_voter(&node_id) {
                return MembershipReply::Done;
            }
            if membership.voter_ids().count() == 1 {
                return MembershipReply::Refused(format!("node {node_id} is the last voter"));
            }
            tracing::info!(node_id, "removing a voter");
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node_id])), true)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => MembershipReply::Done,
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            MembershipReply::NotLeader {
                leader: to.leader_id.zip(to.leader_node.map(|n| n.addr)),
            }
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::InProgress(_),
        ))) => MembershipReply::Busy(e.to_string()),
        Err(e) => MembershipReply::Refused(e.to_string()),
    }
}
