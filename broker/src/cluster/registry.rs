//! The local catalog: the topics this broker knows, with the replicas it hosts and their
//! configs. The metadata quorum is the source (`quorum.rs`); `applier.rs` mirrors it here and
//! opens or removes the local replicas' logs. Changes go through `admin.rs`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::partition::Partition;
use super::quorum::Quorum;
use crate::config::BrokerConfig;

/// A refused admin operation, with the Kafka error a client understands.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub code: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What is persisted about a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

pub struct Topic {
    pub meta: TopicMeta,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The partition `index` if this broker hosts it: `partitions` holds only the local
    /// replicas, in index order.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        let direct = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|p| p.index == index);
        direct.or_else(|| self.partitions.iter().find(|p| p.index == index))
    }
}

pub struct Registry {
    pub config: Arc<BrokerConfig>,
    pub cluster_id: String,
    pub(super) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises applying metadata, so that the map never goes back to an older version.
    pub(super) admin: Mutex<()>,
    /// The source of topic metadata; `topics` mirrors it (see `applier.rs`).
    quorum: Arc<Quorum>,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    /// How this broker reaches other brokers' inter-broker listener.
    pub connector: super::broker_conn::Connector,
}

impl Registry {
    /// An empty catalog, filled from the quorum's metadata by `apply_metadata`.
    pub fn open(config: Arc<BrokerConfig>, quorum: Arc<Quorum>) -> std::io::Result<Self> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)?;
        remove_deleted_dirs(dir);
        Ok(Self {
            cluster_id: quorum.metadata().cluster_id.clone(),
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            appended: watch::channel(0).0,
            connector: super::broker_conn::Connector::from_config(&config)
                .map_err(|e| std::io::Error::other(format!("inter-broker listener: {e}")))?,
            quorum,
            config,
        })
    }

    /// The metadata quorum.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Whether this broker may serve Produce, consumer Fetch and ListOffsets for the
    /// partition: only while it is the leader the metadata names and has the partition open.
    /// Unknown topics and partitions pass, so that the handlers report them as they always
    /// have.
    pub fn leader_check(&self, topic: &str, partition: i32) -> Result<(), ResponseError> {
        let q = &self.quorum;
        let md = q.metadata();
        let Some(state) = usize::try_from(partition)
            .ok()
            .and_then(|i| md.partition(topic, i))
        else {
            return Ok(());
        };
        let hosted = self
            .topic(topic)
            .is_some_and(|t| t.partition(partition).is_some_and(|p| p.is_leader()));
        if state.leader == q.broker_id && hosted {
            Ok(())
        } else if state.leader == spate_meta::NO_LEADER {
            Err(ResponseError::LeaderNotAvailable)
        } else {
            Err(ResponseError::NotLeaderOrFollower)
        }
    }

    /// Did this broker step down from leading the partition, having lost its controller
    /// session (`session.rs`)? Metadata and FindCoordinator then name no leader for it, so
    /// clients look elsewhere instead of at a leader the controller has most likely replaced.
    pub fn stepped_down(&self, topic: &str, partition: i32) -> bool {
        self.topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .is_some_and(|p| p.is_stepped_down())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .values()
            .find(|t| t.meta.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub fn notify_append(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn close(&self) {
        for topic in self.topics() {
            for p in &topic.partitions {
                if let Err(e) = p.close() {
                    tracing::error!(topic = %topic.meta.name, partition = p.index, "close failed: {e}");
                }
            }
        }
    }
}

/// Topics the broker owns (Kafka's internal topics).
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

pub fn unknown_topic(name: &str) -> AdminError {
    AdminError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{name}' does not exist."),
    )
}

/// Closes a partition and deletes its directory.
pub(super) fn remove_partition_data(topic: &str, p: &Partition) {
    if let Err(e) = p.close() {
        tracing::warn!(topic, partition = p.index, "closing deleted partition: {e}");
    }
    // Rename first so a crash mid-delete never resurrects the partition.
    let gone = p
        .dir
        .with_extension(format!("{}-delete", Uuid::new_v4().simple()));
    match std::fs::rename(&p.dir, &gone) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&gone);
        }
        Err(e) => tracing::warn!(dir = %p.dir.display(), "removing deleted partition: {e}"),
    }
}

pub(super) fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn remove_deleted_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with("-delete") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars).
pub(super) fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}
