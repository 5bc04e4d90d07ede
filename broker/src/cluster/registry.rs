//! The topics this broker knows, with the partitions it hosts and their configs.
//!
//! A single node (no `controller.quorum.voters`) is the source of its own metadata and keeps
//! it in `<data dir>/topics.json`, rewritten atomically (temp file, fsync, rename) on every
//! change. In cluster mode the metadata quorum is the source (`quorum.rs`) and `applier.rs`
//! mirrors it here: the topic map and the local replicas' logs.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::names::invalid_topic_name;
use super::partition::Partition;
use super::quorum::Quorum;
use super::topic_config;
use crate::config::BrokerConfig;
use crate::producer::ProducerIdAllocator;

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

fn storage(e: impl std::fmt::Display) -> AdminError {
    AdminError::new(ResponseError::KafkaStorageError, e.to_string())
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
    /// The partition `index` if this broker hosts it. A single node hosts every partition;
    /// in cluster mode `partitions` holds only the local replicas, in index order.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        let direct = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|p| p.index == index);
        direct.or_else(|| self.partitions.iter().find(|p| p.index == index))
    }
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    cluster_id: String,
    topics: Vec<TopicMeta>,
}

pub struct Registry {
    pub config: Arc<BrokerConfig>,
    pub cluster_id: String,
    pub(super) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises metadata changes so the file and the map never disagree.
    pub(super) admin: Mutex<()>,
    /// Cluster mode: the metadata quorum is the source of topic metadata, `topics` mirrors it
    /// (see `applier.rs`) and `topics.json` is not used.
    quorum: Option<Arc<Quorum>>,
    producer_ids: Mutex<ProducerIdAllocator>,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
}

impl Registry {
    pub fn open(config: Arc<BrokerConfig>) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)?;
        let meta_path = dir.join("topics.json");
        let file: MetaFile = match std::fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", meta_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetaFile {
                cluster_id: new_cluster_id(),
                topics: vec![],
            },
            Err(e) => return Err(e.into()),
        };
        let mut topics = BTreeMap::new();
        for meta in file.topics {
            let topic = open_topic(&config, meta)?;
            topics.insert(topic.meta.name.clone(), Arc::new(topic));
        }
        remove_deleted_dirs(dir);
        let registry = Self {
            producer_ids: Mutex::new(ProducerIdAllocator::open(dir)?),
            cluster_id: file.cluster_id,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            appended: watch::channel(0).0,
            quorum: None,
            config,
        };
        registry.persist().map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(registry)
    }

    /// Cluster mode: no local topic file; the topic map starts empty and is filled from the
    /// quorum's metadata by `apply_metadata`.
    pub fn open_cluster(config: Arc<BrokerConfig>, quorum: Arc<Quorum>) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)?;
        remove_deleted_dirs(dir);
        Ok(Self {
            producer_ids: Mutex::new(ProducerIdAllocator::open(dir)?),
            cluster_id: quorum.metadata().cluster_id.clone(),
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            appended: watch::channel(0).0,
            quorum: Some(quorum),
            config,
        })
    }

    /// The metadata quorum, in cluster mode.
    pub fn quorum(&self) -> Option<&Arc<Quorum>> {
        self.quorum.as_ref()
    }

    /// Whether this broker may serve Produce, consumer Fetch and ListOffsets for the
    /// partition: always on a single node; in cluster mode only while it is the leader the
    /// metadata names and has the partition open. Unknown topics and partitions pass, so
    /// that the handlers report them as they always have.
    pub fn leader_check(&self, topic: &str, partition: i32) -> Result<(), ResponseError> {
        let Some(q) = &self.quorum else {
            return Ok(());
        };
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

    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        self.producer_ids.lock().allocate()
    }

    /// Checks a create request without applying it.
    pub fn check_create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(i32, i16), AdminError> {
        if let Some(why) = invalid_topic_name(name) {
            return Err(AdminError::new(ResponseError::InvalidTopicException, why));
        }
        if is_internal(name) && !self.topics.read().contains_key(name) {
            return Err(AdminError::new(
                ResponseError::InvalidTopicException,
                format!("Topic name {name} is reserved for internal use."),
            ));
        }
        if self.topics.read().contains_key(name) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(other) = self
            .topics
            .read()
            .keys()
            .find(|t| t.replace('.', "_") == name.replace('.', "_"))
        {
            // Kafka refuses names that collide once '.' and '_' are conflated (metric names).
            return Err(AdminError::new(
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {other}"),
            ));
        }
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if partitions < 1 {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if rf < 1 {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.",
            ));
        }
        if rf > 1 && self.quorum.is_some() && !self.config.replication_enable {
            // Placement refuses more replicas than brokers; without follower fetching
            // (`replication.enable`), a second replica would be a promise nobody keeps.
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!("Replication factor {rf} is not supported: replication between brokers is off (set replication.enable=true)."),
            ));
        }
        if rf > 1 && self.quorum.is_none() {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        for (k, v) in configs {
            topic_config::validate(k, v)
                .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
        }
        Ok((partitions, rf))
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, AdminError> {
        let _admin = self.admin.lock();
        let (partitions, _rf) =
            self.check_create(name, partitions, replication_factor, &configs)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let topic = Arc::new(open_topic(&self.config, meta).map_err(storage)?);
        self.topics.write().insert(name.to_string(), topic.clone());
        self.persist()?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Creates a broker-owned topic such as `__consumer_offsets`, whose name clients may not
    /// use themselves.
    pub fn create_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, AdminError> {
        let _admin = self.admin.lock();
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let topic = Arc::new(open_topic(&self.config, meta).map_err(storage)?);
        self.topics.write().insert(name.to_string(), topic.clone());
        self.persist()?;
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        if is_internal(name) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Topic {name} is internal and cannot be deleted."),
            ));
        }
        let _admin = self.admin.lock();
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| unknown_topic(name))?;
        self.persist()?;
        for p in &topic.partitions {
            remove_partition_data(name, p);
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.meta.id)
    }

    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _admin = self.admin.lock();
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.meta.partitions;
        if count <= current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than or equal to the requested {count}."),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        let log_config = topic_config::log_config(&topic.meta.configs, &self.config);
        for i in current..count {
            let dir = partition_dir(&self.config.data_dir, name, i);
            partitions.push(Arc::new(
                Partition::open(&dir, i, log_config.clone()).map_err(storage)?,
            ));
        }
        let meta = TopicMeta {
            partitions: count,
            ..topic.meta.clone()
        };
        self.topics
            .write()
            .insert(name.to_string(), Arc::new(Topic { meta, partitions }));
        self.persist()
    }

    /// Replaces a topic's config overrides (AlterConfigs and, after merging,
    /// IncrementalAlterConfigs) and applies them to the running logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _admin = self.admin.lock();
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        for (k, v) in &configs {
            topic_config::validate(k, v)
                .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
        }
        if validate_only {
            return Ok(());
        }
        let log_config = topic_config::log_config(&configs, &self.config);
        for p in &topic.partitions {
            p.update_config(log_config.clone()).map_err(storage)?;
        }
        let meta = TopicMeta {
            configs,
            ..topic.meta.clone()
        };
        let updated = Topic {
            meta,
            partitions: topic.partitions.clone(),
        };
        self.topics
            .write()
            .insert(name.to_string(), Arc::new(updated));
        self.persist()
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

    fn persist(&self) -> Result<(), AdminError> {
        if self.quorum.is_some() {
            return Ok(());
        }
        let file = MetaFile {
            cluster_id: self.cluster_id.clone(),
            topics: self
                .topics
                .read()
                .values()
                .map(|t| t.meta.clone())
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(storage)?;
        write_atomically(&self.config.data_dir.join("topics.json"), &bytes).map_err(storage)
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

fn open_topic(config: &BrokerConfig, meta: TopicMeta) -> anyhow::Result<Topic> {
    let log_config = topic_config::log_config(&meta.configs, config);
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for i in 0..meta.partitions {
        let dir = partition_dir(&config.data_dir, &meta.name, i);
        let p = Partition::open(&dir, i, log_config.clone())
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", dir.display()))?;
        partitions.push(Arc::new(p));
    }
    Ok(Topic { meta, partitions })
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

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars).
pub(super) fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &Path) -> Registry {
        let cli = vec![("log.dirs".to_string(), dir.display().to_string())];
        Registry::open(Arc::new(BrokerConfig::load(None, vec![], cli).unwrap())).unwrap()
    }

    #[test]
    fn topics_survive_a_restart_and_deletes_remove_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        let t = r
            .create_topic(
                "orders",
                3,
                1,
                BTreeMap::from([("retention.ms".into(), "1000".into())]),
            )
            .unwrap();
        let id = t.meta.id;
        let cluster = r.cluster_id.clone();
        r.create_topic("gone", 1, -1, BTreeMap::new()).unwrap();
        r.delete_topic("gone").unwrap();
        r.close();
        drop(r);
        let r = registry(dir.path());
        assert_eq!(r.cluster_id, cluster);
        let t = r.topic("orders").unwrap();
        assert_eq!((t.meta.id, t.partitions.len()), (id, 3));
        assert_eq!(t.meta.configs["retention.ms"], "1000");
        assert!(r.topic("gone").is_none());
        assert!(!dir.path().join("gone-0").exists());
    }

    #[test]
    fn refuses_bad_creates_with_kafka_codes() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        r.create_topic("a.b", 1, 1, BTreeMap::new()).unwrap();
        let code = |res: Result<Arc<Topic>, AdminError>| res.err().map(|e| e.code);
        assert_eq!(
            code(r.create_topic("a.b", 1, 1, BTreeMap::new())),
            Some(ResponseError::TopicAlreadyExists)
        );
        assert_eq!(
            code(r.create_topic("a_b", 1, 1, BTreeMap::new())),
            Some(ResponseError::InvalidTopicException)
        );
        assert_eq!(
            code(r.create_topic("bad name", 1, 1, BTreeMap::new())),
            Some(ResponseError::InvalidTopicException)
        );
        assert_eq!(
            code(r.create_topic("t", 0, 1, BTreeMap::new())),
            Some(ResponseError::InvalidPartitions)
        );
        assert_eq!(
            code(r.create_topic("t", 1, 3, BTreeMap::new())),
            Some(ResponseError::InvalidReplicationFactor)
        );
        let bad = BTreeMap::from([("retention.ms".into(), "x".into())]);
        assert_eq!(
            code(r.create_topic("t", 1, 1, bad)),
            Some(ResponseError::InvalidConfig)
        );
        assert!(r.create_partitions("a.b", 1, false).is_err());
        r.create_partitions("a.b", 4, false).unwrap();
        assert_eq!(r.topic("a.b").unwrap().partitions.len(), 4);
    }
}
