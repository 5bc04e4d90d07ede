//! The coordinator runtime: what the group and transaction coordinators do alike with the
//! partitions of their topic (`__consumer_offsets`, `__transaction_state`), after Kafka's
//! `CoordinatorRuntime`.
//!
//! A coordinator serves the keys placed on the partitions it owns: those this broker leads.
//! A partition is loaded by replaying its
//! log through the coordinator's [`Shard`] whenever it comes to be owned in a new leader
//! epoch, and unloaded when it is no longer owned. A change is appended as a record batch and
//! counts only once the in-sync replicas have it ([`PendingWrite`]).
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, MutexGuard};
use spate_log::LogError;

use super::partition_for;
use crate::cluster::{AppendError, Partition, Registry};
use crate::replication::wait::Unreplicated;

/// Bytes read per step while replaying a partition.
const REPLAY_CHUNK: usize = 4 * 1024 * 1024;

/// A coordinator's state, rebuilt from the records of the partitions it owns.
pub trait Shard: Default {
    /// Applies one record of partition `at`, in log order, while the partition loads.
    /// Control records (transaction markers) come through too.
    fn replay(&mut self, at: Placement, record: &Record);

    /// Forgets what is placed on partition `at` (another broker coordinates it now, or it is
    /// about to be loaded again).
    fn unload(&mut self, at: Placement);
}

/// One partition of a coordinator topic and the topic's partition count, which together say
/// which keys it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub partition: i32,
    /// 0 while the topic does not exist.
    pub partitions: i32,
}

impl Placement {
    /// Is `key` placed on this partition?
    pub fn holds(&self, key: &str) -> bool {
        partition_for(key, self.partitions) == self.partition
    }
}

/// A partition that could not be loaded; it stays unowned and the next sync tries again.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    #[error("decoding record batches: {0}")]
    Decode(String),
}

/// A write to a coordinator topic that failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("encoding a record batch: {0}")]
    Encode(String),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl WriteError {
    /// What a coordinator answers: NOT_COORDINATOR when leadership moved (the client finds
    /// the new coordinator), COORDINATOR_NOT_AVAILABLE for a log that refused the write.
    pub fn code(&self) -> ResponseError {
        match self {
            WriteError::Encode(_) => ResponseError::UnknownServerError,
            WriteError::Append(e) if e.code == ResponseError::NotLeaderOrFollower => {
                ResponseError::NotCoordinator
            }
            WriteError::Append(_) => ResponseError::CoordinatorNotAvailable,
        }
    }
}

/// Where an appended batch ends, and what to wait for before it counts.
pub struct Written {
    pub last_offset: i64,
    /// `None` when the append is final (no followers).
    pub pending: Option<PendingWrite>,
}

/// A batch appended to a replicated partition that the high watermark has not passed yet.
pub struct PendingWrite(Unreplicated);

impl PendingWrite {
    /// Waits until the high watermark passes the batch: NOT_COORDINATOR if leadership moved
    /// meanwhile, REQUEST_TIMED_OUT at the deadline.
    pub async fn wait(self, deadline: tokio::time::Instant) -> Result<(), ResponseError> {
        self.0.wait_until(deadline).await.map_err(|e| match e {
            ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
            e => e,
        })
    }
}

/// A shard with the partitions it was loaded from. Both change under one lock, so a request
/// never sees a partition owned whose records are not in the shard.
pub struct Loaded<S> {
    pub shard: S,
    /// Partitions loaded, each with the leader epoch it was loaded in.
    epochs: BTreeMap<i32, i32>,
    /// The topic's partition count (0 until it exists).
    partitions: i32,
}

impl<S> Loaded<S> {
    /// The topic's partition count when ownership was last synced (0 before it exists).
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// NOT_COORDINATOR unless `key`'s partition is loaded here; COORDINATOR_NOT_AVAILABLE
    /// while the topic does not exist.
    pub fn check_owner(&self, key: &str) -> Result<(), ResponseError> {
        if self.partitions <= 0 {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if self
            .epochs
            .contains_key(&partition_for(key, self.partitions))
        {
            Ok(())
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }
}

pub struct CoordinatorRuntime<S> {
    registry: Arc<Registry>,
    topic: &'static str,
    state: Mutex<Loaded<S>>,
}

impl<S: Shard> CoordinatorRuntime<S> {
    /// A runtime for `topic`, owning the partitions this broker leads. Nothing is loaded
    /// before [`CoordinatorRuntime::sync_ownership`].
    pub fn new(registry: Arc<Registry>, topic: &'static str) -> Self {
        Self {
            registry,
            topic,
            state: Mutex::new(Loaded {
                shard: S::default(),
                epochs: BTreeMap::new(),
                partitions: 0,
            }),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn lock(&self) -> MutexGuard<'_, Loaded<S>> {
        self.state.lock()
    }

    /// Loads the partitions this broker has come to own (or owns in a new leader epoch) and
    /// unloads those it no longer owns. Cheap when nothing changed. Returns the partitions
    /// that failed to load (logged here; they stay unowned until a later sync loads them).
    pub fn sync_ownership(&self) -> Vec<(i32, LoadError)> {
        let topic = self.registry.topic(self.topic);
        let owned: BTreeMap<i32, Arc<Partition>> = topic
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.is_leader())
            .map(|p| (p.index, p.clone()))
            .collect();
        let name = self.topic;
        let mut st = self.state.lock();
        st.partitions = topic.as_ref().map_or(0, |t| t.meta.partitions);
        let gone: Vec<i32> = st
            .epochs
            .keys()
            .filter(|p| !owned.contains_key(p))
            .copied()
            .collect();
        for index in gone {
            tracing::info!(partition = index, "no longer coordinating {name}-{index}");
            st.unload(index);
        }
        let mut failed = Vec::new();
        for (&index, p) in &owned {
            let epoch = p.leader_epoch();
            if st.epochs.get(&index) == Some(&epoch) {
                continue;
            }
            // Newly owned, or owned in a new epoch (another leader may have written to it
            // meanwhile): replayed from scratch.
            st.unload(index);
            let at = Placement {
                partition: index,
                partitions: st.partitions,
            };
            match replay(&mut st.shard, at, p) {
                Ok(records) => {
                    tracing::info!(
                        partition = index,
                        epoch,
                        records,
                        "coordinating {name}-{index}"
                    );
                    st.epochs.insert(index, epoch);
                }
                Err(e) => {
                    tracing::error!(partition = index, "loading {name}-{index}: {e}");
                    failed.push((index, e));
                }
            }
        }
        failed
    }

    /// `key`'s partition if this broker hosts it (COORDINATOR_NOT_AVAILABLE otherwise), owned
    /// or not.
    pub fn partition_of(&self, key: &str) -> Result<Arc<Partition>, ResponseError> {
        let topic = self
            .registry
            .topic(self.topic)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        topic
            .partition(partition_for(key, topic.meta.partitions))
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// `key`'s partition if this broker owns it now, loading it first if it came to own it
    /// since the last sync: NOT_COORDINATOR (which sends clients back to FindCoordinator)
    /// for a partition it does not own, COORDINATOR_LOAD_IN_PROGRESS if loading failed.
    pub fn owned_partition(&self, key: &str) -> Result<Arc<Partition>, ResponseError> {
        let topic = self
            .registry
            .topic(self.topic)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let index = partition_for(key, topic.meta.partitions);
        let p = topic
            .partition(index)
            .ok_or(ResponseError::NotCoordinator)?
            .clone();
        if !p.is_leader() {
            return Err(ResponseError::NotCoordinator);
        }
        let loaded = |rt: &Self| rt.state.lock().epochs.get(&index) == Some(&p.leader_epoch());
        if !loaded(self) {
            self.sync_ownership();
            if !loaded(self) {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
        }
        Ok(p)
    }

    /// Does this broker still own `partition` in leader epoch `epoch` (the one a write was
    /// made in)? A write outlives no change of coordinator.
    pub fn owns(&self, partition: &Partition, epoch: i32) -> bool {
        partition.leader_epoch() == epoch && partition.is_leader()
    }
}

impl<S> CoordinatorRuntime<S> {
    /// Appends `records` ((key, value), a `None` value being a tombstone) as one batch.
    pub fn append(
        &self,
        partition: &Arc<Partition>,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<Written, WriteError> {
        let batch = encode_batch(records, None, now_ms)?;
        let appended = partition.append(batch, now_ms)?;
        Ok(self.written(partition, appended.last_offset))
    }

    /// Appends `records` as a transactional batch of `producer` (id, epoch), which opens
    /// (or continues) its transaction on the partition. `verification`: the KIP-890 guard
    /// the write was verified under, if it opens one.
    pub fn append_transactional(
        &self,
        partition: &Arc<Partition>,
        records: Vec<(Bytes, Option<Bytes>)>,
        producer: (i64, i16),
        verification: Option<u64>,
        now_ms: i64,
    ) -> Result<Written, WriteError> {
        let batch = encode_batch(records, Some(producer), now_ms)?;
        let appended = partition.append_internal(batch, now_ms, verification)?;
        Ok(self.written(partition, appended.last_offset))
    }

    /// After an append: wakes the followers' long-polling fetches (so they copy it now, not
    /// after their wait) and, with followers, says what to wait for.
    fn written(&self, partition: &Arc<Partition>, last_offset: i64) -> Written {
        self.registry.notify_append();
        Written {
            last_offset,
            pending: Unreplicated::after_append(partition, last_offset).map(PendingWrite),
        }
    }
}

impl<S: Shard> Loaded<S> {
    fn unload(&mut self, partition: i32) {
        self.shard.unload(Placement {
            partition,
            partitions: self.partitions,
        });
        self.epochs.remove(&partition);
    }
}

/// One uncompressed batch of `records`; transactional when `producer` (id, epoch) is given.
fn encode_batch(
    records: Vec<(Bytes, Option<Bytes>)>,
    producer: Option<(i64, i16)>,
    now_ms: i64,
) -> Result<Bytes, WriteError> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .into_iter()
        .zip(0i64..)
        .map(|((key, value), offset)| Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| WriteError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Replays `p`'s log, start to end, into `shard`; returns how many records it read.
fn replay<S: Shard>(shard: &mut S, at: Placement, p: &Partition) -> Result<u64, LoadError> {
    let (mut offset, end) = p.replay_range()?;
    let mut records = 0;
    while offset < end {
        let chunk = p.read(offset, REPLAY_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        let batches = spate_log::parse_batches(&chunk)?;
        let Some(last) = batches.last() else { break };
        offset = last.last_offset() + 1;
        let mut buf = chunk.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf)
            .map_err(|e| LoadError::Decode(e.to_string()))?;
        for set in sets {
            for r in &set.records {
                shard.replay(at, r);
                records += 1;
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::context::now_ms;
    use crate::coordinator::test_node;

    const TOPIC: &str = "__test_coordinator";

    /// Remembers what it replayed, partition by partition, and what it was told to unload
    /// (also before each load, which starts from nothing).
    #[derive(Default)]
    struct Keys {
        replayed: Vec<(i32, String, Option<Bytes>)>,
        unloaded: Vec<i32>,
    }

    impl Shard for Keys {
        fn replay(&mut self, at: Placement, r: &Record) {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            self.replayed.push((at.partition, key, r.value.clone()));
        }

        fn unload(&mut self, at: Placement) {
            self.replayed.retain(|(p, ..)| *p != at.partition);
            self.unloaded.push(at.partition);
        }
    }

    /// A key placed on `partition` of two.
    fn key_on(partition: i32) -> String {
        (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| partition_for(k, 2) == partition)
            .unwrap()
    }

    fn runtime(registry: &Arc<Registry>) -> CoordinatorRuntime<Keys> {
        CoordinatorRuntime::new(registry.clone(), TOPIC)
    }

    /// Creates the coordinator topic through the quorum: this node leads every partition.
    async fn create_topic(registry: &Arc<Registry>, partitions: i32) {
        test_node::ensure_internal_topic(registry, TOPIC, partitions, BTreeMap::new()).await;
    }

    fn write(rt: &CoordinatorRuntime<Keys>, key: &str, value: Option<&'static [u8]>) -> Written {
        let p = rt.partition_of(key).unwrap();
        let record = vec![(Bytes::from(key.to_string()), value.map(Bytes::from_static))];
        rt.append(&p, record, now_ms()).unwrap()
    }

    fn replayed(rt: &CoordinatorRuntime<Keys>) -> Vec<(i32, String, Option<Bytes>)> {
        rt.lock().shard.replayed.clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_node_loads_every_partition_it_leads_once_replaying_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let registry = test_node::start(dir.path()).await;
        let writer = runtime(&registry);
        assert_eq!(
            writer.partition_of("k").err(),
            Some(ResponseError::CoordinatorNotAvailable),
            "no topic yet"
        );
        // The one voter of its quorum leads every partition of the topic it creates.
        create_topic(&registry, 2).await;
        let (a, b) = (key_on(0), key_on(1));
        assert_eq!(write(&writer, &a, Some(b"1")).last_offset, 0);
        write(&writer, &b, Some(b"2"));
        let w = write(&writer, &a, None);
        assert_eq!(w.last_offset, 1);
        assert!(w.pending.is_none(), "a single node's appends are final");

        let rt = runtime(&registry);
        assert_eq!(
            rt.lock().check_owner(&a),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert!(rt.sync_ownership().is_empty());
        let one = |v: &'static [u8]| Some(Bytes::from_static(v));
        assert_eq!(
            replayed(&rt),
            vec![
                (0, a.clone(), one(b"1")),
                (0, a.clone(), None),
                (1, b.clone(), one(b"2"))
            ]
        );
        assert_eq!(rt.lock().check_owner(&a), Ok(()));
        assert_eq!(rt.lock().partitions(), 2);
        // Nothing changed: nothing is replayed or unloaded again.
        let unloaded = rt.lock().shard.unloaded.len();
        rt.sync_ownership();
        assert_eq!(replayed(&rt).len(), 3);
        assert_eq!(rt.lock().shard.unloaded.len(), unloaded);
        test_node::stop(registry).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn led_partitions_load_in_each_new_leader_epoch_and_unload_when_no_longer_led() {
        let dir = tempfile::tempdir().unwrap();
        let registry = test_node::start(dir.path()).await;
        create_topic(&registry, 2).await;
        let rt = runtime(&registry);
        let (a, b) = (key_on(0), key_on(1));
        write(&rt, &a, Some(b"1"));
        write(&rt, &b, Some(b"2"));
        let topic = registry.topic(TOPIC).unwrap();
        let (p0, p1) = (topic.partitions[0].clone(), topic.partitions[1].clone());

        // Another broker comes to lead both partitions before anything is loaded (only
        // `registry.sync()` would apply the metadata again, and nothing calls it here).
        p0.become_follower();
        p1.become_follower();

        // Leading nothing, it owns nothing.
        rt.sync_ownership();
        assert!(replayed(&rt).is_empty());
        assert_eq!(
            rt.lock().check_owner(&a),
            Err(ResponseError::NotCoordinator)
        );

        p0.become_leader(1).unwrap();
        rt.sync_ownership();
        assert_eq!(
            replayed(&rt),
            vec![(0, a.clone(), Some(Bytes::from_static(b"1")))]
        );
        assert_eq!(rt.lock().check_owner(&a), Ok(()));
        assert_eq!(
            rt.lock().check_owner(&b),
            Err(ResponseError::NotCoordinator)
        );
        assert!(rt.owns(&p0, 1) && !rt.owns(&p0, 2) && !rt.owns(&p1, 0));

        // Written while owned, then leadership moves away and comes back in a new epoch: the
        // partition is unloaded, then replayed from the log with the new record.
        write(&rt, &a, Some(b"3"));
        p0.become_follower();
        rt.sync_ownership();
        assert!(replayed(&rt).is_empty());
        assert_eq!(
            rt.lock().check_owner(&a),
            Err(ResponseError::NotCoordinator)
        );
        assert!(!rt.owns(&p0, 1));

        p0.become_leader(2).unwrap();
        p1.become_leader(2).unwrap();
        rt.sync_ownership();
        let values: Vec<(i32, Option<Bytes>)> =
            replayed(&rt).into_iter().map(|(p, _, v)| (p, v)).collect();
        let one = |v: &'static [u8]| Some(Bytes::from_static(v));
        assert_eq!(values, vec![(0, one(b"1")), (0, one(b"3")), (1, one(b"2"))]);

        // Still leading, in a new epoch: unloaded and loaded again, not replayed twice.
        p1.become_leader(3).unwrap();
        rt.lock().shard.unloaded.clear();
        rt.sync_ownership();
        assert_eq!(rt.lock().shard.unloaded, vec![1]);
        assert_eq!(replayed(&rt).len(), 3);
        test_node::stop(registry).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_partition_loads_a_newly_led_partition_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let registry = test_node::start(dir.path()).await;
        let rt = runtime(&registry);
        let a = key_on(0);
        assert_eq!(
            rt.owned_partition(&a).err(),
            Some(ResponseError::CoordinatorNotAvailable),
            "no topic yet"
        );
        create_topic(&registry, 2).await;
        write(&rt, &a, Some(b"1"));
        let p0 = registry.topic(TOPIC).unwrap().partitions[0].clone();
        // Another broker leads it.
        p0.become_follower();
        assert_eq!(
            rt.owned_partition(&a).err(),
            Some(ResponseError::NotCoordinator)
        );
        p0.become_leader(1).unwrap();
        assert_eq!(rt.owned_partition(&a).unwrap().index, 0);
        assert_eq!(replayed(&rt).len(), 1, "loaded without waiting for a sync");
        test_node::stop(registry).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_with_followers_counts_once_they_have_it() {
        let dir = tempfile::tempdir().unwrap();
        let registry = test_node::start(dir.path()).await;
        create_topic(&registry, 1).await;
        let rt = runtime(&registry);
        let p = registry.topic(TOPIC).unwrap().partitions[0].clone();
        // The partition gains a follower in sync, and this node leads it in a new epoch.
        let me = registry.quorum().broker_id;
        let follower = me + 1;
        p.set_assignment(me, &[me, follower], &[me, follower], 0);
        p.become_leader(1).unwrap();
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);

        let w = write(&rt, "k", Some(b"1"));
        let pending = w.pending.expect("a follower in sync to wait for");
        assert_eq!(
            pending.wait(soon()).await,
            Err(ResponseError::RequestTimedOut)
        );

        // The follower fetches past the write: the high watermark passes it.
        let w = write(&rt, "k", Some(b"2"));
        p.record_follower_fetch(follower, w.last_offset + 1, now_ms());
        assert_eq!(w.pending.unwrap().wait(soon()).await, Ok(()));

        // Leadership moves while a write waits: the client is sent to the new coordinator.
        let w = write(&rt, "k", Some(b"3"));
        p.become_follower();
        assert_eq!(
            w.pending.unwrap().wait(soon()).await,
            Err(ResponseError::NotCoordinator)
        );
        test_node::stop(registry).await;
    }
}
