//! Topics: create (with replica placement), delete, add partitions, alter configs.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{MetaResponse, RequestError};
use crate::placement::{self, PlacementError};
use crate::state_machine::{ClusterMetadata, PartitionState, TopicMetadata};

/// Upper bound on partitions per topic. Apply is synchronous on every node; an absurd count
/// from a client must not stall the quorum or exhaust memory.
pub const MAX_PARTITIONS: i32 = 100_000;

/// Kafka's rules: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
fn validate_name(name: &str) -> Result<(), RequestError> {
    let invalid = |reason: &str| RequestError::InvalidTopicName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 249 {
        return Err(invalid("longer than 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are reserved"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

fn validate_config_keys<'a>(
    mut keys: impl Iterator<Item = &'a String>,
) -> Result<(), RequestError> {
    if keys.any(|k| k.is_empty()) {
        return Err(RequestError::InvalidConfig("empty config name".into()));
    }
    Ok(())
}

fn placement_error(e: PlacementError) -> RequestError {
    RequestError::InvalidReplicationFactor(e.to_string())
}

/// Places `count` new partitions of `rf` replicas on the eligible brokers.
fn place(md: &ClusterMetadata, count: usize, rf: usize) -> Result<Vec<Vec<i32>>, RequestError> {
    placement::place(
        &md.eligible_brokers(),
        &md.load_per_broker(),
        count,
        rf,
        md.partition_count(),
    )
    .map_err(placement_error)
}

pub(super) fn create(
    md: &mut ClusterMetadata,
    name: &str,
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: &BTreeMap<String, String>,
) -> Result<MetaResponse, RequestError> {
    validate_name(name)?;
    if let Some(t) = md.topics.get(name) {
        // A proposal forwarded to the leader may be applied and then retried when the reply is
        // lost; the same id means it is that retry, which must succeed, not report "exists".
        if t.id == id {
            return Ok(MetaResponse::TopicCreated {
                id,
                partitions: t.partitions.clone(),
            });
        }
        return Err(RequestError::TopicExists(name.to_string()));
    }
    if id.is_nil() || md.topics.values().any(|t| t.id == id) {
        return Err(RequestError::TopicIdExists(id));
    }
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(RequestError::InvalidPartitions(format!(
            "{partitions} is not in 1..={MAX_PARTITIONS}"
        )));
    }
    let rf = usize::try_from(replication_factor)
        .ok()
        .filter(|rf| *rf >= 1)
        .ok_or_else(|| {
            RequestError::InvalidReplicationFactor(format!("{replication_factor} is below 1"))
        })?;
    validate_config_keys(configs.keys())?;
    // `partitions` is in 1..=MAX_PARTITIONS, so the cast is lossless.
    let assignment = place(md, partitions as usize, rf)?;
    let partitions: Vec<PartitionState> = assignment.into_iter().map(PartitionState::new).collect();
    md.topics.insert(
        name.to_string(),
        TopicMetadata {
            id,
            configs: configs.clone(),
            partitions: partitions.clone(),
        },
    );
    Ok(MetaResponse::TopicCreated { id, partitions })
}

pub(super) fn delete(md: &mut ClusterMetadata, name: &str) -> Result<MetaResponse, RequestError> {
    md.topics
        .remove(name)
        .map(|_| MetaResponse::Ok)
        .ok_or_else(|| RequestError::UnknownTopic(name.to_string()))
}

pub(super) fn create_partitions(
    md: &mut ClusterMetadata,
    name: &str,
    count: i32,
) -> Result<MetaResponse, RequestError> {
    let topic = md
        .topics
        .get(name)
        .ok_or_else(|| RequestError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len();
    let wanted = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_PARTITIONS as usize)
        .ok_or_else(|| {
            RequestError::InvalidPartitions(format!("{count} is not in 1..={MAX_PARTITIONS}"))
        })?;
    if wanted <= current {
        return Err(RequestError::InvalidPartitions(format!(
            "topic {name:?} has {current} partitions; the new count must be larger, not {count}"
        )));
    }
    // New partitions get the topic's replication factor: that of partition 0 without the
    // replicas an ongoing reassignment is removing.
    let rf = topic
        .partitions
        .first()
        .map_or(1, |p| p.replicas.len().saturating_sub(p.removing.len()));
    let assignment = place(md, wanted - current, rf)?;
    let created: Vec<PartitionState> = assignment.into_iter().map(PartitionState::new).collect();
    if let Some(topic) = md.topics.get_mut(name) {
        topic.partitions.extend(created);
    }
    Ok(MetaResponse::Ok)
}

pub(super) fn alter_configs(
    md: &mut ClusterMetadata,
    name: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<MetaResponse, RequestError> {
    validate_config_keys(changes.keys())?;
    let topic = md
        .topics
        .get_mut(name)
        .ok_or_else(|| RequestError::UnknownTopic(name.to_string()))?;
    let mut configs = topic.configs.clone();
    for (key, value) in changes {
        match value {
            Some(v) => configs.insert(key.clone(), v.clone()),
            None => configs.remove(key),
        };
    }
    if configs == topic.configs {
        return Err(RequestError::NoChange);
    }
    topic.configs = configs;
    Ok(MetaResponse::Ok)
}
