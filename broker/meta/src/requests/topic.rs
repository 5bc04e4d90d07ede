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
    if let Some(retry) = check_new_topic(md, name, id, partitions, configs)? {
        return Ok(retry);
    }
    let rf = usize::try_from(replication_factor)
        .ok()
        .filter(|rf| *rf >= 1)
        .ok_or_else(|| {
            RequestError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            )
        })?;
    // `partitions` is in 1..=MAX_PARTITIONS, so the cast is lossless.
    let assignment = place(md, partitions as usize, rf)?;
    let partitions = assignment.into_iter().map(PartitionState::new).collect();
    Ok(insert(md, name, id, configs, partitions))
}

/// CreateTopic with a manual assignment, checked as Kafka's controller checks it.
pub(super) fn create_assigned(
    md: &mut ClusterMetadata,
    name: &str,
    id: Uuid,
    assignment: &[Vec<i32>],
    configs: &BTreeMap<String, String>,
) -> Result<MetaResponse, RequestError> {
    let count = i32::try_from(assignment.len()).unwrap_or(i32::MAX);
    if let Some(retry) = check_new_topic(md, name, id, count, configs)? {
        return Ok(retry);
    }
    let invalid = |m: String| Err(RequestError::InvalidReplicaAssignment(m));
    let eligible: Vec<i32> = md.eligible_brokers().iter().map(|(b, _)| *b).collect();
    let mut partitions = Vec::with_capacity(assignment.len());
    for (index, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(
                "The manual partition assignment includes an empty replica list.".into(),
            );
        }
        if replicas.len() != assignment[0].len() {
            return invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {} replica(s).",
                replicas.len(),
                assignment[0].len()
            ));
        }
        for (i, b) in replicas.iter().enumerate() {
            if replicas[..i].contains(b) {
                return invalid(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                ));
            }
            if !md.brokers.contains_key(b) {
                return invalid(format!(
                    "The manual partition assignment includes broker {b}, but no such broker is registered."
                ));
            }
        }
        // The ISR starts as the replicas that may serve; the first of them leads.
        let isr: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|b| eligible.contains(b))
            .collect();
        let Some(&leader) = isr.first() else {
            return invalid(format!(
                "All brokers specified in the manual partition assignment for partition {index} are fenced or in controlled shutdown."
            ));
        };
        partitions.push(PartitionState {
            leader,
            isr,
            ..PartitionState::new(replicas.clone())
        });
    }
    Ok(insert(md, name, id, configs, partitions))
}

/// Checks a new topic's name, id, partition count and config keys. `Some` answers a retry of
/// the same create (same id), which must succeed rather than report "exists".
fn check_new_topic(
    md: &ClusterMetadata,
    name: &str,
    id: Uuid,
    partitions: i32,
    configs: &BTreeMap<String, String>,
) -> Result<Option<MetaResponse>, RequestError> {
    validate_name(name)?;
    if let Some(t) = md.topics.get(name) {
        // A proposal forwarded to the leader may be applied and then retried when the reply is
        // lost; the same id means it is that retry.
        if t.id == id {
            return Ok(Some(MetaResponse::TopicCreated {
                id,
                partitions: t.partitions.clone(),
            }));
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
    validate_config_keys(configs.keys())?;
    Ok(None)
}

fn insert(
    md: &mut ClusterMetadata,
    name: &str,
    id: Uuid,
    configs: &BTreeMap<String, String>,
    partitions: Vec<PartitionState>,
) -> MetaResponse {
    md.topics.insert(
        name.to_string(),
        TopicMetadata {
            id,
            configs: configs.clone(),
            partitions: partitions.clone(),
        },
    );
    MetaResponse::TopicCreated { id, partitions }
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
