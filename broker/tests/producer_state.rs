//! Producer state survives a graceful restart through its snapshots: a retry of an
//! idempotent producer's last batch is still answered as a duplicate with its original
//! offset, an open transaction still holds the last stable offset, and an aborted one stays
//! listed for read_committed consumers. It does not grow forever: idle producer ids and
//! transactional ids expire, open transactions never. And a transactional batch opens a
//! transaction on a partition only if the coordinator confirms the partition is in the
//! producer's ongoing transaction (KIP-890 part 1).
//!
//! Integration test: an in-process broker on a temporary data dir, driven over real sockets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{call, end_offset, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::testing::{record_batch, Writer};
use spate_broker::Broker;
use tokio::net::TcpStream;

const TOPIC: &str = "snap";
const TXN: &str = "snap-txn";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn start_broker(dir: &std::path::Path) -> (Broker, TcpStream) {
    start_broker_with(dir, &[]).await
}

async fn start_broker_with(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Broker, TcpStream) {
    let broker = start(dir, extra).await;
    let conn = TcpStream::connect(broker.local_addr).await.unwrap();
    (broker, conn)
}

/// One record from `pid`/`epoch` at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, transactional: bool) -> Bytes {
    let writer = Writer {
        producer_id: pid,
        epoch,
        sequence: seq,
        transactional,
    };
    let value = format!("value-{pid}-{seq}");
    record_batch(writer, 1_700_000_000_000, &[(None, value.as_bytes())])
}

/// Produces `records`: (error code, base offset).
async fn produce(conn: &mut TcpStream, records: Bytes, txn: Option<&str>) -> (i16, i64) {
    let req =
        common::produce(TOPIC, records).with_transactional_id(txn.map(|t| TransactionalId(s(t))));
    let resp: ProduceResponse = call(conn, ApiKey::Produce, 9, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn create_topic(conn: &mut TcpStream) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("segment.bytes"))
                    .with_value(Some(s("300"))),
            ])]);
    let resp: CreateTopicsResponse = call(conn, ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

/// InitProducerId, retried while the coordinator loads: (producer id, epoch).
async fn init_producer(conn: &mut TcpStream, txn: Option<&str>) -> (i64, i16) {
    if let Some(id) = txn {
        common::find_coordinator(conn, 1, id).await;
    }
    for _ in 0..100 {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp: InitProducerIdResponse = call(conn, ApiKey::InitProducerId, 4, &req).await;
        if resp.error_code == 0 {
            return (resp.producer_id.0, resp.producer_epoch);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("InitProducerId kept failing");
}

async fn add_partition(conn: &mut TcpStream, pid: i64, epoch: i16) {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(TXN)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![0]),
        ]);
    let resp: AddPartitionsToTxnResponse = call(conn, ApiKey::AddPartitionsToTxn, 3, &req).await;
    assert_eq!(
        resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
}

async fn end_txn(conn: &mut TcpStream, pid: i64, epoch: i16, committed: bool) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(committed);
    let resp: EndTxnResponse = call(conn, ApiKey::EndTxn, 3, &req).await;
    assert_eq!(resp.error_code, 0);
}

/// A read_committed fetch from offset 0: (high watermark, last stable offset, aborted
/// transactions as (producer id, first offset)).
async fn fetch_committed(conn: &mut TcpStream) -> (i64, i64, Vec<(i64, i64)>) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(TOPIC)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = call(conn, ApiKey::Fetch, 11, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    (p.high_watermark, p.last_stable_offset, aborted)
}

#[tokio::test]
async fn producer_state_survives_a_restart_through_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = start_broker(dir.path()).await;
    create_topic(&mut conn).await;

    // An idempotent producer writes six batches; 300-byte segments roll on the way.
    let (pid, epoch) = init_producer(&mut conn, None).await;
    let mut last_base = -1;
    for seq in 0..6 {
        let (code, base) = produce(&mut conn, batch(pid, epoch, seq, false), None).await;
        assert_eq!(code, 0);
        last_base = base;
    }

    // A transaction aborted, then one left open.
    let (tpid, tepoch) = init_producer(&mut conn, Some(TXN)).await;
    add_partition(&mut conn, tpid, tepoch).await;
    let (code, aborted_at) = produce(&mut conn, batch(tpid, tepoch, 0, true), Some(TXN)).await;
    assert_eq!(code, 0);
    end_txn(&mut conn, tpid, tepoch, false).await;
    let mut settled = false;
    for _ in 0..100 {
        let (hw, lso, _) = fetch_committed(&mut conn).await;
        if hw == lso && hw > aborted_at + 1 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "the abort marker was written");
    add_partition(&mut conn, tpid, tepoch).await;
    let (code, open_at) = produce(&mut conn, batch(tpid, tepoch, 1, true), Some(TXN)).await;
    assert_eq!(code, 0);
    let end = end_offset(&mut conn, TOPIC).await;
    drop(conn);
    broker.shutdown().await;

    let partition_dir = dir.path().join(format!("{TOPIC}-0"));
    let snapshots: Vec<String> = std::fs::read_dir(&partition_dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    assert!(
        snapshots.contains(&format!("{end:020}.snapshot")),
        "a snapshot at the log end {end}: {snapshots:?}"
    );

    let (broker, mut conn) = start_broker(dir.path()).await;
    // The retried last batch is a duplicate, answered with its original offset.
    let (code, base) = produce(&mut conn, batch(pid, epoch, 5, false), None).await;
    assert_eq!((code, base), (0, last_base));
    assert_eq!(
        end_offset(&mut conn, TOPIC).await,
        end,
        "nothing was written"
    );
    // The open transaction still holds the LSO; the aborted one is still listed.
    let (hw, lso, aborted) = fetch_committed(&mut conn).await;
    assert_eq!((hw, lso), (end, open_at));
    assert_eq!(aborted, vec![(tpid, aborted_at)]);
    // And the producer carries on where it was.
    let (code, base) = produce(&mut conn, batch(pid, epoch, 6, false), None).await;
    assert_eq!((code, base), (0, end));
    drop(conn);
    broker.shutdown().await;
}

/// The producer ids DescribeProducers lists for the partition.
async fn described_producers(conn: &mut TcpStream) -> Vec<i64> {
    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partition_indexes(vec![0]),
    ]);
    let resp: DescribeProducersResponse = call(conn, ApiKey::DescribeProducers, 0, &req).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.active_producers.iter().map(|a| a.producer_id.0).collect()
}

/// DescribeTransactions for TXN: (error code, state).
async fn described_txn(conn: &mut TcpStream) -> (i16, String) {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(TXN))]);
    let resp: DescribeTransactionsResponse =
        call(conn, ApiKey::DescribeTransactions, 0, &req).await;
    let t = &resp.transaction_states[0];
    (t.error_code, t.transaction_state.to_string())
}

/// Polls `probe` until it returns what `want` accepts, for up to 10 s.
async fn until<T: std::fmt::Debug>(
    conn: &mut TcpStream,
    mut probe: impl AsyncFnMut(&mut TcpStream) -> T,
    want: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = probe(conn).await;
        if want(&got) {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_producer_ids_and_transactional_ids_expire_open_transactions_do_not() {
    let dir = tempfile::tempdir().unwrap();
    // The test batches carry 2023 timestamps, long expired; markers carry the time now.
    let (broker, mut conn) = start_broker_with(
        dir.path(),
        &[
            ("producer.id.expiration.ms", "2000"),
            ("producer.id.expiration.check.interval.ms", "100"),
            ("transactional.id.expiration.ms", "1000"),
            (
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                "100",
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                "100",
            ),
        ],
    )
    .await;
    create_topic(&mut conn).await;
    let (pid, epoch) = init_producer(&mut conn, None).await;
    for seq in 0..2 {
        assert_eq!(
            produce(&mut conn, batch(pid, epoch, seq, false), None)
                .await
                .0,
            0
        );
    }
    let (tpid, tepoch) = init_producer(&mut conn, Some(TXN)).await;
    add_partition(&mut conn, tpid, tepoch).await;
    assert_eq!(
        produce(&mut conn, batch(tpid, tepoch, 0, true), Some(TXN))
            .await
            .0,
        0
    );

    // The idle idempotent producer goes; the one with a transaction open stays, and so does
    // its transactional id, however long it has been idle.
    until(&mut conn, described_producers, |p| p == &vec![tpid]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(described_txn(&mut conn).await, (0, "Ongoing".to_string()));
    assert_eq!(described_producers(&mut conn).await, vec![tpid]);
    // The forgotten producer must start over at sequence 0 (OUT_OF_ORDER_SEQUENCE_NUMBER).
    assert_eq!(
        produce(&mut conn, batch(pid, epoch, 2, false), None)
            .await
            .0,
        45
    );

    // Once the transaction ends, both the producer and the transactional id expire.
    end_txn(&mut conn, tpid, tepoch, true).await;
    until(&mut conn, described_producers, |p| p.is_empty()).await;
    until(&mut conn, described_txn, |t| t.0 == 105).await; // TRANSACTIONAL_ID_NOT_FOUND
    let (again, _) = init_producer(&mut conn, Some(TXN)).await;
    assert_ne!(
        again, tpid,
        "an expired transactional id gets a new producer id"
    );
    drop(conn);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_transactional_batch_opens_a_transaction_only_if_its_partition_was_added() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = start_broker(dir.path()).await;
    create_topic(&mut conn).await;
    let (pid, epoch) = init_producer(&mut conn, Some(TXN)).await;

    // Never added: refused, and nothing is left open to hold back read_committed readers.
    let (code, _) = produce(&mut conn, batch(pid, epoch, 0, true), Some(TXN)).await;
    assert_eq!(code, 48, "INVALID_TXN_STATE");
    let (hw, lso, _) = fetch_committed(&mut conn).await;
    assert_eq!((hw, lso), (0, 0));

    // Added: accepted, and later batches of the transaction need no new verification.
    add_partition(&mut conn, pid, epoch).await;
    assert_eq!(
        produce(&mut conn, batch(pid, epoch, 0, true), Some(TXN))
            .await
            .0,
        0
    );
    assert_eq!(
        produce(&mut conn, batch(pid, epoch, 1, true), Some(TXN))
            .await
            .0,
        0
    );
    end_txn(&mut conn, pid, epoch, false).await;
    until(&mut conn, fetch_committed, |(hw, lso, _)| {
        hw == lso && *hw == 3
    })
    .await;

    // A late batch of the aborted transaction cannot open a new, hanging one.
    let (code, _) = produce(&mut conn, batch(pid, epoch, 2, true), Some(TXN)).await;
    assert_eq!(code, 48, "INVALID_TXN_STATE");
    assert_eq!(
        fetch_committed(&mut conn).await.1,
        3,
        "the LSO is not held back"
    );
    drop(conn);
    broker.shutdown().await;
}

/// TxnOffsetCommit of offset 1 for the snapshot topic in group `g`: the partition's error.
async fn txn_offset_commit(conn: &mut TcpStream, pid: i64, epoch: i16) -> i16 {
    common::find_coordinator(conn, 0, "g").await;
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(TXN)))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let resp: TxnOffsetCommitResponse = call(conn, ApiKey::TxnOffsetCommit, 3, &req).await;
    resp.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn transactional_offsets_need_their_group_added_to_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = start_broker(dir.path()).await;
    create_topic(&mut conn).await;
    let (pid, epoch) = init_producer(&mut conn, Some(TXN)).await;
    assert_eq!(
        txn_offset_commit(&mut conn, pid, epoch).await,
        48,
        "INVALID_TXN_STATE"
    );
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("g")));
    let resp: AddOffsetsToTxnResponse = call(&mut conn, ApiKey::AddOffsetsToTxn, 3, &req).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(txn_offset_commit(&mut conn, pid, epoch).await, 0);
    drop(conn);
    broker.shutdown().await;
}
