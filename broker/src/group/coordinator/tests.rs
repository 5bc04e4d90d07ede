//! The coordinator against a real `__consumer_offsets` log in a temporary directory: what it
//! acknowledges comes back when the log is replayed (a restart, or a new leader epoch).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{offsets_topic_configs, GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
use crate::cluster::{Partition, Registry};
use crate::coordinator::{partition_for, test_node};
use crate::group::codec::OffsetValue;
use crate::group::JoinRequest;
use crate::producer::Marker;
use crate::txn::markers::write_local;

/// A single node in `dir` with a two-partition topic `t` to commit offsets for (created
/// unless the node is started again on the same `dir`).
async fn registry(dir: &Path) -> Arc<Registry> {
    let registry = test_node::start(dir).await;
    if registry.topic("t").is_none() {
        test_node::create_topic(&registry, "t", 2).await;
    }
    registry
}

fn config(registry: &Registry) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..registry.config.group.clone()
    }
}

/// A single node's coordinator, once `__consumer_offsets` exists (FindCoordinator creates it
/// through the quorum): the node leads every partition and loads every group from the log.
async fn open(registry: &Arc<Registry>) -> GroupCoordinator {
    let config = config(registry);
    let partitions = config.offsets_partitions;
    test_node::ensure_internal_topic(registry, OFFSETS_TOPIC, partitions, offsets_topic_configs())
        .await;
    GroupCoordinator::open(registry.clone(), config)
}

fn offset(offset: i64) -> OffsetValue {
    OffsetValue::committed(offset, -1, Some("m"), crate::context::now_ms())
}

/// What OffsetFetch for all of `group`'s offsets answers: (topic, partition, offset).
fn committed(groups: &GroupCoordinator, group: &str) -> Vec<(String, i32, i64)> {
    let mut out = Vec::new();
    for (topic, parts) in groups.fetch_offsets(group, None).unwrap() {
        for (p, v) in parts {
            out.push((topic.clone(), p, v.unwrap().offset));
        }
    }
    out
}

fn t(partition: i32, offset: i64) -> (String, i32, i64) {
    ("t".to_string(), partition, offset)
}

/// A standalone consumer's commit (no member, generation -1).
async fn commit(groups: &GroupCoordinator, group: &str, offsets: &[(i32, i64)]) {
    let offsets = offsets
        .iter()
        .map(|(p, o)| ("t".to_string(), *p, offset(*o)))
        .collect();
    let results = groups.commit(group, -1, "", None, offsets).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

fn offsets_partition(registry: &Registry, group: &str) -> Arc<Partition> {
    let topic = registry.topic(OFFSETS_TOPIC).unwrap();
    let index = partition_for(group, topic.meta.partitions);
    topic.partition(index).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    let groups = open(&registry).await;
    commit(&groups, "g", &[(0, 5), (1, 7)]).await;
    commit(&groups, "g", &[(0, 6)]).await;
    commit(&groups, "other", &[(1, 1)]).await;
    let refused = groups
        .commit("g", -1, "", None, vec![("missing".into(), 0, offset(1))])
        .await;
    assert_eq!(refused, vec![Err(ResponseError::UnknownTopicOrPartition)]);
    assert_eq!(committed(&groups, "g"), vec![t(0, 6), t(1, 7)]);

    // The whole broker restarts: logs closed, the quorum stopped, both reopened from the
    // data dir, `__consumer_offsets` replayed.
    drop(groups);
    test_node::stop(registry).await;
    let registry = self::registry(dir.path()).await;
    let groups = open(&registry).await;
    assert_eq!(committed(&groups, "g"), vec![t(0, 6), t(1, 7)]);
    assert_eq!(committed(&groups, "other"), vec![t(1, 1)]);
    let wanted = Some(vec![("t".to_string(), vec![0, 3])]);
    let fetched = groups.fetch_offsets("g", wanted).unwrap();
    assert_eq!(
        fetched[0].1[0].1.as_ref().map(|v| v.metadata.as_str()),
        Some("m")
    );
    assert_eq!(fetched[0].1[1], (3, None), "never committed");
    test_node::stop(registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_offsets_are_forgotten_and_stay_forgotten_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    let groups = open(&registry).await;
    commit(&groups, "idle", &[(0, 5), (1, 7)]).await;
    // Within offsets.retention.minutes: nothing expires.
    groups.expire_offsets().await;
    assert_eq!(committed(&groups, "idle"), vec![t(0, 5), t(1, 7)]);

    // Past it (retention zero, a commit a moment old): the tombstones are written and the
    // offsets forgotten, for good.
    drop(groups);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let zero = GroupConfig {
        offsets_retention: Duration::ZERO,
        ..config(&registry)
    };
    let groups = GroupCoordinator::open(registry.clone(), zero);
    groups.expire_offsets().await;
    assert_eq!(committed(&groups, "idle"), vec![]);
    drop(groups);
    test_node::stop(registry).await;
    let registry = self::registry(dir.path()).await;
    let groups = open(&registry).await;
    assert_eq!(committed(&groups, "idle"), vec![]);
    test_node::stop(registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_groups_and_offsets_stay_deleted_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    let groups = open(&registry).await;
    commit(&groups, "gone", &[(0, 1)]).await;
    commit(&groups, "kept", &[(0, 2), (1, 3)]).await;
    assert_eq!(groups.delete_group("gone").await, Ok(()));
    let deleted = groups
        .delete_offsets("kept", &[("t".to_string(), 0)])
        .await
        .unwrap();
    assert_eq!(deleted, vec![Ok(())]);

    let groups = open(&registry).await;
    assert!(committed(&groups, "gone").is_empty());
    assert_eq!(groups.describe("gone").state, "Dead");
    assert_eq!(
        groups.delete_group("gone").await,
        Err(ResponseError::GroupIdNotFound)
    );
    assert_eq!(committed(&groups, "kept"), vec![t(1, 3)]);
    let listed: Vec<String> = groups.list().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(listed, vec!["kept".to_string()]);
    test_node::stop(registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_group_comes_back_stable_with_its_member_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    let groups = open(&registry).await;
    let join = JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(30),
        rebalance_timeout: Duration::from_secs(60),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
        require_known_member_id: false,
    };
    let joined = groups.join("g", join).await;
    assert_eq!((joined.error, joined.generation), (None, 1));
    let member = joined.member_id;
    assert_eq!(joined.leader, member);
    let assignment = Bytes::from_static(b"assignment");
    let synced = groups
        .sync(
            "g",
            &member,
            None,
            1,
            vec![(member.clone(), assignment.clone())],
        )
        .await;
    assert_eq!((synced.error, &synced.assignment), (None, &assignment));

    let groups = open(&registry).await;
    let d = groups.describe("g");
    assert_eq!((d.state, d.protocol.as_str()), ("Stable", "range"));
    assert_eq!(d.members.len(), 1);
    let (id, _, client, _, metadata, assigned) = &d.members[0];
    assert_eq!((id, client.as_str()), (&member, "client"));
    assert_eq!(
        (&metadata[..], assigned),
        (&b"subscription"[..], &assignment)
    );
    // The member goes on heartbeating in its generation, as if nothing happened.
    assert_eq!(groups.heartbeat("g", &member, None, 1), Ok(()));
    assert_eq!(
        groups.heartbeat("g", &member, None, 2),
        Err(ResponseError::IllegalGeneration)
    );
    test_node::stop(registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_count_after_a_reload_only_once_their_transaction_commits() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    let groups = open(&registry).await;
    let txn_commit = |producer_id: i64, partition: i32, value: i64| {
        let offsets = vec![("t".to_string(), partition, offset(value))];
        let (results, pending) =
            groups.txn_commit("g", producer_id, 0, -1, "", None, offsets, None);
        assert_eq!(results, vec![Ok(())]);
        assert!(pending.is_none());
    };
    txn_commit(7, 0, 30);
    txn_commit(8, 1, 40);
    let pending = || groups.unstable_offsets("g").into_iter().collect::<Vec<_>>();
    assert_eq!(pending(), vec![("t".to_string(), 0), ("t".to_string(), 1)]);
    assert!(committed(&groups, "g").is_empty());

    // Reloaded before any marker: still pending, not committed.
    let groups = open(&registry).await;
    assert_eq!(groups.unstable_offsets("g").len(), 2);
    assert!(committed(&groups, "g").is_empty());

    // Producer 7 commits, producer 8 aborts; then the log is replayed once more.
    let index = offsets_partition(&registry, "g").index;
    for (producer, marker) in [(7, Marker::Commit), (8, Marker::Abort)] {
        write_local(
            &registry,
            &groups,
            OFFSETS_TOPIC,
            index,
            producer,
            0,
            marker,
            0,
        )
        .unwrap();
    }
    assert_eq!(committed(&groups, "g"), vec![t(0, 30)]);
    let groups = open(&registry).await;
    assert_eq!(committed(&groups, "g"), vec![t(0, 30)]);
    assert!(groups.unstable_offsets("g").is_empty());
    test_node::stop(registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_move_with_the_leadership_of_their_partition() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    // The coordinator owns the partitions this broker leads: created through the quorum,
    // this node leads them all, until another broker comes to lead "g"'s partition (moved
    // on the partition itself; only `registry.sync()` would apply the metadata again).
    test_node::ensure_internal_topic(&registry, OFFSETS_TOPIC, 2, offsets_topic_configs()).await;
    let p = offsets_partition(&registry, "g");
    p.become_follower();
    let groups = GroupCoordinator::open(registry.clone(), config(&registry));

    assert_eq!(groups.check_owner("g"), Err(ResponseError::NotCoordinator));
    let refused = groups
        .commit("g", -1, "", None, vec![("t".into(), 0, offset(1))])
        .await;
    assert_eq!(refused, vec![Err(ResponseError::NotCoordinator)]);

    p.become_leader(1).unwrap();
    groups.sync_ownership();
    commit(&groups, "g", &[(0, 11)]).await;
    assert_eq!(committed(&groups, "g"), vec![t(0, 11)]);

    // Another broker leads: the group is forgotten here and its clients sent away.
    p.become_follower();
    groups.sync_ownership();
    assert_eq!(groups.check_owner("g"), Err(ResponseError::NotCoordinator));
    assert_eq!(
        groups.fetch_offsets("g", None).err(),
        Some(ResponseError::NotCoordinator)
    );
    assert!(groups.list().is_empty());

    // Leading again in a new epoch: the group comes back from the log.
    p.become_leader(2).unwrap();
    groups.sync_ownership();
    assert_eq!(committed(&groups, "g"), vec![t(0, 11)]);
    test_node::stop(registry).await;
}
