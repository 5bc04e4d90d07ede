//! Talking to the brokers: a small Kafka admin client and the trait reconcilers use.
//!
//! - `connection.rs`: one TCP connection, size-prefixed framing, correlation ids, and
//!   ApiVersions negotiation (each request goes at the highest version both sides speak).
//! - `client.rs`: `AdminClient`, the Kafka implementation of [`KafkaAdmin`].
//! - `security.rs`: the wire side of the security admin APIs `AdminClient` delegates to
//!   (SCRAM credentials, ACLs, client quotas).
//!
//! Reconcilers see only [`KafkaAdmin`] and [`Connector`], so scenario tests run them against
//! an in-memory cluster while `tests/kafka_client.rs` checks the wire client against a fake
//! broker (and the real `spate-broker` when it has been built).

pub mod client;
pub mod connection;
pub mod security;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;

pub use client::{AdminClient, TcpConnector};
/// Kafka's ACL model (bindings and filters with the wire codes), shared with the broker.
pub use spate_auth::acl::{AclBinding, AclFilter};
pub use spate_auth::ScramMechanism;

/// Kafka error codes the operator acts on.
pub mod codes {
    /// The topic or partition does not exist.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// The broker does not speak the version we sent.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// CreateTopics for a topic that exists.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// CreatePartitions with a count not above the current one.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// Fewer brokers than the replication factor.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// A topic config the broker refuses.
    pub const INVALID_CONFIG: i16 = 40;
    /// The preferred leader already leads.
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    /// Cancelling a reassignment that is not running.
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    /// The ACL APIs on a cluster without an authorizer.
    pub const SECURITY_DISABLED: i16 = 54;
    /// Describing or deleting a SCRAM credential that does not exist.
    pub const RESOURCE_NOT_FOUND: i16 = 91;
}

/// Why a Kafka admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// Connecting, reading or writing failed.
    #[error("{addr}: {source}")]
    Io {
        /// The broker address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("{0}: timed out")]
    Timeout(String),
    /// Bytes that are not the response we expected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker does not support an API the operator needs.
    #[error("broker does not support {0}")]
    Unsupported(&'static str),
    /// The broker answered with an error code.
    #[error("{api} failed for {resource}: error {code} {message}")]
    Api {
        /// The API (`CreateTopics`, ...).
        api: &'static str,
        /// Topic or resource the error is about.
        resource: String,
        /// Kafka error code.
        code: i16,
        /// The error name and the broker's message.
        message: String,
    },
}

impl KafkaError {
    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            KafkaError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the broker could not be reached at all (as opposed to refusing a request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, KafkaError::Io { .. } | KafkaError::Timeout(_))
    }
}

/// One broker as the cluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers are registered but not serving.
    pub fenced: bool,
}

/// One partition's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader id, -1 when offline.
    pub leader: i32,
    /// Replica ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replica ids.
    pub isr: Vec<i32>,
}

/// One topic's partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID).
    pub id: String,
    /// Partitions, by index.
    pub partitions: Vec<PartitionInfo>,
}

/// What a Metadata request tells about the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Live brokers.
    pub brokers: Vec<BrokerInfo>,
    /// Topics (internal ones included).
    pub topics: Vec<TopicInfo>,
}

/// A topic-partition, as `(topic, partition)`.
pub type TopicPartition = (String, i32);

impl ClusterMetadata {
    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// Partitions whose ISR is smaller than their replica set.
    pub fn under_replicated(&self) -> Vec<TopicPartition> {
        self.partitions()
            .filter(|(_, p)| p.isr.len() < p.replicas.len())
            .map(|(t, p)| (t.to_string(), p.partition))
            .collect()
    }

    /// Partitions without a leader.
    pub fn offline(&self) -> Vec<TopicPartition> {
        self.partitions()
            .filter(|(_, p)| p.leader < 0)
            .map(|(t, p)| (t.to_string(), p.partition))
            .collect()
    }

    /// Partitions whose leader is not their preferred (first) replica while that replica
    /// is in sync: candidates for a preferred leader election.
    pub fn not_preferred_leader(&self) -> Vec<TopicPartition> {
        self.partitions()
            .filter(|(_, p)| {
                p.replicas
                    .first()
                    .is_some_and(|first| *first != p.leader && p.isr.contains(first))
            })
            .map(|(t, p)| (t.to_string(), p.partition))
            .collect()
    }

    /// Every partition's replica list.
    pub fn assignment(&self) -> crate::plan::Assignment {
        self.partitions()
            .map(|(t, p)| ((t.to_string(), p.partition), p.replicas.clone()))
            .collect()
    }

    /// Every broker id that hosts a replica or is registered.
    pub fn broker_ids(&self) -> BTreeSet<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }

    fn partitions(&self) -> impl Iterator<Item = (&str, &PartitionInfo)> {
        self.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
    }
}

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic-level configs.
    pub configs: BTreeMap<String, String>,
}

/// A topic config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Current value (None for sensitive or unset).
    pub value: Option<String>,
    /// Whether the value was set on the topic (not inherited from the broker or defaults).
    pub is_topic_override: bool,
}

/// Move a partition to `replicas` (first = preferred leader); `None` cancels a running move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Target replicas.
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment the cluster is carrying out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Current replica set (old and new).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// One SCRAM credential to store, as AlterUserScramCredentials carries it: the broker derives
/// StoredKey and ServerKey from the salted password, so the password itself never leaves the
/// operator.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsert {
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: ScramMechanism,
    /// PBKDF2 iterations (Kafka accepts 4096..=16384).
    pub iterations: i32,
    /// Random salt.
    pub salt: Vec<u8>,
    /// `Hi(password, salt, iterations)` (RFC 5802).
    pub salted_password: Vec<u8>,
}

impl ScramUpsert {
    /// The credential for `password` with a fresh random 32-byte salt.
    pub fn new(mechanism: ScramMechanism, password: &str, iterations: i32) -> Self {
        let mut salt = vec![0u8; 32];
        spate_auth::fill_random(&mut salt);
        let salted_password = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramUpsert {
            mechanism,
            iterations,
            salt,
            salted_password,
        }
    }
}

/// The salted password logs in as the user (against any broker accepting this salt), so it
/// stays out of logs.
impl std::fmt::Debug for ScramUpsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ScramUpsert({}, iterations={}, salted password [hidden])",
            self.mechanism.name(),
            self.iterations
        )
    }
}

/// Client quota values by key (`producer_byte_rate`, ...), as Describe/AlterClientQuotas
/// carry them.
pub type QuotaValues = BTreeMap<String, f64>;

/// The admin operations the operator needs from a cluster.
#[async_trait]
pub trait KafkaAdmin: Send + Sync {
    /// Brokers and topics (all topics when `topics` is None).
    async fn metadata(&self, topics: Option<Vec<String>>) -> Result<ClusterMetadata, KafkaError>;
    /// Registered brokers, fenced ones included.
    async fn describe_cluster(&self) -> Result<Vec<BrokerInfo>, KafkaError>;
    /// Creates a topic; returns its id.
    async fn create_topic(&self, topic: &NewTopic) -> Result<String, KafkaError>;
    /// Deletes a topic; a topic that does not exist is not an error.
    async fn delete_topic(&self, name: &str) -> Result<(), KafkaError>;
    /// Raises a topic's partition count to `total`.
    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), KafkaError>;
    /// A topic's configs.
    async fn describe_topic_configs(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigEntry>, KafkaError>;
    /// Sets and deletes topic config overrides (IncrementalAlterConfigs).
    async fn alter_topic_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), KafkaError>;
    /// Starts (or cancels) partition moves.
    async fn alter_partition_reassignments(&self, moves: &[Reassignment])
        -> Result<(), KafkaError>;
    /// Moves in progress.
    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, KafkaError>;
    /// Makes each partition's first replica its leader where it is in sync.
    async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<(), KafkaError>;
    /// The SCRAM mechanisms `user` has a credential for (empty when it has none).
    async fn describe_scram_credentials(
        &self,
        user: &str,
    ) -> Result<Vec<ScramMechanism>, KafkaError>;
    /// Creates or replaces `user`'s credential for one mechanism.
    async fn upsert_scram_credential(
        &self,
        user: &str,
        credential: &ScramUpsert,
    ) -> Result<(), KafkaError>;
    /// Deletes `user`'s credential for `mechanism`; a missing credential is not an error.
    async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), KafkaError>;
    /// The ACLs matching `filter`. Fails with SECURITY_DISABLED without an authorizer.
    async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, KafkaError>;
    /// Creates ACLs (an identical existing ACL is not an error).
    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), KafkaError>;
    /// Deletes every ACL matching one of `filters`; returns how many went.
    async fn delete_acls(&self, filters: &[AclFilter]) -> Result<usize, KafkaError>;
    /// The quotas of entity `user=<user>` (that entity only, not defaults).
    async fn describe_user_quotas(&self, user: &str) -> Result<QuotaValues, KafkaError>;
    /// Sets `set` and removes `remove` on entity `user=<user>`.
    async fn alter_user_quotas(
        &self,
        user: &str,
        set: &QuotaValues,
        remove: &[String],
    ) -> Result<(), KafkaError>;
}

/// Where and how the operator reaches a cluster.
#[derive(Clone)]
pub struct Target {
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
    /// TLS (with the operator's client certificate) for a secured cluster.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// A plaintext target.
    pub fn plaintext(bootstrap: impl Into<String>) -> Self {
        Target {
            bootstrap: bootstrap.into(),
            tls: None,
        }
    }
}

/// Opens admin sessions to a cluster.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connects to `target`.
    async fn connect(&self, target: &Target) -> Result<Arc<dyn KafkaAdmin>, KafkaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(partition: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            partition,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn health_counts_come_from_isr_and_leaders() {
        let md = ClusterMetadata {
            brokers: vec![],
            topics: vec![TopicInfo {
                name: "t".into(),
                id: "x".into(),
                partitions: vec![
                    part(0, 1, &[1, 2, 3], &[1, 2, 3]),
                    part(1, 2, &[1, 2, 3], &[2, 3]),
                    part(2, -1, &[1], &[]),
                    part(3, 3, &[2, 3], &[2, 3]),
                ],
            }],
        };
        assert_eq!(
            md.under_replicated(),
            vec![("t".into(), 1), ("t".into(), 2)]
        );
        assert_eq!(md.offline(), vec![("t".into(), 2)]);
        assert_eq!(md.not_preferred_leader(), vec![("t".into(), 3)]);
        assert_eq!(md.assignment()[&("t".to_string(), 3)], vec![2, 3]);
    }
}
