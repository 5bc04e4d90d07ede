//! Every change to cluster metadata, as handlers and coordinators ask for it: each proposes a
//! [`MetaRequest`] to the quorum, waits until this node has applied the result and mirrors it
//! locally (`applier.rs`), so that the client's next request to this broker sees the change.
//!
//! - this file: topics (create, delete, add partitions, configs) and producer id blocks;
//! - `partitions.rs`: reassignments and leader elections;
//! - `brokers.rs`: dynamic broker configs and unregistering brokers;
//! - `scram.rs`: SCRAM credentials (AlterUserScramCredentials, `--add-scram`);
//! - `acls.rs`: ACLs (CreateAcls, DeleteAcls);
//! - `quotas.rs`: client quotas (AlterClientQuotas).
//!
//! Requests are checked here first where Kafka's broker checks them (names, configs, counts)
//! so that clients get Kafka's messages; the state machine checks what needs the committed
//! metadata (existence, placement, registered brokers).
mod acls;
mod brokers;
mod partitions;
mod quotas;
mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use spate_meta::MetaRequest;
use uuid::Uuid;

use super::names::invalid_topic_name;
use super::quorum::APPLY_TIMEOUT;
use super::registry::{is_internal, unknown_topic};
use super::{topic_config, AdminError, Registry};
use crate::config::BrokerConfig;

pub use partitions::{ElectionOutcome, ReassignOutcome};

/// What a create produced (or would produce, when only validating).
pub struct Created {
    pub id: Option<Uuid>,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// A topic to create: `partitions`/`replication_factor` -1 take the broker defaults; a manual
/// `assignment` (replicas per partition) replaces both.
pub struct NewTopic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub assignment: Option<Vec<Vec<i32>>>,
}

impl Registry {
    pub async fn admin_create_topic(
        self: &Arc<Self>,
        topic: NewTopic<'_>,
        validate_only: bool,
    ) -> Result<Created, AdminError> {
        let q = self.quorum();
        let md = q.metadata();
        let (partitions, rf) =
            check_new_topic(&self.config, md.topics.keys().map(String::as_str), &topic)?;
        drop(md);
        if validate_only {
            return Ok(Created {
                id: None,
                partitions,
                replication_factor: rf,
            });
        }
        let id = self.propose_topic(&topic, partitions, rf).await?;
        Ok(Created {
            id: Some(id),
            partitions,
            replication_factor: rf,
        })
    }

    /// Creates a broker-owned topic (`__consumer_offsets`) unless it exists.
    pub async fn admin_ensure_internal_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        if self.quorum().metadata().topics.contains_key(name) {
            return Ok(());
        }
        let topic = NewTopic {
            name,
            partitions,
            replication_factor,
            configs,
            assignment: None,
        };
        match self
            .propose_topic(&topic, partitions, replication_factor)
            .await
        {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn propose_topic(
        self: &Arc<Self>,
        topic: &NewTopic<'_>,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<Uuid, AdminError> {
        let id = Uuid::new_v4();
        self.propose_topic_with_id(topic, id, partitions, replication_factor)
            .await?;
        tracing::info!(
            topic = topic.name,
            partitions,
            replication_factor,
            "created topic"
        );
        Ok(id)
    }

    /// Creates the topic under a given id (also how topics are carried over from an older
    /// data directory); a retry with the same id succeeds.
    pub(crate) async fn propose_topic_with_id(
        self: &Arc<Self>,
        topic: &NewTopic<'_>,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), AdminError> {
        let q = self.quorum();
        let name = topic.name;
        q.propose(MetaRequest::CreateTopic {
            name: name.to_string(),
            id,
            partitions,
            replication_factor,
            configs: topic.configs.clone(),
            assignment: topic.assignment.clone(),
        })
        .await?;
        q.wait_for(APPLY_TIMEOUT, |md| {
            md.topics.get(name).is_some_and(|t| t.id == id)
        })
        .await;
        self.sync().await;
        Ok(())
    }

    pub async fn admin_delete_topic(self: &Arc<Self>, name: &str) -> Result<Uuid, AdminError> {
        if is_internal(name) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Topic {name} is internal and cannot be deleted."),
            ));
        }
        let q = self.quorum();
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
        let q = self.quorum();
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
        let q = self.quorum();
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
        self.quorum().allocate_producer_id().await
    }
}

/// Checks a create as Kafka's broker does before it reaches the controller: the name, that it
/// is not taken or colliding with `existing` (the topics in the metadata), the counts and the
/// configs. Returns the partition count and replication factor with defaults applied. Too
/// many replicas for the registered brokers is the controller's (placement's) refusal.
pub fn check_new_topic<'a>(
    config: &BrokerConfig,
    existing: impl Iterator<Item = &'a str> + Clone,
    topic: &NewTopic<'_>,
) -> Result<(i32, i16), AdminError> {
    let name = topic.name;
    if let Some(why) = invalid_topic_name(name) {
        return Err(AdminError::new(ResponseError::InvalidTopicException, why));
    }
    if existing.clone().any(|t| t == name) {
        return Err(AdminError::new(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    if is_internal(name) {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Topic name {name} is reserved for internal use."),
        ));
    }
    if let Some(other) = existing
        .clone()
        .find(|t| t.replace('.', "_") == name.replace('.', "_"))
    {
        // Kafka refuses names that collide once '.' and '_' are conflated (metric names).
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("Topic '{name}' collides with existing topic: {other}"),
        ));
    }
    let (partitions, rf) = match &topic.assignment {
        Some(a) => (
            i32::try_from(a.len()).unwrap_or(i32::MAX),
            a.first()
                .map_or(0, |r| i16::try_from(r.len()).unwrap_or(i16::MAX)),
        ),
        None => (
            if topic.partitions == -1 {
                config.num_partitions
            } else {
                topic.partitions
            },
            if topic.replication_factor == -1 {
                config.default_replication_factor
            } else {
                topic.replication_factor
            },
        ),
    };
    if partitions < 1 {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            "Number of partitions must be larger than 0.",
        ));
    }
    if rf < 1 {
        return Err(AdminError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0.",
        ));
    }
    for (k, v) in &topic.configs {
        topic_config::validate(k, v)
            .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
    }
    Ok((partitions, rf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic<'_> {
        NewTopic {
            name,
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            assignment: None,
        }
    }

    fn code(r: Result<(i32, i16), AdminError>) -> Option<ResponseError> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn refuses_bad_creates_with_kafka_codes() {
        let config = BrokerConfig::load(None, vec![], vec![]).expect("defaults");
        let existing = ["a.b", "__consumer_offsets"];
        let check = |t: &NewTopic| check_new_topic(&config, existing.iter().copied(), t);
        assert_eq!(
            code(check(&topic("a.b", 1, 1))),
            Some(ResponseError::TopicAlreadyExists)
        );
        assert_eq!(
            code(check(&topic("a_b", 1, 1))),
            Some(ResponseError::InvalidTopicException)
        );
        assert_eq!(
            code(check(&topic("bad name", 1, 1))),
            Some(ResponseError::InvalidTopicException)
        );
        assert_eq!(
            code(check(&topic("__transaction_state", 1, 1))),
            Some(ResponseError::InvalidTopicException)
        );
        assert_eq!(
            code(check(&topic("t", 0, 1))),
            Some(ResponseError::InvalidPartitions)
        );
        assert_eq!(
            code(check(&topic("t", 1, 0))),
            Some(ResponseError::InvalidReplicationFactor)
        );
        let mut bad = topic("t", 1, 1);
        bad.configs.insert("retention.ms".into(), "x".into());
        assert_eq!(code(check(&bad)), Some(ResponseError::InvalidConfig));
        // Defaults and manual assignments fill in the counts.
        assert_eq!(check(&topic("t", -1, -1)).ok(), Some((1, 1)));
        let mut manual = topic("t", -1, -1);
        manual.assignment = Some(vec![vec![1, 2], vec![2, 1], vec![1, 2]]);
        assert_eq!(check(&manual).ok(), Some((3, 2)));
    }
}
