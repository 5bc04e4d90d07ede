//! Offsets: OffsetCommit, OffsetFetch and OffsetDelete. A commit or deletion is written to
//! the group's `__consumer_offsets` partition and applied only once replicated
//! ([`OffsetsWrite`]), so a fetch never answers from offsets a failover could lose.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::store::{GroupOffsets, GroupShard, OffsetChange};
use super::{GroupCoordinator, COMMIT_TIMEOUT};
use crate::coordinator::PendingWrite;
use crate::group::classic::{Group, GroupState};
use crate::group::codec::{self, Key, OffsetValue};

/// Committed offsets by topic, partition by partition; `None` where nothing is committed.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// Records appended to a group's `__consumer_offsets` partition that change its offsets
/// only once replicated ([`GroupCoordinator::settle_offsets`]): a fetch never sees, and a
/// failover never loses, an offset that is not in the in-sync replicas.
pub(super) struct OffsetsWrite {
    pub(super) group: String,
    /// Where the batch ends in the partition.
    pub(super) log_offset: i64,
    /// Offsets committed or forgotten.
    pub(super) changes: Vec<OffsetChange>,
    /// Forget the whole group (DeleteGroups).
    pub(super) delete_group: bool,
    /// `None` when the append is final (no followers).
    pub(super) pending: Option<PendingWrite>,
}

impl GroupCoordinator {
    /// Commits offsets for a group member (generation >= 0) or a standalone consumer
    /// (generation -1, empty member id, allowed while the group has no members). Answers
    /// once the accepted ones are replicated (and only then are they the committed ones).
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Vec<Result<(), ResponseError>> {
        let (mut results, write) =
            self.write_commit(group_id, generation, member_id, instance_id, offsets);
        if let Some(write) = write {
            if let Err(e) = self.settle_offsets(write).await {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e);
                }
            }
        }
        results
    }

    fn write_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> (Vec<Result<(), ResponseError>>, Option<OffsetsWrite>) {
        let fail_all = |e: ResponseError, n: usize| (vec![Err(e); n], None);
        if group_id.is_empty() {
            return fail_all(ResponseError::InvalidGroupId, offsets.len());
        }
        let mut state = match self.lock_owned(group_id) {
            Ok(state) => state,
            Err(e) => return fail_all(e, offsets.len()),
        };
        let consumer_group = state
            .shard
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.is_empty() || !member_id.is_empty());
        let refused = match consumer_group {
            Some(cg) => cg.check_commit(member_id, generation).err(),
            None => Self::check_classic_commit(
                &mut state.shard,
                group_id,
                generation,
                member_id,
                instance_id,
            ),
        };
        if let Some(e) = refused {
            return fail_all(e, offsets.len());
        }
        drop(state);
        self.store_offsets(group_id, offsets)
    }

    pub(super) fn check_classic_commit(
        state: &mut GroupShard,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let g = state
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        if generation >= 0 || !member_id.is_empty() || !g.is_empty() {
            if let Err(e) = g.heartbeat(member_id, instance_id, generation, Instant::now()) {
                // A commit during the join phase is fine (Kafka accepts it from a member of the
                // previous generation); during CompletingRebalance it is not.
                if e != ResponseError::RebalanceInProgress {
                    return Some(e);
                }
            }
            if g.state == GroupState::CompletingRebalance {
                return Some(ResponseError::RebalanceInProgress);
            }
        }
        None
    }

    fn store_offsets(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> (Vec<Result<(), ResponseError>>, Option<OffsetsWrite>) {
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            if self
                .runtime
                .registry()
                .topic(&topic)
                .and_then(|t| t.partition(partition).cloned())
                .is_none()
            {
                results.push(Err(ResponseError::UnknownTopicOrPartition));
                continue;
            }
            records.push((
                Key::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition,
                },
                Some(codec::encode_offset(&value)),
            ));
            accepted.push((results.len(), topic, partition, value));
            results.push(Ok(()));
        }
        if records.is_empty() {
            return (results, None);
        }
        let (log_offset, pending) = match self.persist_at(group_id, records) {
            Ok(written) => written,
            Err(e) => {
                for (i, ..) in &accepted {
                    results[*i] = Err(e);
                }
                return (results, None);
            }
        };
        let write = OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes: accepted
                .into_iter()
                .map(|(_, t, p, v)| ((t, p), Some(v)))
                .collect(),
            delete_group: false,
            pending,
        };
        (results, Some(write))
    }

    /// Waits until a write to a group's offsets is replicated, then applies it. If the
    /// group moved to another coordinator meanwhile, that one has replayed the write.
    pub(super) async fn settle_offsets(&self, w: OffsetsWrite) -> Result<(), ResponseError> {
        if let Some(pending) = w.pending {
            pending
                .wait(tokio::time::Instant::now() + COMMIT_TIMEOUT)
                .await?;
        }
        let mut st = self.runtime.lock();
        if st.check_owner(&w.group).is_err() {
            return Ok(());
        }
        let state = &mut st.shard;
        if w.delete_group {
            if let Some(mut g) = state.groups.remove(&w.group) {
                g.kill();
            }
            state.offsets.remove(&w.group);
            state.written_at.remove(&w.group);
            state.consumer_groups.remove(&w.group);
            return Ok(());
        }
        state.apply_offsets(&w.group, w.log_offset, w.changes);
        Ok(())
    }

    /// Committed offsets of a group: all of them, or those asked for (missing ones as None).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, ResponseError> {
        let state = self.lock_owned(group_id)?;
        let empty = GroupOffsets::new();
        let committed = state.shard.offsets.get(group_id).unwrap_or(&empty);
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, parts)| {
                    let values = parts
                        .into_iter()
                        .map(|p| (p, committed.get(&(topic.clone(), p)).cloned()))
                        .collect();
                    (topic, values)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> =
                    BTreeMap::new();
                for ((t, p), v) in committed {
                    by_topic
                        .entry(t.clone())
                        .or_default()
                        .push((*p, Some(v.clone())));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// The partitions of `group_id` with transactional offset commits whose transaction is
    /// not yet committed or aborted. A `require_stable` OffsetFetch (KIP-447) answers
    /// UNSTABLE_OFFSET_COMMIT for them, so that a consumer taking over after a failed
    /// transactional producer does not start from offsets the pending commit replaces.
    pub fn unstable_offsets(&self, group_id: &str) -> BTreeSet<(String, i32)> {
        let state = self.runtime.lock();
        state
            .shard
            .pending_txn
            .values()
            .filter_map(|groups| groups.get(group_id))
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    /// OffsetDelete: drop committed offsets of partitions the group no longer consumes,
    /// once the tombstones are replicated.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let (results, write) = self.write_offset_deletion(group_id, partitions)?;
        if let Some(write) = write {
            self.settle_offsets(write).await?;
        }
        Ok(results)
    }

    #[allow(clippy::type_complexity)]
    fn write_offset_deletion(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Result<(), ResponseError>>, Option<OffsetsWrite>), ResponseError> {
        let state = self.lock_owned(group_id)?;
        if !state.shard.groups.contains_key(group_id) && !state.shard.offsets.contains_key(group_id)
        {
            return Err(ResponseError::GroupIdNotFound);
        }
        let active = Self::has_members(&state.shard, group_id);
        let results: Vec<Result<(), ResponseError>> = partitions
            .iter()
            .map(|(t, _)| {
                // Kafka refuses while a live member is subscribed to the topic; members'
                // subscriptions are opaque here, so refuse while the group has members at all.
                if active {
                    Err(ResponseError::GroupSubscribedToTopic)
                } else if self.runtime.registry().topic(t).is_none() {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else {
                    Ok(())
                }
            })
            .collect();
        let records: Vec<(Key, Option<Bytes>)> = partitions
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|((t, p), _)| {
                (
                    Key::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    },
                    None,
                )
            })
            .collect();
        if records.is_empty() {
            return Ok((results, None));
        }
        drop(state);
        let (log_offset, pending) = self.persist_at(group_id, records)?;
        let changes = partitions
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(k, _)| (k.clone(), None))
            .collect();
        let write = OffsetsWrite {
            group: group_id.to_string(),
            log_offset,
            changes,
            delete_group: false,
            pending,
        };
        Ok((results, Some(write)))
    }
}
