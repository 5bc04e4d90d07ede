//! Classic group membership survives a graceful restart of a single broker: the member keeps
//! its id and generation, and a member that never comes back still expires.
//!
//! Integration test: an in-process broker on a temporary data dir, driven over real sockets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{call, start};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::Broker;
use tokio::net::TcpStream;

const GROUP: &str = "restart-group";
const SESSION_MS: i32 = 2000;

async fn start_broker(dir: &std::path::Path) -> (Broker, TcpStream) {
    let broker = start(
        dir,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "1000"),
        ],
    )
    .await;
    let conn = TcpStream::connect(broker.local_addr).await.unwrap();
    (broker, conn)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn join(conn: &mut TcpStream, member_id: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(5000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"subscription"))]);
    call(conn, ApiKey::JoinGroup, 5, &req).await
}

async fn sync(
    conn: &mut TcpStream,
    member_id: &str,
    generation: i32,
    assignment: Option<&'static [u8]>,
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_assignments(
            assignment
                .map(|a| {
                    vec![sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(member_id))
                        .with_assignment(Bytes::from_static(a))]
                })
                .unwrap_or_default(),
        );
    call(conn, ApiKey::SyncGroup, 3, &req).await
}

async fn heartbeat(conn: &mut TcpStream, member_id: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    let resp: HeartbeatResponse = call(conn, ApiKey::Heartbeat, 3, &req).await;
    resp.error_code
}

async fn commit(conn: &mut TcpStream, member_id: &str, generation: i32, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let resp: OffsetCommitResponse = call(conn, ApiKey::OffsetCommit, 8, &req).await;
    resp.topics[0].partitions[0].error_code
}

async fn committed(conn: &mut TcpStream) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = call(conn, ApiKey::OffsetFetch, 7, &req).await;
    resp.topics[0].partitions[0].committed_offset
}

async fn describe(conn: &mut TcpStream) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]);
    let mut resp: DescribeGroupsResponse = call(conn, ApiKey::DescribeGroups, 5, &req).await;
    resp.groups.remove(0)
}

/// Creates topic `t`, then joins a new member (JoinGroup v4+ hands out the id first) and
/// syncs generation 1.
async fn join_and_sync(conn: &mut TcpStream) -> (String, i32) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let created: CreateTopicsResponse = call(conn, ApiKey::CreateTopics, 7, &create).await;
    assert_eq!(created.topics[0].error_code, 0);
    common::find_coordinator(conn, 0, GROUP).await;
    let first = join(conn, "").await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.to_string();
    let joined = join(conn, &member).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    let synced = sync(conn, &member, joined.generation_id, Some(b"assignment")).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assignment");
    (member, joined.generation_id)
}

#[tokio::test]
async fn classic_member_keeps_its_id_and_generation_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = start_broker(dir.path()).await;
    let (member, generation) = join_and_sync(&mut conn).await;
    assert_eq!(commit(&mut conn, &member, generation, 10).await, 0);
    drop(conn);
    broker.shutdown().await;
    // Longer than the session timeout: the restored member's session starts at load.
    tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 + 500)).await;

    let (broker, mut conn) = start_broker(dir.path()).await;
    assert_eq!(heartbeat(&mut conn, &member, generation).await, 0);
    let described = describe(&mut conn).await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_id.as_str(), member);
    assert_eq!(&described.members[0].member_metadata[..], b"subscription");
    assert_eq!(&described.members[0].member_assignment[..], b"assignment");
    // A follower-style SyncGroup in the restored generation gets the stored assignment.
    let synced = sync(&mut conn, &member, generation, None).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assignment");
    assert_eq!(commit(&mut conn, &member, generation, 20).await, 0);
    assert_eq!(committed(&mut conn).await, 20);
    assert_eq!(
        heartbeat(&mut conn, &member, generation + 1).await,
        ResponseError::IllegalGeneration.code()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn restored_member_that_never_returns_expires_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = start_broker(dir.path()).await;
    let (member, generation) = join_and_sync(&mut conn).await;
    assert_eq!(commit(&mut conn, &member, generation, 5).await, 0);
    drop(conn);
    broker.shutdown().await;

    let (broker, mut conn) = start_broker(dir.path()).await;
    let loaded = Instant::now();
    assert_eq!(describe(&mut conn).await.members.len(), 1);
    // No heartbeats: the session timer (2 s) removes the member and the group empties.
    let deadline = loaded + Duration::from_secs(10);
    let emptied = loop {
        let d = describe(&mut conn).await;
        if d.members.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "member never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(loaded.elapsed() >= Duration::from_millis(SESSION_MS as u64));
    assert_eq!(emptied.group_state.as_str(), "Empty");
    assert_eq!(
        heartbeat(&mut conn, &member, generation).await,
        ResponseError::UnknownMemberId.code()
    );
    drop(conn);
    broker.shutdown().await;

    // The emptied group was persisted: it loads Empty, with its offsets.
    let (broker, mut conn) = start_broker(dir.path()).await;
    let d = describe(&mut conn).await;
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Empty", 0));
    assert_eq!(committed(&mut conn).await, 5);
    broker.shutdown().await;
}
