//! Transactional offset commits (TxnOffsetCommit): written as transactional batches to the
//! group's `__consumer_offsets` partition and pending until the transaction's marker
//! reaches that partition, which commits or drops them.
use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{GroupCoordinator, OFFSETS_TOPIC};
use crate::context::now_ms;
use crate::coordinator::{PendingWrite, Placement, WriteError};
use crate::group::codec::{self, Key, OffsetValue};

impl GroupCoordinator {
    /// Writes offsets inside producer `producer_id`'s transaction: appended to the group's
    /// `__consumer_offsets` partition as a transactional batch, and pending until the
    /// transaction's marker reaches that partition (`complete_txn`). `verification`: the
    /// KIP-890 guard the write was verified under, if it opens a transaction there.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, OffsetValue)>,
        verification: Option<u64>,
    ) -> (Vec<Result<(), ResponseError>>, Option<PendingWrite>) {
        let fail_all = |e: ResponseError, n: usize| (vec![Err(e); n], None);
        if group_id.is_empty() {
            return fail_all(ResponseError::InvalidGroupId, offsets.len());
        }
        let mut state = match self.lock_owned(group_id) {
            Ok(state) => state,
            Err(e) => return fail_all(e, offsets.len()),
        };
        // Kafka checks the member and generation only when the client sends them (v3+).
        if generation >= 0 || !member_id.is_empty() {
            let refused = match state
                .shard
                .consumer_groups
                .get(group_id)
                .filter(|g| !g.is_empty())
            {
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
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            records.push((
                Key::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition,
                },
                codec::encode_offset(&value),
            ));
            accepted.push((results.len(), topic, partition, value));
            results.push(Ok(()));
        }
        let producer = (producer_id, producer_epoch);
        let replicating = match self.persist_txn(group_id, producer, records, verification) {
            Ok(r) => r,
            Err(e) => {
                for (i, ..) in &accepted {
                    results[*i] = Err(e);
                }
                return (results, None);
            }
        };
        let pending = state
            .shard
            .pending_txn
            .entry(producer_id)
            .or_default()
            .entry(group_id.to_string())
            .or_default();
        for (_, topic, partition, value) in accepted {
            pending.insert((topic, partition), value);
        }
        (results, replicating)
    }

    /// A transaction marker was written to `__consumer_offsets`-`partition`.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut st = self.runtime.lock();
        // Before the first ownership sync finds the topic, the registry knows its size.
        let partitions = match st.partitions() {
            n if n > 0 => n,
            _ => self
                .runtime
                .registry()
                .topic(OFFSETS_TOPIC)
                .map_or(0, |t| t.meta.partitions),
        };
        let at = Placement {
            partition,
            partitions,
        };
        st.shard.complete_txn(at, producer_id, commit);
    }

    fn persist_txn(
        &self,
        group: &str,
        producer: (i64, i16),
        records: Vec<(Key, Bytes)>,
        verification: Option<u64>,
    ) -> Result<Option<PendingWrite>, ResponseError> {
        if records.is_empty() {
            return Ok(None);
        }
        let partition = self.runtime.partition_of(group)?;
        let records = records
            .into_iter()
            .map(|(k, v)| (codec::encode_key(&k), Some(v)))
            .collect();
        let written = self
            .runtime
            .append_transactional(&partition, records, producer, verification, now_ms())
            .map_err(|e| {
                tracing::warn!(
                    group,
                    producer_id = producer.0,
                    "writing transactional offsets: {e}"
                );
                match &e {
                    WriteError::Append(a) => match a.code {
                        ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
                        ResponseError::InvalidProducerEpoch => ResponseError::ProducerFenced,
                        ResponseError::InvalidTxnState => ResponseError::InvalidTxnState,
                        _ => ResponseError::CoordinatorNotAvailable,
                    },
                    WriteError::Encode(_) => e.code(),
                }
            })?;
        // As for plain commits: acknowledged only once replicated, or a leader change (even a
        // preferred-leader move) could drop offsets whose transaction then commits.
        Ok(written.pending)
    }
}
