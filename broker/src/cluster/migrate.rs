//! Carries a data directory written before the metadata quorum held a single node's metadata
//! over into it, on first start: that format kept the topics in `<data dir>/topics.json` and
//! producer id blocks in `<data dir>/producer-id-block`.
//!
//! Each topic is created in the quorum under its old id, configs and partition count, with
//! every partition assigned to this broker (its data is here); the cluster id is the one the
//! new quorum starts with; producer ids continue after the last block handed out. The old
//! files are then renamed `*.migrated`. A crash part way through is repaired by the next
//! start: creates with the same id are retries, and producer id blocks only move forward.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::admin::NewTopic;
use super::{AdminError, Registry, TopicMeta};

const TOPICS_FILE: &str = "topics.json";
const PRODUCER_IDS_FILE: &str = "producer-id-block";

/// What a data directory in the older format holds.
#[derive(Debug, Deserialize)]
pub struct Legacy {
    pub cluster_id: String,
    topics: Vec<TopicMeta>,
    #[serde(skip)]
    next_producer_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a topic file this broker understands: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("carrying topic {topic} into the metadata quorum: {source}")]
    Topic { topic: String, source: AdminError },
    #[error("carrying producer ids into the metadata quorum: {0}")]
    ProducerIds(AdminError),
    #[error("renaming {path} after migrating it: {source}")]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The older format's metadata, if `data_dir` has it.
pub fn read(data_dir: &Path) -> Result<Option<Legacy>, MigrateError> {
    let path = data_dir.join(TOPICS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MigrateError::Read { path, source }),
    };
    let mut legacy: Legacy = serde_json::from_slice(&bytes).map_err(|e| MigrateError::Format {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let ids = data_dir.join(PRODUCER_IDS_FILE);
    legacy.next_producer_id = match std::fs::read_to_string(&ids) {
        Ok(s) => s.trim().parse().map_err(|_| MigrateError::Format {
            path: ids.clone(),
            reason: "not a number".into(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => return Err(MigrateError::Read { path: ids, source }),
    };
    Ok(Some(legacy))
}

/// Creates the old topics in the quorum, moves producer ids past the old blocks, and renames
/// the old files.
pub async fn migrate(registry: &Arc<Registry>, legacy: Legacy) -> Result<(), MigrateError> {
    let q = registry.quorum();
    let me = q.broker_id;
    if q.metadata().cluster_id != legacy.cluster_id {
        tracing::warn!(
            old = %legacy.cluster_id,
            current = %q.metadata().cluster_id,
            "the metadata quorum already had another cluster id; keeping it"
        );
    }
    for t in &legacy.topics {
        let existing = q.metadata().topics.get(&t.name).map(|m| m.id);
        match existing {
            Some(id) if id == t.id => continue,
            Some(id) => {
                tracing::warn!(topic = %t.name, old = %t.id, current = %id, "a topic of that name already exists in the metadata quorum; not carrying the old one over");
                continue;
            }
            None => {}
        }
        let topic = NewTopic {
            name: &t.name,
            partitions: t.partitions,
            replication_factor: 1,
            configs: t.configs.clone(),
            assignment: Some(vec![vec![me]; t.partitions.max(0) as usize]),
        };
        registry
            .propose_topic_with_id(&topic, t.id, t.partitions, 1)
            .await
            .map_err(|source| MigrateError::Topic {
                topic: t.name.clone(),
                source,
            })?;
        tracing::info!(topic = %t.name, partitions = t.partitions, "carried topic over into the metadata quorum");
    }
    q.skip_producer_ids_below(legacy.next_producer_id)
        .await
        .map_err(MigrateError::ProducerIds)?;
    let dir = &registry.config.data_dir;
    for file in [TOPICS_FILE, PRODUCER_IDS_FILE] {
        let path = dir.join(file);
        if path.exists() {
            let to = dir.join(format!("{file}.migrated"));
            std::fs::rename(&path, &to).map_err(|source| MigrateError::Rename { path, source })?;
        }
    }
    tracing::info!(
        topics = legacy.topics.len(),
        "data directory carried over into the metadata quorum"
    );
    Ok(())
}
