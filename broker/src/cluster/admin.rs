//! Admin operations as handlers call them, on either backend: a single node changes its
//! `topics.json` (the synchronous `Registry` methods); cluster mode proposes a
//! [`MetaRequest`] to the quorum, waits until this node has applied the result and mirrors it
//! locally (`applier.rs`), so that the client's next request to this broker sees the change.
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::MetaRequest;
use uuid::Uuid;

use super::quorum::APPLY_TIMEOUT;
use super::registry::{is_internal, unknown_topic};
use super::{topic_config, AdminError, Registry};

/// What a create produced (or would produce, when only validating).
pub struct Created {
    pub id: Option<Uuid>,
    pub partitions: i32,
    pub replication_factor: i16,
}

impl Registry {
    pub async fn admin_create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Created, AdminError> {
        let Some(q) = self.quorum().cloned() else {
            if validate_only {
                let (partitions, rf) =
                    self.check_create(name, partitions, replication_factor, &configs)?;
                return Ok(Created {
                    id: None,
                    partitions,
                    replication_factor: rf,
                });
            }
            let t = self.create_topic(name, partitions, replication_factor, configs)?;
            return Ok(Created {
                id: Some(t.meta.id),
                partitions: t.meta.partitions,
                replication_factor: 1,
            });
        };
        if q.metadata().topics.contains_key(name) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        let (partitions, rf) = self.check_create(name, partitions, replication_factor, &configs)?;
        if validate_only {
            return Ok(Created {
                id: None,
                partitions,
                replication_factor: rf,
            });
        }
        let id = self.propose_topic(name, partitions, rf, configs).await?;
        Ok(Created {
            id: Some(id),
            partitions,
            replication_factor: rf,
        })
    }

    /// Cluster mode: creates a broker-owned topic (`__consumer_offsets`) unless it exists.
    pub async fn admin_ensure_internal_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let Some(q) = self.quorum().cloned() else {
            return self
                .create_internal_topic(name, partitions, configs)
                .map(|_| ());
        };
        if q.metadata().topics.contains_key(name) {
            return Ok(());
        }
        match self
            .propose_topic(name, partitions, replication_factor, configs)
            .await
        {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn propose_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Uuid, AdminError> {
        let q = self.quorum().cloned().ok_or_else(not_cluster)?;
        let id = Uuid::new_v4();
        q.propose(MetaRequest::CreateTopic {
            name: name.to_string(),
            id,
            partitions,
            replication_factor,
            configs,
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            md.topics.get(name).is_some_and(|t| t.id == id)
        })
        .await;
        self.sync().await;
        tracing::info!(
            topic = name,
            partitions,
            replication_factor,
            "created topic"
        );
        Ok(id)
    }

    pub async fn admin_delete_topic(self: &Arc<Self>, name: &str) -> Result<Uuid, AdminError> {
        let Some(q) = self.quorum().cloned() else {
            return self.delete_topic(name);
        };
        if is_internal(name) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Topic {name} is internal and cannot be deleted."),
            ));
        }
        let id = q
            .metadata()
            .topics
            .get(name)
            .map(|t| t.id)
            .ok_or_else(|| unknown_topic(name))?;
        q.propose(MetaRequest::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            md.topics.get(name).is_none_or(|t| t.id != id)
        })
        .await;
        self.sync().await;
        tracing::info!(topic = name, "deleted topic");
        Ok(id)
    }

    pub async fn admin_create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(q) = self.quorum().cloned() else {
            return self.create_partitions(name, count, validate_only);
        };
        let current = q
            .metadata()
            .topics
            .get(name)
            .map(|t| t.partitions.len())
            .ok_or_else(|| unknown_topic(name))?;
        let current = i32::try_from(current).unwrap_or(i32::MAX);
        if count <= current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than or equal to the requested {count}."),
            ));
        }
        if validate_only {
            return Ok(());
        }
        q.propose(MetaRequest::CreatePartitions {
            name: name.to_string(),
            count,
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            md.topics
                .get(name)
                .is_some_and(|t| t.partitions.len() >= count as usize)
        })
        .await;
        self.sync().await;
        Ok(())
    }

    /// Replaces a topic's config overrides with `configs`.
    pub async fn admin_set_topic_configs(
        self: &Arc<Self>,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(q) = self.quorum().cloned() else {
            return self.set_topic_configs(name, configs, validate_only);
        };
        let current = q
            .metadata()
            .topics
            .get(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| unknown_topic(name))?;
        for (k, v) in &configs {
            topic_config::validate(k, v)
                .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
        }
        if validate_only {
            return Ok(());
        }
        let mut changes: BTreeMap<String, Option<String>> = current
            .keys()
            .filter(|k| !configs.contains_key(*k))
            .map(|k| (k.clone(), None))
            .collect();
        changes.extend(configs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        let request = MetaRequest::AlterTopicConfigs {
            name: name.to_string(),
            configs: changes,
        };
        q.propose_idempotent(request).await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            md.topics.get(name).is_none_or(|t| t.configs == configs)
        })
        .await;
        self.sync().await;
        Ok(())
    }

    pub async fn admin_allocate_producer_id(&self) -> Result<i64, AdminError> {
        match self.quorum() {
            Some(q) => q.allocate_producer_id().await,
            None => self
                .allocate_producer_id()
                .map_err(|e| AdminError::new(ResponseError::KafkaStorageError, e.to_string())),
        }
    }
}

fn not_cluster() -> AdminError {
    AdminError::new(
        ResponseError::UnknownServerError,
        "not running in cluster mode",
    )
}
