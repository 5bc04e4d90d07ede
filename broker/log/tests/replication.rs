//! Property test for replication: two replicas of one partition trade leadership across
//! leader epochs. The leader appends (stamping its epoch); the follower fetches with `read`
//! and `append_as_follower`; elections leave the old leader with writes the new one never saw
//! (zombie appends, unreplicated tails), which it must find with `end_offset_for_epoch`
//! (KIP-279's rules) and truncate. Deletes, retention and restarts (clean or not, with or
//! without the epoch checkpoint) are mixed in. In the end the follower catches up and both
//! logs must hold the same bytes, and the same epoch cache.
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as RecordTs,
};
use proptest::prelude::*;
use spate_log::{parse_batches, FlushPolicy, LogConfig, LogError, PartitionLog, TimestampType};
use std::path::Path;

#[derive(Debug, Clone)]
struct Batch {
    /// (key, value) per record.
    records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    compression: Compression,
    ts: i64,
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        prop::collection::vec(
            (
                prop::option::weighted(0.8, prop::collection::vec(b'a'..b'e', 1..3)),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            1..5,
        ),
        prop_oneof![
            3 => Just(Compression::None),
            1 => Just(Compression::Gzip),
            1 => Just(Compression::Lz4),
        ],
        0i64..10_000,
    )
        .prop_map(|(records, compression, ts)| Batch {
            records,
            compression,
            ts,
        })
}

fn encode(b: &Batch) -> Bytes {
    let records: Vec<Record> = b
        .records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: RecordTs::Creation,
            offset: i as i64,
            // Contiguous sequences keep the encoder from splitting the batch.
            sequence: -1 + i as i32,
            timestamp: b.ts + i as i64,
            key: k.clone().map(Bytes::from),
            value: Some(Bytes::from(v.clone())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: b.compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    buf.freeze()
}

#[derive(Debug, Clone)]
enum Op {
    /// The leader appends these batches.
    Produce(Vec<Batch>),
    /// The follower fetches once, with this many bytes at most.
    Fetch(usize),
    /// A new epoch; leadership moves to the other replica if `switch`, and the old leader,
    /// not yet aware, appends `zombie` at its old epoch.
    Elect { switch: bool, zombie: Vec<Batch> },
    /// Restart replica `leader ? leader : follower`.
    Restart {
        leader: bool,
        clean: bool,
        lose_checkpoint: bool,
    },
    /// DeleteRecords on the leader: up to its high watermark (-1), or to some offset below it
    /// (possibly inside a batch).
    DeleteRecords(Option<prop::sample::Index>),
    /// Both replicas apply retention.bytes.
    Retention,
    /// The follower drops out of the ISR: the leader's high watermark goes to its log end.
    IsrShrink,
    /// The follower's disk is replaced: it starts over empty.
    ReplaceFollower,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec(batch(), 1..4).prop_map(Op::Produce),
        5 => (60usize..1_500).prop_map(Op::Fetch),
        2 => (any::<bool>(), prop::collection::vec(batch(), 0..3))
            .prop_map(|(switch, zombie)| Op::Elect { switch, zombie }),
        1 => (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(leader, clean, lose_checkpoint)| Op::Restart { leader, clean, lose_checkpoint }
        ),
        1 => prop::option::of(any::<prop::sample::Index>()).prop_map(Op::DeleteRecords),
        1 => Just(Op::Retention),
        1 => Just(Op::IsrShrink),
        1 => Just(Op::ReplaceFollower),
    ]
}

struct Replica {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Option<PartitionLog>,
    /// The high watermark the broker would checkpoint.
    hw: i64,
}

impl Replica {
    fn new(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config.clone()).expect("open");
        log.set_high_watermark(0);
        Self {
            dir,
            config,
            log: Some(log),
            hw: 0,
        }
    }
    fn log(&self) -> &PartitionLog {
        self.log.as_ref().expect("open")
    }
    fn log_mut(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("open")
    }
    fn set_hw(&mut self, hw: i64) {
        self.hw = self.log_mut().set_high_watermark(hw);
    }
    fn become_leader(&mut self, epoch: i32) {
        let log = self.log_mut();
        let leo = log.log_end_offset();
        log.assign_epoch(epoch, leo).expect("assign epoch");
        log.set_leader_epoch(Some(epoch));
    }
    fn restart(&mut self, clean: bool, lose_checkpoint: bool) {
        let log = self.log.take().expect("open");
        if clean {
            log.close().expect("close");
        } else {
            drop(log);
        }
        if lose_checkpoint {
            let _ = std::fs::remove_file(self.dir.path().join("leader-epoch-checkpoint"));
        }
        let log = PartitionLog::open(self.dir.path(), self.config.clone()).expect("reopen");
        self.log = Some(log);
        let hw = self.hw;
        self.set_hw(hw);
    }
}

/// KIP-279 truncation: the follower asks the leader for the end of its latest epoch, and
/// keeps asking about lower epochs while the leader answers one the follower does not know.
fn reconcile(leader: &PartitionLog, follower: &mut PartitionLog) {
    for _ in 0..100 {
        let Some(epoch) = follower.latest_epoch() else {
            // Every stored batch carries an epoch, so no epoch means no data.
            assert_eq!(follower.log_start_offset(), follower.log_end_offset());
            return;
        };
        let (leader_epoch, leader_end) = leader
            .end_offset_for_epoch(epoch)
            .expect("the leader knows an epoch at or below the follower's");
        let leo = follower.log_end_offset();
        if leader_epoch == epoch {
            follower.truncate_to(leader_end.min(leo)).expect("truncate");
            return;
        }
        let (own_epoch, own_end) = follower
            .end_offset_for_epoch(leader_epoch)
            .expect("below the follower's latest epoch");
        if own_epoch == leader_epoch {
            follower
                .truncate_to(leader_end.min(own_end).min(leo))
                .expect("truncate");
            return;
        }
        // The follower never had the leader's epoch: cut to where its next epoch starts and
        // ask again about an older one.
        follower.truncate_to(own_end.min(leo)).expect("truncate");
    }
    panic!("truncation did not converge");
}

struct Cluster {
    replicas: [Replica; 2],
    leader: usize,
    epoch: i32,
    /// The follower must reconcile with the leader before fetching.
    diverged: bool,
}

impl Cluster {
    fn pair(&mut self) -> (&mut Replica, &mut Replica) {
        let [a, b] = &mut self.replicas;
        if self.leader == 0 {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// One follower fetch, as a broker's fetcher would do it.
    fn fetch(&mut self, max_bytes: usize) {
        let diverged = std::mem::take(&mut self.diverged);
        let (leader, follower) = self.pair();
        if diverged {
            reconcile(leader.log(), follower.log_mut());
        }
        let offset = follower.log().log_end_offset();
        // The fetch offset tells the leader what the follower has: the HW may move.
        let hw = leader.hw.max(offset.min(leader.log().log_end_offset()));
        leader.set_hw(hw);
        match leader.log().read(offset, max_bytes) {
            Ok(bytes) => {
                follower
                    .log_mut()
                    .append_as_follower_at(bytes, 0)
                    .expect("reconciled follower appends what the leader sends");
            }
            Err(LogError::OffsetOutOfRange { start, .. }) => {
                assert!(
                    offset < start,
                    "only a fetch below the log start is out of range"
                );
                follower
                    .log_mut()
                    .truncate_fully_and_start_at(start)
                    .expect("restart");
            }
            Err(e) => panic!("leader read failed: {e}"),
        }
        let follower_hw = leader.hw.min(follower.log().log_end_offset());
        follower.set_hw(follower_hw);
        // The leader's log start travels in fetch responses.
        let start = leader.log().log_start_offset();
        let f = follower.log_mut();
        if start > f.log_start_offset() && start <= f.high_watermark() {
            f.delete_records_before(start).expect("follow log start");
        }
    }

    fn elect(&mut self, switch: bool, zombie: &[Batch]) {
        self.epoch += 1;
        let old = self.leader;
        let new = if switch { 1 - old } else { old };
        self.replicas[new].become_leader(self.epoch);
        if new != old {
            for b in zombie {
                self.replicas[old]
                    .log_mut()
                    .append(encode(b), 0)
                    .expect("zombie append");
            }
            self.replicas[old].log_mut().set_leader_epoch(None);
        }
        self.leader = new;
        self.diverged = true;
    }
}

/// Every byte from `from` to the log end, read batch by batch.
fn read_all(log: &PartitionLog, mut from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while from < log.log_end_offset() {
        let bytes = log.read(from, max_bytes).expect("read");
        if bytes.is_empty() {
            break;
        }
        from = parse_batches(&bytes)
            .expect("whole batches")
            .last()
            .expect("one")
            .next_offset();
        out.extend_from_slice(&bytes);
    }
    out
}

/// The epoch cache minus a trailing entry for an epoch that wrote nothing yet (a new leader's).
fn written_epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .filter(|e| e.start_offset < log.log_end_offset())
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn config(segment_bytes: u64, log_append: bool, flush_every: Option<u64>) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        retention_ms: -1,
        retention_bytes: 1_500,
        timestamp_type: if log_append {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        flush: FlushPolicy {
            messages: flush_every,
            ms: None,
        },
        ..LogConfig::default()
    }
}

fn checkpoint_exists(dir: &Path) -> bool {
    dir.join("leader-epoch-checkpoint").exists()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn follower_converges_to_the_leader_byte_for_byte(
        ops in prop::collection::vec(op(), 1..40),
        segments in (200u64..1_500, 200u64..1_500),
        log_append in any::<bool>(),
        flush_every in prop::option::of(1u64..10),
    ) {
        let mut cluster = Cluster {
            replicas: [
                Replica::new(config(segments.0, log_append, flush_every)),
                Replica::new(config(segments.1, log_append, flush_every)),
            ],
            leader: 0,
            epoch: 0,
            diverged: false,
        };
        cluster.replicas[0].become_leader(0);
        for op in &ops {
            match op {
                Op::Produce(batches) => {
                    let epoch = cluster.epoch;
                    let (leader, _) = cluster.pair();
                    for b in batches {
                        let info = leader.log_mut().append(encode(b), 0).expect("append");
                        prop_assert!(info.batches.iter().all(|m| m.partition_leader_epoch == epoch));
                    }
                    prop_assert_eq!(leader.log().latest_epoch(), Some(epoch));
                }
                Op::Fetch(max_bytes) => cluster.fetch(*max_bytes),
                Op::Elect { switch, zombie } => cluster.elect(*switch, zombie),
                Op::Restart { leader, clean, lose_checkpoint } => {
                    let epoch = cluster.epoch;
                    let i = if *leader { cluster.leader } else { 1 - cluster.leader };
                    let before = written_epochs(cluster.replicas[i].log());
                    cluster.replicas[i].restart(*clean, *lose_checkpoint);
                    let r = &mut cluster.replicas[i];
                    prop_assert!(checkpoint_exists(r.dir.path()));
                    prop_assert_eq!(written_epochs(r.log()), before, "epochs survive a restart");
                    if *leader {
                        r.become_leader(epoch);
                    } else {
                        cluster.diverged = true;
                    }
                }
                Op::DeleteRecords(at) => {
                    let (leader, _) = cluster.pair();
                    let (old_start, hw) = (leader.log().log_start_offset(), leader.log().high_watermark());
                    let target = at.map_or(-1, |i| old_start + i.index((hw - old_start + 1) as usize) as i64);
                    let start = leader.log_mut().delete_records_before(target).expect("delete");
                    prop_assert_eq!(start, if target == -1 { hw } else { target }.max(old_start));
                    let beyond = leader.log_mut().delete_records_before(hw + 1);
                    prop_assert!(
                        matches!(beyond, Err(LogError::OffsetOutOfRange { .. })),
                        "past the high watermark"
                    );
                }
                Op::IsrShrink => {
                    let (leader, _) = cluster.pair();
                    let leo = leader.log().log_end_offset();
                    leader.set_hw(leo);
                }
                Op::ReplaceFollower => {
                    let i = 1 - cluster.leader;
                    let config = cluster.replicas[i].config.clone();
                    cluster.replicas[i] = Replica::new(config);
                    cluster.diverged = true;
                }
                Op::Retention => {
                    for r in &mut cluster.replicas {
                        let hw = r.log().high_watermark();
                        r.log_mut().apply_retention(0).expect("retention");
                        prop_assert!(r.log().log_start_offset() <= hw);
                    }
                }
            }
            for r in &cluster.replicas {
                let log = r.log();
                prop_assert!(log.log_start_offset() <= log.high_watermark());
                prop_assert!(log.high_watermark() <= log.log_end_offset());
                if let Some(first) = log.epoch_entries().first() {
                    prop_assert!(first.start_offset >= log.log_start_offset());
                }
            }
        }

        // Catch up: reconcile if needed, then fetch until the follower has it all.
        let mut rounds = 0;
        while cluster.diverged || {
            let (l, f) = cluster.pair();
            f.log().log_end_offset() != l.log().log_end_offset()
        } {
            cluster.fetch(1 << 20);
            rounds += 1;
            prop_assert!(rounds < 1_000, "follower does not catch up");
        }
        cluster.fetch(1 << 20); // the HW reaches the log end on both sides
        let last_epoch = cluster.epoch;
        let (leader, follower) = cluster.pair();
        let (l, f) = (leader.log(), follower.log());
        prop_assert_eq!(l.log_end_offset(), f.log_end_offset());
        prop_assert_eq!(l.high_watermark(), f.high_watermark());
        let from = l.log_start_offset().max(f.log_start_offset());
        let leader_bytes = read_all(l, from, 1 << 20);
        prop_assert!(leader_bytes == read_all(f, from, 1 << 20), "logs differ");
        prop_assert!(leader_bytes == read_all(f, from, 1), "logs differ batch by batch");
        if l.log_start_offset() == f.log_start_offset() {
            prop_assert_eq!(written_epochs(l), written_epochs(f));
        }
        for e in 0..=last_epoch {
            let (le, fe) = (l.end_offset_for_epoch(e), f.end_offset_for_epoch(e));
            if e < f.latest_epoch().unwrap_or(0) && l.log_start_offset() == f.log_start_offset() {
                prop_assert_eq!(le, fe, "epoch {}", e);
            }
        }
        // Both reopen (uncleanly) to the same thing, the epoch cache from its checkpoint.
        let expected = (written_epochs(l), written_epochs(f));
        for r in &mut cluster.replicas {
            r.restart(false, false);
        }
        let (leader, follower) = cluster.pair();
        let (l, f) = (leader.log(), follower.log());
        prop_assert!(leader_bytes == read_all(l, from, 1 << 20));
        prop_assert!(leader_bytes == read_all(f, from, 1 << 20));
        prop_assert_eq!((written_epochs(l), written_epochs(f)), expected);
    }
}
