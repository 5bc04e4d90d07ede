//! The coordinator against a real `__consumer_offsets` log in a temporary directory: what it
//! acknowledges comes back when the log is replayed (a restart, or a new leader epoch).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
use crate::cluster::{Partition, Registry};
use crate::coordinator::{partition_for, test_registry, CoordinatorRuntime, Ownership};
use crate::group::codec::OffsetValue;
use crate::group::JoinRequest;
use crate::producer::Marker;
use crate::txn::markers::write_local;

/// A registry in `dir` with a two-partition topic `t` to commit offsets for.
fn registry(dir: &Path) -> Arc<Registry> {
    let registry = test_registry(dir);
    if registry.topic("t").is_none() {
        registry.create_topic("t", 2, 1, BTreeMap::new()).unwrap();
    }
    registry
}

fn config(registry: &Registry) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..registry.config.group.clone()
    }
}

/// A single node's coordinator: loads every group from the log.
fn open(registry: &Arc<Registry>) -> GroupCoordinator {
    GroupCoordinator::open(registry.clone(), config(registry)).unwrap()
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

#[tokio::test]
async fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let groups = open(&registry);
    commit(&groups, "g", &[(0, 5), (1, 7)]).await;
    commit(&groups, "g", &[(0, 6)]).await;
    commit(&groups, "other", &[(1, 1)]).await;
    let refused = groups
        .commit("g", -1, "", None, vec![("missing".into(), 0, offset(1))])
        .await;
    assert_eq!(refused, vec![Err(ResponseError::UnknownTopicOrPartition)]);
    assert_eq!(committed(&groups, "g"), vec![t(0, 6), t(1, 7)]);

    // The whole broker restarts: logs closed, reopened, `__consumer_offsets` replayed.
    drop(groups);
    registry.close();
    drop(registry);
    let registry = self::registry(dir.path());
    let groups = open(&registry);
    assert_eq!(committed(&groups, "g"), vec![t(0, 6), t(1, 7)]);
    assert_eq!(committed(&groups, "other"), vec![t(1, 1)]);
    let wanted = Some(vec![("t".to_string(), vec![0, 3])]);
    let fetched = groups.fetch_offsets("g", wanted).unwrap();
    assert_eq!(
        fetched[0].1[0].1.as_ref().map(|v| v.metadata.as_str()),
        Some("m")
    );
    assert_eq!(fetched[0].1[1], (3, None), "never committed");
}

#[tokio::test]
async fn deleted_groups_and_offsets_stay_deleted_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let groups = open(&registry);
    commit(&groups, "gone", &[(0, 1)]).await;
    commit(&groups, "kept", &[(0, 2), (1, 3)]).await;
    assert_eq!(groups.delete_group("gone").await, Ok(()));
    let deleted = groups
        .delete_offsets("kept", &[("t".to_string(), 0)])
        .await
        .unwrap();
    assert_eq!(deleted, vec![Ok(())]);

    let groups = open(&registry);
    assert!(committed(&groups, "gone").is_empty());
    assert_eq!(groups.describe("gone").state, "Dead");
    assert_eq!(
        groups.delete_group("gone").await,
        Err(ResponseError::GroupIdNotFound)
    );
    assert_eq!(committed(&groups, "kept"), vec![t(1, 3)]);
    let listed: Vec<String> = groups.list().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(listed, vec!["kept".to_string()]);
}

#[tokio::test]
async fn a_classic_group_comes_back_stable_with_its_member_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let groups = open(&registry);
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

    let groups = open(&registry);
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
}

#[tokio::test]
async fn transactional_offsets_count_after_a_reload_only_once_their_transaction_commits() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let groups = open(&registry);
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
    let groups = open(&registry);
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
    let groups = open(&registry);
    assert_eq!(committed(&groups, "g"), vec![t(0, 30)]);
    assert!(groups.unstable_offsets("g").is_empty());
}

#[tokio::test]
async fn groups_move_with_the_leadership_of_their_partition() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    // Cluster mode's ownership over a local log: the partitions this broker leads.
    registry
        .create_internal_topic(OFFSETS_TOPIC, 2, super::offsets_topic_configs())
        .unwrap();
    let runtime =
        CoordinatorRuntime::with_ownership(registry.clone(), OFFSETS_TOPIC, Ownership::Led);
    let groups = GroupCoordinator::open_with(runtime, config(&registry)).unwrap();
    let p = offsets_partition(&registry, "g");

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
}
