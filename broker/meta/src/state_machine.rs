//! The replicated state: what every broker needs to know about the cluster.
//!
//! `ClusterMetadata` is the openraft state machine's data. It changes only through
//! [`MetaRequest::apply`](crate::MetaRequest::apply), which runs on every node for every committed
//! log entry in log order; so everything here must be deterministic (`BTreeMap`, no clocks, no
//! randomness; ids such as topic ids come in with the request).
//!
//! The partition helpers below (eligibility, ISR shrinking, leader election) are shared by
//! the broker-fencing, controlled-shutdown, reassignment and AlterPartition paths so that all of
//! them follow the same Kafka rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// "No leader" in Kafka's metadata (`leader = -1`).
pub const NO_LEADER: i32 = -1;

/// Everything the metadata quorum agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Set once by `InitCluster`; empty until then.
    pub cluster_id: String,
    /// Registered brokers by broker id (Kafka's `int32` broker id, not the raft node id).
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
    /// First producer id of the next block handed out by `AllocateProducerIds`.
    pub next_producer_id_block: i64,
    /// Dynamic broker configs (Kafka's `ConfigRecord` for BROKER resources): by broker id as
    /// a string, `""` being the cluster-wide default. Absent in state written before they
    /// existed, hence the serde default.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user and mechanism (salted keys only, see `spate_auth`).
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<spate_auth::ScramMechanism, spate_auth::ScramCredential>>,
    /// Every ACL; `acls_version` changes whenever the set does, so brokers rebuild their
    /// authorizer only then.
    #[serde(default)]
    pub acls: std::collections::BTreeSet<spate_auth::acl::AclBinding>,
    #[serde(default)]
    pub acls_version: u64,
    /// Client quotas by entity, sorted (a list: JSON map keys must be strings).
    #[serde(default)]
    pub client_quotas: Vec<(
        spate_auth::quota::QuotaEntity,
        spate_auth::quota::QuotaValues,
    )>,
    /// Raft log index of the last entry applied to this state. Brokers compare it across
    /// nodes to tell how current their view is (Kafka's metadata offset).
    pub metadata_offset: u64,
}

/// A broker's registration, as KRaft's `RegisterBrokerRecord` plus its fencing state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// Random per process start; a new incarnation means the broker restarted.
    pub incarnation: Uuid,
    /// Metadata offset of the registration record (Kafka's broker epoch): stale requests from an
    /// older incarnation can be told apart by it.
    pub epoch: u64,
    /// The inter-broker listener: followers fetch from here, and clients are sent here when
    /// `listeners` is empty.
    pub host: String,
    pub port: u16,
    /// Every named client listener (Kafka's `advertised.listeners`). Absent in registrations
    /// written before named listeners existed, hence the serde default.
    #[serde(default)]
    pub listeners: Vec<ListenerEndpoint>,
    pub rack: Option<String>,
    /// A fenced broker may lead nothing and joins no ISR. Brokers register fenced and are
    /// unfenced once they have caught up with the metadata log.
    pub fenced: bool,
    /// In controlled shutdown: leads nothing, joins no ISR, gets no new replicas.
    pub shutting_down: bool,
}

impl BrokerRegistration {
    /// May this broker lead a partition or be added to an ISR?
    pub fn is_eligible(&self) -> bool {
        !self.fenced && !self.shutting_down
    }

    /// Where a client that connected through `listener` reaches this broker. `None` when the
    /// broker has no such listener: Kafka then leaves the broker out of the answer.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// One advertised listener of a broker, as in KRaft's `BrokerEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A topic and its partitions; partition `i` is `partitions[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

/// One partition's replica set and leadership, as KRaft's `PartitionRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas; the first is the preferred leader. During a reassignment this is the
    /// union of the old and the target replicas (target first).
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Current leader or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped whenever the leader changes; followers fence stale leaders with it.
    pub leader_epoch: i32,
    /// Bumped on every change of this record; AlterPartition requests name the epoch they were
    /// computed against so that concurrent changes are detected.
    pub partition_epoch: i32,
    /// Replicas being added by an ongoing reassignment.
    pub adding: Vec<i32>,
    /// Replicas being removed by an ongoing reassignment.
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// A fresh partition: every replica in the ISR, the first one leading.
    pub fn new(replicas: Vec<i32>) -> Self {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionState {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// Sets leader and ISR, bumping the epochs as Kafka does: the partition epoch on any
    /// change, the leader epoch only when the leader changes. Returns whether anything changed.
    pub fn change(&mut self, leader: i32, isr: Vec<i32>) -> bool {
        let leader_changed = leader != self.leader;
        if !leader_changed && isr == self.isr {
            return false;
        }
        if leader_changed {
            self.leader = leader;
            self.leader_epoch = self.leader_epoch.saturating_add(1);
        }
        self.isr = isr;
        self.partition_epoch = self.partition_epoch.saturating_add(1);
        true
    }
}

impl ClusterMetadata {
    /// Is `broker` registered, unfenced and not shutting down?
    pub fn is_eligible(&self, broker: i32) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(BrokerRegistration::is_eligible)
    }

    /// Eligible brokers in id order, with their racks: the candidates for new replicas.
    pub fn eligible_brokers(&self) -> Vec<(i32, Option<String>)> {
        self.brokers
            .values()
            .filter(|b| b.is_eligible())
            .map(|b| (b.id, b.rack.clone()))
            .collect()
    }

    /// Picks a leader from `isr`: the first eligible member in replica order (so the preferred
    /// replica wins when it can), or [`NO_LEADER`]. Only ISR members are candidates: electing
    /// anyone else could lose committed records (see [`Self::elect_unclean`] for topics that
    /// accept that).
    pub fn elect_leader(&self, replicas: &[i32], isr: &[i32]) -> i32 {
        replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && self.is_eligible(*r))
            .unwrap_or(NO_LEADER)
    }

    /// Takes `broker` out of every ISR and away from every leadership, as Kafka does when a
    /// broker is fenced, unregistered or shuts down in a controlled way. The last ISR member is
    /// kept (ISRs never become empty, so the partition can come back without an unclean
    /// election); such a partition is left leaderless if nobody else can lead.
    /// Returns how many partitions changed.
    pub fn remove_broker_from_partitions(&mut self, broker: i32) -> usize {
        // Election needs `&self` while partitions are borrowed mutably: compute eligibility first.
        let eligible: Vec<i32> = self
            .brokers
            .values()
            .filter(|b| b.is_eligible() && b.id != broker)
            .map(|b| b.id)
            .collect();
        let mut changed = 0;
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if !p.isr.contains(&broker) && p.leader != broker {
                    continue;
                }
                let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != broker).collect();
                if isr.is_empty() {
                    isr = p.isr.clone();
                }
                let leader = if p.leader == broker || p.leader == NO_LEADER {
                    p.replicas
                        .iter()
                        .copied()
                        .find(|r| isr.contains(r) && eligible.contains(r))
                        .unwrap_or(NO_LEADER)
                } else {
                    p.leader
                };
                if p.change(leader, isr) {
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Unclean leader election, for topics that opt in with Kafka's
    /// `unclean.leader.election.enable=true` (or, with `forced`, because an admin asked for it
    /// with ElectLeaders): a leaderless partition with no eligible ISR member gets its first
    /// eligible replica as leader and sole ISR member. Records only the old ISR had are lost;
    /// that is the availability-over-durability trade the setting names. Limited to `only`
    /// when given. Returns the partitions elected, with their new leaders.
    pub fn elect_unclean(
        &mut self,
        only: Option<&[(String, i32)]>,
        forced: bool,
    ) -> Vec<(String, i32, i32)> {
        let mut elected = Vec::new();
        for (name, topic) in &self.topics {
            let allowed = forced
                || topic
                    .configs
                    .get("unclean.leader.election.enable")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if !allowed {
                continue;
            }
            for (i, p) in topic.partitions.iter().enumerate() {
                let Ok(index) = i32::try_from(i) else { break };
                if only.is_some_and(|o| !o.iter().any(|(t, n)| t == name && *n == index)) {
                    continue;
                }
                if p.leader != NO_LEADER || self.elect_leader(&p.replicas, &p.isr) != NO_LEADER {
                    continue;
                }
                if let Some(r) = p.replicas.iter().copied().find(|r| self.is_eligible(*r)) {
                    elected.push((name.clone(), index, r));
                }
            }
        }
        for (name, index, leader) in &elected {
            let Ok(i) = usize::try_from(*index) else {
                continue;
            };
            if let Some(p) = self.partition_mut(name, i) {
                p.change(*leader, vec![*leader]);
            }
        }
        elected
    }

    /// Gives leaderless partitions whose ISR contains `broker` a leader again (the broker was
    /// just unfenced). Returns how many partitions changed.
    pub fn elect_for_leaderless(&mut self, broker: i32) -> usize {
        let mut updates = Vec::new();
        for (name, topic) in &self.topics {
            for (i, p) in topic.partitions.iter().enumerate() {
                if p.leader == NO_LEADER && p.isr.contains(&broker) {
                    let leader = self.elect_leader(&p.replicas, &p.isr);
                    if leader != NO_LEADER {
                        updates.push((name.clone(), i, leader));
                    }
                }
            }
        }
        let changed = updates.len();
        for (name, i, leader) in updates {
            if let Some(p) = self.partition_mut(&name, i) {
                let isr = p.isr.clone();
                p.change(leader, isr);
            }
        }
        changed
    }

    pub fn partition(&self, topic: &str, partition: usize) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(partition)
    }

    pub fn partition_mut(&mut self, topic: &str, partition: usize) -> Option<&mut PartitionState> {
        self.topics.get_mut(topic)?.partitions.get_mut(partition)
    }

    /// Replicas and leaderships per broker over all topics, for balanced placement.
    pub fn load_per_broker(&self) -> BTreeMap<i32, (usize, usize)> {
        let mut load: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
        for topic in self.topics.values() {
            for p in &topic.partitions {
                for r in &p.replicas {
                    load.entry(*r).or_default().0 += 1;
                }
                if let Some(first) = p.replicas.first() {
                    load.entry(*first).or_default().1 += 1;
                }
            }
        }
        load
    }

    /// Total partitions over all topics; seeds the placement rotation.
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }
}
