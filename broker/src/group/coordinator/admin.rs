//! Admin views and deletion: ListGroups, DescribeGroups (classic and KIP-848 groups alike)
//! and DeleteGroups.
use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::offsets::OffsetsWrite;
use super::store::GroupShard;
use super::GroupCoordinator;
use crate::group::classic::GroupState;
use crate::group::codec::Key;
use crate::group::consumer_protocol;

/// A group as DescribeGroups shows it.
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

impl GroupCoordinator {
    /// (group id, protocol type, state name, group type) of every group.
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let state = self.runtime.lock();
        let mut ids: Vec<&String> = state
            .shard
            .groups
            .keys()
            .chain(state.shard.offsets.keys())
            .chain(state.shard.consumer_groups.keys())
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| {
                if let Some(g) = state
                    .shard
                    .consumer_groups
                    .get(id)
                    .filter(|g| !g.is_empty())
                {
                    return Some((
                        id.clone(),
                        "consumer".to_string(),
                        g.state_name(),
                        "consumer",
                    ));
                }
                match state.shard.groups.get(id) {
                    Some(g) if g.state == GroupState::Dead => None,
                    Some(g) => Some((
                        id.clone(),
                        g.protocol_type.clone().unwrap_or_default(),
                        g.state.name(),
                        "classic",
                    )),
                    None => Some((
                        id.clone(),
                        String::new(),
                        GroupState::Empty.name(),
                        "classic",
                    )),
                }
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let state = self.runtime.lock();
        if let Some(cg) = state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty())
        {
            // Admin clients parse members in the classic consumer protocol's format.
            let names: BTreeMap<uuid::Uuid, String> = self
                .runtime
                .registry()
                .topics()
                .iter()
                .map(|t| (t.meta.id, t.meta.name.clone()))
                .collect();
            return GroupDescription {
                state: cg.state_name(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor.clone(),
                members: cg
                    .members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            consumer_protocol::subscription(&m.subscribed),
                            consumer_protocol::assignment(&m.assigned, &names),
                        )
                    })
                    .collect(),
            };
        }
        match state.shard.groups.get(group_id) {
            Some(g) => GroupDescription {
                state: g.state.name(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                // Kafka shows the protocol only once a generation has formed.
                protocol: if matches!(
                    g.state,
                    GroupState::Stable | GroupState::CompletingRebalance
                ) {
                    g.protocol.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                members: g
                    .members
                    .values()
                    .map(|m| {
                        let metadata = m.metadata_for(g.protocol.as_deref().unwrap_or_default());
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            metadata,
                            m.assignment.clone(),
                        )
                    })
                    .collect(),
            },
            None if state.shard.offsets.contains_key(group_id) => GroupDescription {
                state: "Empty",
                protocol_type: String::new(),
                protocol: String::new(),
                members: vec![],
            },
            None => GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: vec![],
            },
        }
    }

    pub(super) fn has_members(state: &GroupShard, group_id: &str) -> bool {
        state.groups.get(group_id).is_some_and(|g| !g.is_empty())
            || state
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty())
    }

    /// Deletes an empty group and its offsets, once the tombstones are replicated.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let write = self.write_group_deletion(group_id)?;
        self.settle_offsets(write).await
    }

    fn write_group_deletion(&self, group_id: &str) -> Result<OffsetsWrite, ResponseError> {
        let state = self.lock_owned(group_id)?;
        let known = state.shard.groups.contains_key(group_id)
            || state.shard.offsets.contains_key(group_id)
            || state.shard.consumer_groups.contains_key(group_id);
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        if Self::has_members(&state.shard, group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut records: Vec<(Key, Option<Bytes>)> = state
            .shard
            .offsets
            .get(group_id)
            .map(|o| {
                o.keys()
                    .map(|(t, p)| {
                        (
                            Key::Offset {
                                group: group_id.to_string(),
                                topic: t.clone(),
                                partition: *p,
                            },
                            None,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push((
            Key::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        let (log_offset, pending) = self.persist_at(group_id, records)?;
        Ok(OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes: Vec::new(),
            delete_group: true,
            pending,
        })
    }
}
