//! The commands of the metadata log: what a raft entry carries and how it changes
//! [`ClusterMetadata`].
//!
//! `MetaRequest::apply` runs on every node for every committed entry, so it must be a pure,
//! deterministic function of (state, request). It validates first and changes nothing when it
//! rejects a request: a rejection is an ordinary, replicated outcome (`MetaResponse::Rejected`),
//! not a storage error.
//!
//! Requests that would change nothing (fencing a fenced broker, electing a leader that already
//! leads, re-registering the same incarnation) are rejected with a specific error too, so a caller
//! learns that nothing happened; [`RequestError::is_no_op`] tells those apart for callers that
//! retry and want to treat "already done" as success.
//!
//! One file per group of requests: `broker.rs` (registration, fencing, shutdown),
//! `topic.rs` (create, delete, partitions, configs), `partition.rs` (leader/ISR changes,
//! elections, reassignment), `producer_ids.rs`, `scram.rs` (SCRAM credentials), `acls.rs`, `quotas.rs`.

mod acls;
mod broker;
mod partition;
mod producer_ids;
mod quotas;
mod scram;
mod topic;

pub use producer_ids::MAX_BLOCK as MAX_PRODUCER_ID_BLOCK;
pub use scram::ScramUserChange;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::state_machine::{ClusterMetadata, ListenerEndpoint, PartitionState};

/// A change to the cluster metadata: the application data of the raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaRequest {
    /// Sets the cluster id once; proposed by the bootstrapping node.
    InitCluster {
        cluster_id: String,
    },
    /// A broker (re)starts. Brokers register fenced; a new incarnation of a registered broker
    /// replaces the old registration and is fenced like it (it may have lost unflushed data).
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        host: String,
        port: u16,
        /// Named client listeners; empty means clients use `host:port`.
        #[serde(default)]
        listeners: Vec<ListenerEndpoint>,
        rack: Option<String>,
    },
    /// The broker leaves the cluster for good; its leaderships and ISR slots are given up.
    /// Its replica assignments stay (reassign them to move the data).
    UnregisterBroker {
        id: i32,
    },
    /// The broker missed its heartbeats: out of every ISR, leaderships moved to other ISR
    /// members.
    FenceBroker {
        id: i32,
    },
    /// The broker caught up with the metadata log and may lead and join ISRs again.
    UnfenceBroker {
        id: i32,
    },
    /// Controlled shutdown (Kafka's WantShutDown): leaderships move away and the broker leaves
    /// every ISR, so that stopping it loses nothing acknowledged.
    SetShuttingDown {
        id: i32,
    },
    /// Creates a topic; the state machine places the replicas itself (see `placement`)
    /// unless `assignment` names them.
    CreateTopic {
        name: String,
        /// Chosen by the proposer so that apply stays deterministic.
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        /// A manual assignment (CreateTopics' `assignments`): the replicas of each partition,
        /// preferred leader first. `partitions` and `replication_factor` must match it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignment: Option<Vec<Vec<i32>>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows a topic to `count` partitions in total (Kafka's CreatePartitions semantics).
    CreatePartitions {
        name: String,
        count: i32,
    },
    /// Sets (`Some`) or deletes (`None`) topic configs, like IncrementalAlterConfigs.
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// AlterPartition: a leader reports an ISR change, or a controller moves leadership.
    /// Rejected unless `expected_partition_epoch` is the current partition epoch.
    ChangePartition {
        topic: String,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        expected_partition_epoch: i32,
    },
    /// Moves leadership back to the preferred (first) replica where it is in the ISR and
    /// eligible.
    ElectPreferredLeaders {
        scope: ElectionScope,
    },
    /// Unclean election for these partitions (ElectLeaders type UNCLEAN): a leaderless
    /// partition with no eligible ISR member gets an eligible replica outside the ISR.
    ElectUncleanLeaders {
        partitions: Vec<(String, i32)>,
    },
    /// Starts moving a partition to `target` replicas: replicas become target ∪ current until
    /// the new replicas have joined the ISR and `CompleteReassignment` is applied. A target that
    /// only removes replicas completes at once.
    Reassign {
        topic: String,
        partition: i32,
        target: Vec<i32>,
    },
    /// Finishes a reassignment once every added replica is in the ISR.
    CompleteReassignment {
        topic: String,
        partition: i32,
    },
    /// Abandons a reassignment: back to the original replicas.
    CancelReassignment {
        topic: String,
        partition: i32,
    },
    /// Sets (`Some`) or deletes (`None`) dynamic broker configs of `broker` (a broker id, or
    /// `""` for the cluster-wide default), like IncrementalAlterConfigs on a BROKER resource.
    /// Values are validated by the proposing broker; the state machine checks the resource.
    AlterBrokerConfigs {
        broker: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// Hands a block of `count` producer ids to `broker`.
    AllocateProducerIds {
        broker: i32,
        count: i32,
    },
    /// AlterUserScramCredentials: each user's deletions and upsertions, applied per user
    /// atomically (a user whose deletion names a missing credential changes nothing).
    AlterScramCredentials {
        changes: Vec<ScramUserChange>,
    },
    /// A bootstrap credential (`--add-scram`): rejected as a no-op when the user already has
    /// one for this mechanism.
    AddScramCredentialIfAbsent {
        user: String,
        mechanism: spate_auth::ScramMechanism,
        credential: spate_auth::ScramCredential,
    },
    /// CreateAcls: adds the bindings (already validated); existing ones stay as they are.
    CreateAcls {
        acls: Vec<spate_auth::acl::AclBinding>,
    },
    /// DeleteAcls: removes every binding any filter matches, atomically.
    DeleteAcls {
        filters: Vec<spate_auth::acl::AclFilter>,
    },
    /// AlterClientQuotas: per entity, keys set (f64 bits) or removed (`None`).
    AlterClientQuotas {
        entries: Vec<spate_auth::quota::QuotaChange>,
    },
}

/// Which partitions a preferred-leader election looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionScope {
    /// Every partition; partitions that need no election are left out of the result.
    All,
    /// These partitions; each gets a result, including "not needed".
    Partitions(Vec<(String, i32)>),
}

/// What applying a request produced: the raft response type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    /// Applied; nothing to report. Also the response to raft's own blank and membership entries.
    Ok,
    /// The broker's epoch: the metadata offset of its registration.
    BrokerRegistered { epoch: u64 },
    /// A fence/unfence/shutdown/unregister changed this many partitions.
    PartitionsChanged { count: usize },
    /// The topic's partitions as placed.
    TopicCreated {
        id: Uuid,
        partitions: Vec<PartitionState>,
    },
    /// New state of a partition after a change or reassignment step.
    Partition(PartitionState),
    /// One result per partition looked at (see [`ElectionScope`]).
    Elections(Vec<ElectionResult>),
    /// Producer ids `start .. start + count` belong to the requesting broker.
    ProducerIds { start: i64, count: i32 },
    /// One result per user of `AlterScramCredentials`, in order: `None` when applied.
    ScramAltered(Vec<Option<RequestError>>),
    /// Per DeleteAcls filter, the bindings it removed.
    AclsDeleted(Vec<Vec<spate_auth::acl::AclBinding>>),
    /// Nothing changed; see the error.
    Rejected(RequestError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    /// The new leader, or why there is none.
    pub result: Result<i32, RequestError>,
}

/// Why the state machine rejected a request. Deterministic, replicated, and serializable so it
/// travels back to a forwarding node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum RequestError {
    #[error("cluster id is already set to {0:?}")]
    ClusterIdAlreadySet(String),
    #[error("invalid cluster id {0:?}")]
    InvalidClusterId(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {id} is already registered with this incarnation (epoch {epoch})")]
    AlreadyRegistered { id: i32, epoch: u64 },
    #[error("invalid broker registration: {0}")]
    InvalidRegistration(String),
    #[error("broker {0} is already fenced")]
    AlreadyFenced(i32),
    #[error("broker {0} is not fenced")]
    NotFenced(i32),
    #[error("broker {0} is already shutting down")]
    AlreadyShuttingDown(i32),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic id {0} is already in use")]
    TopicIdExists(Uuid),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("partition {topic}-{partition} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// Kafka's own wording, which clients show as is.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("partition {topic}-{partition} is at epoch {current}, request expected {expected}")]
    StalePartitionEpoch {
        topic: String,
        partition: i32,
        expected: i32,
        current: i32,
    },
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("invalid leader: {0}")]
    InvalidLeader(String),
    #[error("broker(s) {0:?} are fenced, shutting down or unregistered and cannot join the ISR")]
    IneligibleReplica(Vec<i32>),
    #[error("the change would leave the partition as it is")]
    NoChange,
    #[error("partition {topic}-{partition} is already led by its preferred replica")]
    ElectionNotNeeded { topic: String, partition: i32 },
    #[error("preferred replica {replica} of {topic}-{partition} is not an eligible ISR member")]
    PreferredLeaderNotAvailable {
        topic: String,
        partition: i32,
        replica: i32,
    },
    #[error("partition {topic}-{partition} has no eligible replica to lead it")]
    EligibleLeadersNotAvailable { topic: String, partition: i32 },
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("partition {topic}-{partition} is being reassigned")]
    ReassignmentInProgress { topic: String, partition: i32 },
    #[error("partition {topic}-{partition} is not being reassigned")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    #[error("reassignment of {topic}-{partition} waits for replicas {waiting:?} to join the ISR")]
    ReassignmentNotCaughtUp {
        topic: String,
        partition: i32,
        waiting: Vec<i32>,
    },
    #[error("invalid producer id request: {0}")]
    InvalidProducerIdRequest(String),
    #[error("producer id space exhausted")]
    ProducerIdsExhausted,
    #[error("Attempt to delete a user credential that does not exist")]
    ScramCredentialNotFound { user: String, mechanism: String },
    #[error("user {user} already has a {mechanism} credential")]
    ScramCredentialExists { user: String, mechanism: String },
}

impl RequestError {
    /// Rejections meaning "this is already so": a retried request that was applied before gets
    /// one of these.
    pub fn is_no_op(&self) -> bool {
        matches!(
            self,
            RequestError::ClusterIdAlreadySet(_)
                | RequestError::AlreadyRegistered { .. }
                | RequestError::AlreadyFenced(_)
                | RequestError::NotFenced(_)
                | RequestError::AlreadyShuttingDown(_)
                | RequestError::NoChange
                | RequestError::ElectionNotNeeded { .. }
                | RequestError::ScramCredentialExists { .. }
        )
    }

    /// The closest Kafka protocol error code, for the wire edge.
    pub fn kafka_error_code(&self) -> i16 {
        use RequestError::*;
        match self {
            UnknownTopic(_) | UnknownPartition { .. } => 3,
            InvalidTopicName { .. } => 17,
            TopicExists(_) | TopicIdExists(_) => 36,
            InvalidPartitions(_) => 37,
            InvalidReplicationFactor(_) => 38,
            InvalidReplicaAssignment(_) => 39,
            InvalidConfig(_) => 40,
            ReassignmentInProgress { .. } => 60,
            PreferredLeaderNotAvailable { .. } => 80,
            EligibleLeadersNotAvailable { .. } => 83,
            ElectionNotNeeded { .. } => 84,
            NoReassignmentInProgress { .. } => 85,
            StalePartitionEpoch { .. } => 95,
            AlreadyRegistered { .. } => 101,
            UnknownBroker(_) => 102,
            IneligibleReplica(_) => 107,
            ScramCredentialNotFound { .. } => 91,
            _ => 42,
        }
    }
}

impl MetaRequest {
    /// The variant's name, for traces and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaRequest::InitCluster { .. } => "InitCluster",
            MetaRequest::RegisterBroker { .. } => "RegisterBroker",
            MetaRequest::UnregisterBroker { .. } => "UnregisterBroker",
            MetaRequest::FenceBroker { .. } => "FenceBroker",
            MetaRequest::UnfenceBroker { .. } => "UnfenceBroker",
            MetaRequest::SetShuttingDown { .. } => "SetShuttingDown",
            MetaRequest::CreateTopic { .. } => "CreateTopic",
            MetaRequest::DeleteTopic { .. } => "DeleteTopic",
            MetaRequest::CreatePartitions { .. } => "CreatePartitions",
            MetaRequest::AlterTopicConfigs { .. } => "AlterTopicConfigs",
            MetaRequest::ChangePartition { .. } => "ChangePartition",
            MetaRequest::ElectPreferredLeaders { .. } => "ElectPreferredLeaders",
            MetaRequest::ElectUncleanLeaders { .. } => "ElectUncleanLeaders",
            MetaRequest::Reassign { .. } => "Reassign",
            MetaRequest::CompleteReassignment { .. } => "CompleteReassignment",
            MetaRequest::CancelReassignment { .. } => "CancelReassignment",
            MetaRequest::AlterBrokerConfigs { .. } => "AlterBrokerConfigs",
            MetaRequest::AllocateProducerIds { .. } => "AllocateProducerIds",
            MetaRequest::AlterScramCredentials { .. } => "AlterScramCredentials",
            MetaRequest::AddScramCredentialIfAbsent { .. } => "AddScramCredentialIfAbsent",
            MetaRequest::CreateAcls { .. } => "CreateAcls",
            MetaRequest::DeleteAcls { .. } => "DeleteAcls",
            MetaRequest::AlterClientQuotas { .. } => "AlterClientQuotas",
        }
    }

    /// Applies the request to `md`, whose `metadata_offset` is already the index of the entry
    /// carrying it. Leaves `md` untouched when it returns `Rejected`.
    pub fn apply(&self, md: &mut ClusterMetadata) -> MetaResponse {
        let result = match self {
            MetaRequest::InitCluster { cluster_id } => init_cluster(md, cluster_id),
            MetaRequest::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                listeners,
                rack,
            } => broker::register(
                md,
                *id,
                *incarnation,
                (host, *port),
                listeners,
                rack.as_deref(),
            ),
            MetaRequest::UnregisterBroker { id } => broker::unregister(md, *id),
            MetaRequest::FenceBroker { id } => broker::fence(md, *id),
            MetaRequest::UnfenceBroker { id } => broker::unfence(md, *id),
            MetaRequest::SetShuttingDown { id } => broker::shut_down(md, *id),
            MetaRequest::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                configs,
                assignment,
            } => match assignment {
                None => topic::create(md, name, *id, *partitions, *replication_factor, configs),
                Some(a) => topic::create_assigned(md, name, *id, a, configs),
            },
            MetaRequest::DeleteTopic { name } => topic::delete(md, name),
            MetaRequest::CreatePartitions { name, count } => {
                topic::create_partitions(md, name, *count)
            }
            MetaRequest::AlterTopicConfigs { name, configs } => {
                topic::alter_configs(md, name, configs)
            }
            MetaRequest::ChangePartition {
                topic,
                partition,
                leader,
                isr,
                expected_partition_epoch,
            } => partition::change(
                md,
                topic,
                *partition,
                *leader,
                isr.as_deref(),
                *expected_partition_epoch,
            ),
            MetaRequest::ElectPreferredLeaders { scope } => partition::elect_preferred(md, scope),
            MetaRequest::ElectUncleanLeaders { partitions } => {
                Ok(partition::elect_unclean(md, partitions))
            }
            MetaRequest::Reassign {
                topic,
                partition,
                target,
            } => partition::reassign(md, topic, *partition, target),
            MetaRequest::CompleteReassignment { topic, partition } => {
                partition::complete_reassignment(md, topic, *partition)
            }
            MetaRequest::CancelReassignment { topic, partition } => {
                partition::cancel_reassignment(md, topic, *partition)
            }
            MetaRequest::AlterBrokerConfigs { broker, configs } => {
                alter_broker_configs(md, broker, configs)
            }
            MetaRequest::AllocateProducerIds { broker, count } => {
                producer_ids::allocate(md, *broker, *count)
            }
            MetaRequest::AlterScramCredentials { changes } => Ok(scram::alter(md, changes)),
            MetaRequest::AddScramCredentialIfAbsent {
                user,
                mechanism,
                credential,
            } => scram::add_if_absent(md, user, *mechanism, credential),
            MetaRequest::CreateAcls { acls: bindings } => Ok(acls::create(md, bindings)),
            MetaRequest::DeleteAcls { filters } => Ok(acls::delete(md, filters)),
            MetaRequest::AlterClientQuotas { entries } => Ok(quotas::alter(md, entries)),
        };
        // Topics with unclean.leader.election.enable: whatever left a partition without an
        // eligible ISR member (or made a replica eligible, or turned the setting on) may let
        // another replica lead it now. Deterministic, so every replica of the log agrees.
        if result.is_ok()
            && matches!(
                self,
                MetaRequest::RegisterBroker { .. }
                    | MetaRequest::UnregisterBroker { .. }
                    | MetaRequest::FenceBroker { .. }
                    | MetaRequest::UnfenceBroker { .. }
                    | MetaRequest::SetShuttingDown { .. }
                    | MetaRequest::AlterTopicConfigs { .. }
                    | MetaRequest::ChangePartition { .. }
            )
        {
            md.elect_unclean(None, false);
        }
        result.unwrap_or_else(MetaResponse::Rejected)
    }
}

fn init_cluster(md: &mut ClusterMetadata, cluster_id: &str) -> Result<MetaResponse, RequestError> {
    if !md.cluster_id.is_empty() {
        return Err(RequestError::ClusterIdAlreadySet(md.cluster_id.clone()));
    }
    if cluster_id.is_empty() || cluster_id.len() > 64 {
        return Err(RequestError::InvalidClusterId(cluster_id.to_string()));
    }
    md.cluster_id = cluster_id.to_string();
    Ok(MetaResponse::Ok)
}

fn alter_broker_configs(
    md: &mut ClusterMetadata,
    broker: &str,
    configs: &BTreeMap<String, Option<String>>,
) -> Result<MetaResponse, RequestError> {
    // Kafka accepts configs for broker ids that are not registered (yet): a broker added
    // later picks them up. Only the resource name's shape is checked.
    if !broker.is_empty() && !broker.parse::<i32>().is_ok_and(|id| id >= 0) {
        return Err(RequestError::InvalidConfig(format!(
            "invalid broker resource {broker:?}"
        )));
    }
    let mut next = md.broker_configs.get(broker).cloned().unwrap_or_default();
    for (k, v) in configs {
        match v {
            Some(v) => next.insert(k.clone(), v.clone()),
            None => next.remove(k),
        };
    }
    if md
        .broker_configs
        .get(broker)
        .map_or(next.is_empty(), |c| *c == next)
    {
        return Err(RequestError::NoChange);
    }
    if next.is_empty() {
        md.broker_configs.remove(broker);
    } else {
        md.broker_configs.insert(broker.to_string(), next);
    }
    Ok(MetaResponse::Ok)
}

/// Looks up a partition by Kafka's `i32` index.
fn partition_index(
    md: &ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<usize, RequestError> {
    let t = md
        .topics
        .get(topic)
        .ok_or_else(|| RequestError::UnknownTopic(topic.to_string()))?;
    usize::try_from(partition)
        .ok()
        .filter(|p| *p < t.partitions.len())
        .ok_or_else(|| RequestError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })
}

#[cfg(test)]
mod tests;
