//! State machine behaviour, request by request. These run `apply` directly: no raft, no disk.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::state_machine::NO_LEADER;

/// Applies `req` as the next log entry.
fn apply(md: &mut ClusterMetadata, req: MetaRequest) -> MetaResponse {
    md.metadata_offset += 1;
    req.apply(md)
}

/// Applies `req`, expecting a rejection, and checks that nothing but the offset changed.
fn reject(md: &mut ClusterMetadata, req: MetaRequest) -> RequestError {
    let mut before = md.clone();
    let response = apply(md, req.clone());
    before.metadata_offset = md.metadata_offset;
    assert_eq!(*md, before, "rejected request {req:?} changed the state");
    match response {
        MetaResponse::Rejected(e) => e,
        other => panic!("expected {req:?} to be rejected, got {other:?}"),
    }
}

fn register(md: &mut ClusterMetadata, id: i32, rack: Option<&str>) -> u64 {
    match apply(
        md,
        MetaRequest::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(id as u128),
            host: format!("broker-{id}"),
            port: 9092,
            listeners: vec![],
            rack: rack.map(str::to_string),
        },
    ) {
        MetaResponse::BrokerRegistered { epoch } => epoch,
        other => panic!("register {id}: {other:?}"),
    }
}

/// Registered and unfenced brokers 1..=n.
fn cluster(n: i32) -> ClusterMetadata {
    let mut md = ClusterMetadata::default();
    for id in 1..=n {
        register(&mut md, id, None);
        assert!(matches!(
            apply(&mut md, MetaRequest::UnfenceBroker { id }),
            MetaResponse::PartitionsChanged { .. }
        ));
    }
    md
}

fn create_topic(md: &mut ClusterMetadata, name: &str, partitions: i32, rf: i16) -> MetaResponse {
    apply(
        md,
        MetaRequest::CreateTopic {
            name: name.to_string(),
            id: Uuid::from_u128(
                name.bytes()
                    .fold(7u128, |h, b| h.wrapping_mul(31).wrapping_add(u128::from(b))),
            ),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            assignment: None,
        },
    )
}

fn partition(md: &ClusterMetadata, topic: &str, p: usize) -> PartitionState {
    md.partition(topic, p).cloned().unwrap()
}

fn fence(md: &mut ClusterMetadata, id: i32) -> MetaResponse {
    apply(md, MetaRequest::FenceBroker { id })
}

#[test]
fn cluster_id_is_set_once() {
    let mut md = ClusterMetadata::default();
    assert_eq!(
        apply(
            &mut md,
            MetaRequest::InitCluster {
                cluster_id: "c1".into()
            }
        ),
        MetaResponse::Ok
    );
    let e = reject(
        &mut md,
        MetaRequest::InitCluster {
            cluster_id: "c2".into(),
        },
    );
    assert_eq!(e, RequestError::ClusterIdAlreadySet("c1".into()));
    assert!(e.is_no_op());
    assert_eq!(md.cluster_id, "c1");
}

#[test]
fn brokers_register_fenced_with_the_offset_as_epoch() {
    let mut md = ClusterMetadata {
        metadata_offset: 41,
        ..Default::default()
    };
    let epoch = register(&mut md, 7, Some("r1"));
    assert_eq!(epoch, 42);
    let b = &md.brokers[&7];
    assert!(b.fenced && !b.shutting_down);
    assert_eq!(
        (b.host.as_str(), b.port, b.rack.as_deref()),
        ("broker-7", 9092, Some("r1"))
    );

    // The same incarnation again is a retry.
    let e = reject(
        &mut md,
        MetaRequest::RegisterBroker {
            id: 7,
            incarnation: Uuid::from_u128(7),
            host: "broker-7".into(),
            port: 9092,
            listeners: vec![],
            rack: Some("r1".into()),
        },
    );
    assert_eq!(e, RequestError::AlreadyRegistered { id: 7, epoch: 42 });
    assert!(e.is_no_op());

    for bad in [
        MetaRequest::RegisterBroker {
            id: -1,
            incarnation: Uuid::from_u128(1),
            host: "h".into(),
            port: 1,
            listeners: vec![],
            rack: None,
        },
        MetaRequest::RegisterBroker {
            id: 1,
            incarnation: Uuid::from_u128(1),
            host: "".into(),
            port: 1,
            listeners: vec![],
            rack: None,
        },
        MetaRequest::RegisterBroker {
            id: 1,
            incarnation: Uuid::from_u128(1),
            host: "h".into(),
            port: 0,
            listeners: vec![],
            rack: None,
        },
    ] {
        assert!(matches!(
            reject(&mut md, bad),
            RequestError::InvalidRegistration(_)
        ));
    }
}

#[test]
fn restarted_broker_reregisters_fenced_and_leaves_isrs() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 3, 3);
    let led_by_1: Vec<usize> = (0..3)
        .filter(|p| partition(&md, "t", *p).leader == 1)
        .collect();
    assert!(!led_by_1.is_empty());
    let before = partition(&md, "t", led_by_1[0]);

    let epoch = match apply(
        &mut md,
        MetaRequest::RegisterBroker {
            id: 1,
            incarnation: Uuid::from_u128(1001),
            host: "broker-1".into(),
            port: 9093,
            listeners: vec![],
            rack: None,
        },
    ) {
        MetaResponse::BrokerRegistered { epoch } => epoch,
        other => panic!("{other:?}"),
    };
    assert_eq!(epoch, md.metadata_offset);
    assert!(md.brokers[&1].fenced);
    assert_eq!(md.brokers[&1].port, 9093);
    for p in 0..3 {
        let p = partition(&md, "t", p);
        assert!(!p.isr.contains(&1), "{p:?}");
        assert_ne!(p.leader, 1);
    }
    let after = partition(&md, "t", led_by_1[0]);
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
}

#[test]
fn create_topic_spreads_replicas_and_leaders() {
    let mut md = cluster(4);
    let MetaResponse::TopicCreated { id, partitions } = create_topic(&mut md, "orders", 8, 3)
    else {
        panic!("topic not created");
    };
    assert_eq!(md.topics["orders"].id, id);
    assert_eq!(partitions.len(), 8);
    let mut replicas = BTreeMap::<i32, usize>::new();
    let mut leaders = BTreeMap::<i32, usize>::new();
    for p in &md.topics["orders"].partitions {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr, p.replicas, "a new partition starts fully in sync");
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        for r in &p.replicas {
            *replicas.entry(*r).or_default() += 1;
        }
        *leaders.entry(p.leader).or_default() += 1;
    }
    assert_eq!(
        replicas.values().copied().collect::<Vec<_>>(),
        vec![6, 6, 6, 6]
    );
    assert_eq!(
        leaders.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2, 2]
    );
}

#[test]
fn create_topic_uses_only_eligible_brokers() {
    let mut md = cluster(4);
    fence(&mut md, 2);
    apply(&mut md, MetaRequest::SetShuttingDown { id: 3 });
    create_topic(&mut md, "t", 6, 2);
    for p in &md.topics["t"].partitions {
        assert!(p.replicas.iter().all(|r| *r == 1 || *r == 4), "{p:?}");
    }
    let e = reject(
        &mut md,
        MetaRequest::CreateTopic {
            name: "t3".into(),
            id: Uuid::from_u128(99),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
            assignment: None,
        },
    );
    assert!(
        matches!(e, RequestError::InvalidReplicationFactor(_)),
        "{e}"
    );
    assert_eq!(e.kafka_error_code(), 38);
}

#[test]
fn a_retried_create_with_the_same_id_succeeds_without_a_second_topic() {
    let mut md = cluster(3);
    let MetaResponse::TopicCreated { id, partitions } = create_topic(&mut md, "t", 2, 3) else {
        panic!("topic not created");
    };
    let before = md.topics.clone();
    let retried = create_topic(&mut md, "t", 2, 3);
    assert_eq!(retried, MetaResponse::TopicCreated { id, partitions });
    assert_eq!(md.topics, before, "the retry changes no topic");
}

#[test]
fn invalid_topic_creations_are_rejected() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 1, 1);
    let id_of_t = md.topics["t"].id;
    let create = |name: &str, id: Uuid, partitions: i32, rf: i16| MetaRequest::CreateTopic {
        name: name.into(),
        id,
        partitions,
        replication_factor: rf,
        configs: BTreeMap::new(),
        assignment: None,
    };
    let fresh = Uuid::from_u128(5);
    assert_eq!(
        reject(&mut md, create("t", fresh, 1, 1)),
        RequestError::TopicExists("t".into())
    );
    assert_eq!(
        reject(&mut md, create("u", id_of_t, 1, 1)),
        RequestError::TopicIdExists(id_of_t)
    );
    for name in ["", ".", "..", "a/b", "spaces no", &"x".repeat(250)] {
        assert!(matches!(
            reject(&mut md, create(name, fresh, 1, 1)),
            RequestError::InvalidTopicName { .. }
        ));
    }
    assert!(matches!(
        reject(&mut md, create("u", fresh, 0, 1)),
        RequestError::InvalidPartitions(_)
    ));
    assert!(matches!(
        reject(&mut md, create("u", fresh, 1, 0)),
        RequestError::InvalidReplicationFactor(_)
    ));
    assert!(matches!(
        reject(&mut md, create("u", fresh, 1, 4)),
        RequestError::InvalidReplicationFactor(_)
    ));
    assert!(matches!(
        reject(&mut md, create("u", Uuid::nil(), 1, 1)),
        RequestError::TopicIdExists(_)
    ));
}

#[test]
fn a_manual_assignment_is_checked_and_kept() {
    let mut md = cluster(3);
    apply(&mut md, MetaRequest::FenceBroker { id: 3 });
    let create = |name: &str, assignment: Vec<Vec<i32>>| MetaRequest::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(name.bytes().fold(11u128, |h, b| {
            h.wrapping_mul(31).wrapping_add(u128::from(b))
        })),
        partitions: assignment.len() as i32,
        replication_factor: assignment.first().map_or(0, |r| r.len() as i16),
        configs: BTreeMap::new(),
        assignment: Some(assignment),
    };
    apply(&mut md, create("manual", vec![vec![2, 1], vec![3, 2]]));
    let p0 = partition(&md, "manual", 0);
    assert_eq!(
        (p0.replicas.clone(), p0.leader, p0.isr.clone()),
        (vec![2, 1], 2, vec![2, 1])
    );
    let p1 = partition(&md, "manual", 1);
    // Broker 3 is fenced: it stays a replica but neither leads nor starts in the ISR.
    assert_eq!(
        (p1.replicas.clone(), p1.leader, p1.isr.clone()),
        (vec![3, 2], 2, vec![2])
    );
    for (name, bad, says) in [
        ("empty", vec![vec![]], "empty replica list"),
        ("twice", vec![vec![1, 1]], "broker 1 more than once"),
        ("unknown", vec![vec![1, 9]], "broker 9, but no such broker"),
        (
            "ragged",
            vec![vec![1, 2], vec![1]],
            "not consistent with previous",
        ),
        ("fenced", vec![vec![3]], "fenced or in controlled shutdown"),
    ] {
        let e = reject(&mut md, create(name, bad));
        assert_eq!(e.kafka_error_code(), 39, "{name}: {e}");
        assert!(e.to_string().contains(says), "{name}: {e}");
    }
}

#[test]
fn fencing_moves_leadership_only_to_unfenced_isr_members() {
    let mut md = cluster(4);
    create_topic(&mut md, "t", 8, 3);
    let before = md.topics["t"].partitions.clone();

    assert!(matches!(fence(&mut md, 1), MetaResponse::PartitionsChanged { count } if count > 0));
    for (old, new) in before.iter().zip(&md.topics["t"].partitions) {
        assert!(!new.isr.contains(&1), "fenced broker left in ISR: {new:?}");
        assert_eq!(new.replicas, old.replicas, "fencing does not reassign");
        if old.leader == 1 {
            assert!(new.isr.contains(&new.leader) && new.leader != 1, "{new:?}");
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
            assert_eq!(new.partition_epoch, old.partition_epoch + 1);
        } else if old.isr.contains(&1) {
            assert_eq!(new.leader, old.leader);
            assert_eq!(
                new.leader_epoch, old.leader_epoch,
                "ISR shrink keeps the leader epoch"
            );
            assert_eq!(new.partition_epoch, old.partition_epoch + 1);
        } else {
            assert_eq!(new, old);
        }
    }

    // Fence the rest of some partition's ISR one by one: the last member stays in the ISR
    // (no unclean election later) and the partition goes leaderless.
    let p = partition(&md, "t", 0);
    let (first, second) = (p.isr[0], p.isr[1]);
    fence(&mut md, first);
    fence(&mut md, second);
    let p = partition(&md, "t", 0);
    assert_eq!(p.isr, vec![second]);
    assert_eq!(p.leader, NO_LEADER);

    // The last ISR member comes back and leads again; a fenced non-ISR replica would not.
    assert!(matches!(
        apply(&mut md, MetaRequest::UnfenceBroker { id: second }),
        MetaResponse::PartitionsChanged { count } if count > 0
    ));
    let p2 = partition(&md, "t", 0);
    assert_eq!(p2.leader, second);
    assert_eq!(p2.leader_epoch, p.leader_epoch + 1);
}

#[test]
fn repeated_fence_and_unfence_are_rejected_as_no_ops() {
    let mut md = cluster(2);
    fence(&mut md, 1);
    let e = reject(&mut md, MetaRequest::FenceBroker { id: 1 });
    assert_eq!(e, RequestError::AlreadyFenced(1));
    assert!(e.is_no_op());
    let e = reject(&mut md, MetaRequest::UnfenceBroker { id: 2 });
    assert_eq!(e, RequestError::NotFenced(2));
    assert!(e.is_no_op());
    let e = reject(&mut md, MetaRequest::FenceBroker { id: 9 });
    assert_eq!(e, RequestError::UnknownBroker(9));
    assert!(!e.is_no_op());
    assert_eq!(e.kafka_error_code(), 102);
}

#[test]
fn controlled_shutdown_moves_leaders_and_leaves_isrs() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 6, 2);
    apply(&mut md, MetaRequest::SetShuttingDown { id: 2 });
    assert!(md.brokers[&2].shutting_down);
    for p in &md.topics["t"].partitions {
        assert_ne!(p.leader, 2, "{p:?}");
        if p.replicas.contains(&2) {
            assert!(!p.isr.contains(&2), "{p:?}");
            assert!(p.replicas.contains(&p.leader));
        }
    }
    assert_eq!(
        reject(&mut md, MetaRequest::SetShuttingDown { id: 2 }),
        RequestError::AlreadyShuttingDown(2)
    );
    // A shutting-down broker cannot rejoin an ISR.
    let p = partition(&md, "t", 0);
    if p.replicas.contains(&2) {
        let mut isr = p.isr.clone();
        isr.push(2);
        assert_eq!(
            reject(
                &mut md,
                MetaRequest::ChangePartition {
                    topic: "t".into(),
                    partition: 0,
                    leader: None,
                    isr: Some(isr),
                    expected_partition_epoch: p.partition_epoch,
                }
            ),
            RequestError::IneligibleReplica(vec![2])
        );
    }
}

#[test]
fn unregistering_gives_up_leaderships_but_keeps_assignments() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 3, 3);
    apply(&mut md, MetaRequest::UnregisterBroker { id: 3 });
    assert!(!md.brokers.contains_key(&3));
    for p in &md.topics["t"].partitions {
        assert!(p.replicas.contains(&3));
        assert!(!p.isr.contains(&3) && p.leader != 3, "{p:?}");
    }
    assert_eq!(
        reject(&mut md, MetaRequest::UnregisterBroker { id: 3 }),
        RequestError::UnknownBroker(3)
    );
}

fn change(
    topic: &str,
    partition: i32,
    leader: Option<i32>,
    isr: Option<Vec<i32>>,
    expected_partition_epoch: i32,
) -> MetaRequest {
    MetaRequest::ChangePartition {
        topic: topic.into(),
        partition,
        leader,
        isr,
        expected_partition_epoch,
    }
}

#[test]
fn change_partition_checks_epoch_isr_and_leader() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 1, 3);
    let p = partition(&md, "t", 0);
    let (leader, f1, f2) = (p.replicas[0], p.replicas[1], p.replicas[2]);

    // Shrink the ISR: partition epoch bumps, leader epoch does not.
    let MetaResponse::Partition(after) =
        apply(&mut md, change("t", 0, None, Some(vec![leader, f1]), 0))
    else {
        panic!("ISR shrink rejected");
    };
    assert_eq!(after.isr, vec![leader, f1]);
    assert_eq!((after.leader_epoch, after.partition_epoch), (0, 1));

    // A request computed against the old epoch is stale.
    let e = reject(&mut md, change("t", 0, None, Some(vec![leader]), 0));
    assert_eq!(
        e,
        RequestError::StalePartitionEpoch {
            topic: "t".into(),
            partition: 0,
            expected: 0,
            current: 1
        }
    );
    assert_eq!(e.kafka_error_code(), 95);

    assert!(matches!(
        reject(&mut md, change("t", 0, None, Some(vec![]), 1)),
        RequestError::InvalidIsr(_)
    ));
    assert!(matches!(
        reject(&mut md, change("t", 0, None, Some(vec![leader, 42]), 1)),
        RequestError::InvalidIsr(_)
    ));
    assert!(matches!(
        reject(&mut md, change("t", 0, None, Some(vec![leader, leader]), 1)),
        RequestError::InvalidIsr(_)
    ));
    // The leader must stay in the ISR, and a new leader must be in it.
    assert!(matches!(
        reject(&mut md, change("t", 0, None, Some(vec![f1]), 1)),
        RequestError::InvalidLeader(_)
    ));
    assert!(matches!(
        reject(&mut md, change("t", 0, Some(f2), None, 1)),
        RequestError::InvalidLeader(_)
    ));
    assert!(matches!(
        reject(&mut md, change("t", 0, Some(NO_LEADER), None, 1)),
        RequestError::InvalidLeader(_)
    ));
    assert_eq!(
        reject(&mut md, change("t", 0, None, None, 1)),
        RequestError::NoChange
    );
    assert!(matches!(
        reject(&mut md, change("t", 1, None, None, 1)),
        RequestError::UnknownPartition { .. }
    ));
    assert!(matches!(
        reject(&mut md, change("nope", 0, None, None, 1)),
        RequestError::UnknownTopic(_)
    ));

    // A fenced broker may not join the ISR.
    fence(&mut md, f2);
    let epoch = partition(&md, "t", 0).partition_epoch;
    assert_eq!(
        reject(
            &mut md,
            change("t", 0, None, Some(vec![leader, f1, f2]), epoch)
        ),
        RequestError::IneligibleReplica(vec![f2])
    );

    // Moving leadership bumps both epochs.
    let MetaResponse::Partition(moved) = apply(&mut md, change("t", 0, Some(f1), None, epoch))
    else {
        panic!("leader change rejected");
    };
    assert_eq!(moved.leader, f1);
    assert_eq!(moved.leader_epoch, 1);
    assert_eq!(moved.partition_epoch, epoch + 1);
}

#[test]
fn preferred_leader_election() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 3, 3);
    // Broker 1 bounces: it loses its leaderships and comes back as a follower.
    fence(&mut md, 1);
    apply(&mut md, MetaRequest::UnfenceBroker { id: 1 });
    let preferred_by_1: Vec<i32> = (0..3)
        .filter(|p| partition(&md, "t", *p as usize).replicas[0] == 1)
        .collect();
    assert!(!preferred_by_1.is_empty());
    for p in &preferred_by_1 {
        assert_ne!(partition(&md, "t", *p as usize).leader, 1);
    }

    // Not yet in the ISR: the preferred replica is not available.
    let MetaResponse::Elections(results) = apply(
        &mut md,
        MetaRequest::ElectPreferredLeaders {
            scope: ElectionScope::Partitions(vec![("t".into(), preferred_by_1[0])]),
        },
    ) else {
        panic!()
    };
    assert!(matches!(
        results[0].result,
        Err(RequestError::PreferredLeaderNotAvailable { replica: 1, .. })
    ));

    // Broker 1 catches up and rejoins the ISRs.
    for p in 0..3 {
        let state = partition(&md, "t", p);
        let mut isr = state.isr.clone();
        isr.push(1);
        apply(
            &mut md,
            change("t", p as i32, None, Some(isr), state.partition_epoch),
        );
    }
    let before = md.topics["t"].partitions.clone();
    let MetaResponse::Elections(results) = apply(
        &mut md,
        MetaRequest::ElectPreferredLeaders {
            scope: ElectionScope::All,
        },
    ) else {
        panic!()
    };
    assert_eq!(results.len(), preferred_by_1.len(), "{results:?}");
    for r in &results {
        assert_eq!(r.result, Ok(1));
        let p = partition(&md, "t", r.partition as usize);
        assert_eq!(p.leader, 1);
        assert_eq!(
            p.leader_epoch,
            before[r.partition as usize].leader_epoch + 1
        );
    }
    // Asked again for a specific partition: not needed.
    let MetaResponse::Elections(results) = apply(
        &mut md,
        MetaRequest::ElectPreferredLeaders {
            scope: ElectionScope::Partitions(vec![("t".into(), 0), ("t".into(), 9)]),
        },
    ) else {
        panic!()
    };
    assert!(matches!(
        results[0].result,
        Err(RequestError::ElectionNotNeeded { .. })
    ));
    assert!(matches!(
        results[1].result,
        Err(RequestError::UnknownPartition { .. })
    ));
}

#[test]
fn reassignment_adds_then_removes_replicas() {
    let mut md = cluster(4);
    create_topic(&mut md, "t", 1, 2);
    let p = partition(&md, "t", 0);
    let old = p.replicas.clone();
    let newcomer = (1..=4).find(|b| !old.contains(b)).unwrap();
    // Replace the leader with the newcomer.
    let target = vec![newcomer, old[1]];
    let reassign = MetaRequest::Reassign {
        topic: "t".into(),
        partition: 0,
        target: target.clone(),
    };
    let MetaResponse::Partition(started) = apply(&mut md, reassign.clone()) else {
        panic!("reassignment rejected")
    };
    assert_eq!(started.replicas, vec![newcomer, old[1], old[0]]);
    assert_eq!(started.adding, vec![newcomer]);
    assert_eq!(started.removing, vec![old[0]]);
    assert_eq!(started.partition_epoch, p.partition_epoch + 1);
    assert_eq!(
        started.leader, old[0],
        "leadership stays until the reassignment completes"
    );

    assert!(matches!(
        reject(&mut md, reassign),
        RequestError::ReassignmentInProgress { .. }
    ));
    let complete = MetaRequest::CompleteReassignment {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(
        reject(&mut md, complete.clone()),
        RequestError::ReassignmentNotCaughtUp {
            topic: "t".into(),
            partition: 0,
            waiting: vec![newcomer]
        }
    );

    // The newcomer catches up and joins the ISR.
    let mut isr = started.isr.clone();
    isr.push(newcomer);
    apply(
        &mut md,
        change("t", 0, None, Some(isr), started.partition_epoch),
    );
    let MetaResponse::Partition(done) = apply(&mut md, complete.clone()) else {
        panic!("completion rejected")
    };
    assert_eq!(done.replicas, target);
    assert!(done.adding.is_empty() && done.removing.is_empty());
    assert!(!done.isr.contains(&old[0]));
    assert_eq!(
        done.leader, newcomer,
        "the removed leader hands over to the preferred replica"
    );
    assert_eq!(done.leader_epoch, started.leader_epoch + 1);
    assert!(matches!(
        reject(&mut md, complete),
        RequestError::NoReassignmentInProgress { .. }
    ));
}

#[test]
fn removal_only_reassignment_completes_at_once_and_invalid_targets_are_rejected() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 1, 3);
    let p = partition(&md, "t", 0);
    let target = vec![p.replicas[1]];
    let MetaResponse::Partition(done) = apply(
        &mut md,
        MetaRequest::Reassign {
            topic: "t".into(),
            partition: 0,
            target: target.clone(),
        },
    ) else {
        panic!()
    };
    assert_eq!(done.replicas, target);
    assert_eq!(done.isr, target);
    assert_eq!(done.leader, target[0]);
    assert!(!done.is_reassigning());

    let reassign = |target: Vec<i32>| MetaRequest::Reassign {
        topic: "t".into(),
        partition: 0,
        target,
    };
    for bad in [vec![], vec![1, 1], vec![1, 77]] {
        assert!(matches!(
            reject(&mut md, reassign(bad)),
            RequestError::InvalidReplicaAssignment(_)
        ));
    }
    assert_eq!(reject(&mut md, reassign(target)), RequestError::NoChange);
}

#[test]
fn cancelled_reassignment_restores_the_original_replicas() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 1, 1);
    let p = partition(&md, "t", 0);
    let other = (1..=3).find(|b| *b != p.replicas[0]).unwrap();
    apply(
        &mut md,
        MetaRequest::Reassign {
            topic: "t".into(),
            partition: 0,
            target: vec![other],
        },
    );
    assert!(partition(&md, "t", 0).is_reassigning());
    let MetaResponse::Partition(back) = apply(
        &mut md,
        MetaRequest::CancelReassignment {
            topic: "t".into(),
            partition: 0,
        },
    ) else {
        panic!()
    };
    assert_eq!(back.replicas, p.replicas);
    assert_eq!(back.isr, p.isr);
    assert_eq!(back.leader, p.leader);
    assert!(!back.is_reassigning());
    assert!(back.partition_epoch > p.partition_epoch);
}

#[test]
fn producer_id_blocks_do_not_overlap() {
    let mut md = cluster(2);
    let alloc = |broker, count| MetaRequest::AllocateProducerIds { broker, count };
    assert_eq!(
        apply(&mut md, alloc(1, 1000)),
        MetaResponse::ProducerIds {
            start: 0,
            count: 1000
        }
    );
    assert_eq!(
        apply(&mut md, alloc(2, 1000)),
        MetaResponse::ProducerIds {
            start: 1000,
            count: 1000
        }
    );
    assert_eq!(
        reject(&mut md, alloc(3, 10)),
        RequestError::UnknownBroker(3)
    );
    assert!(matches!(
        reject(&mut md, alloc(1, 0)),
        RequestError::InvalidProducerIdRequest(_)
    ));
    md.next_producer_id_block = i64::MAX - 5;
    assert_eq!(
        reject(&mut md, alloc(1, 10)),
        RequestError::ProducerIdsExhausted
    );
}

#[test]
fn topic_lifecycle_partitions_and_configs() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 2, 2);
    let first_two = md.topics["t"].partitions.clone();

    assert!(matches!(
        reject(
            &mut md,
            MetaRequest::CreatePartitions {
                name: "t".into(),
                count: 2
            }
        ),
        RequestError::InvalidPartitions(_)
    ));
    assert_eq!(
        apply(
            &mut md,
            MetaRequest::CreatePartitions {
                name: "t".into(),
                count: 6
            }
        ),
        MetaResponse::Ok
    );
    let parts = &md.topics["t"].partitions;
    assert_eq!(parts.len(), 6);
    assert_eq!(
        parts[..2],
        first_two[..],
        "existing partitions are untouched"
    );
    assert!(parts.iter().all(|p| p.replicas.len() == 2));

    let set = |pairs: &[(&str, Option<&str>)]| MetaRequest::AlterTopicConfigs {
        name: "t".into(),
        configs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
    };
    apply(
        &mut md,
        set(&[
            ("retention.ms", Some("1000")),
            ("cleanup.policy", Some("compact")),
        ]),
    );
    apply(&mut md, set(&[("cleanup.policy", None)]));
    assert_eq!(
        md.topics["t"].configs,
        BTreeMap::from([("retention.ms".to_string(), "1000".to_string())])
    );
    assert_eq!(
        reject(&mut md, set(&[("retention.ms", Some("1000"))])),
        RequestError::NoChange
    );
    assert!(matches!(
        reject(&mut md, set(&[("", Some("x"))])),
        RequestError::InvalidConfig(_)
    ));

    assert_eq!(
        apply(&mut md, MetaRequest::DeleteTopic { name: "t".into() }),
        MetaResponse::Ok
    );
    assert!(md.topics.is_empty());
    assert_eq!(
        reject(&mut md, MetaRequest::DeleteTopic { name: "t".into() }),
        RequestError::UnknownTopic("t".into())
    );
    assert_eq!(
        reject(
            &mut md,
            MetaRequest::CreatePartitions {
                name: "t".into(),
                count: 3
            }
        ),
        RequestError::UnknownTopic("t".into())
    );
}

#[test]
fn apply_is_deterministic_and_state_round_trips_through_serde() {
    let script = |md: &mut ClusterMetadata| {
        for id in 1..=5 {
            register(md, id, Some(if id % 2 == 0 { "even" } else { "odd" }));
            apply(md, MetaRequest::UnfenceBroker { id });
        }
        for t in 0..4 {
            create_topic(md, &format!("topic-{t}"), 5 + t, 3);
        }
        fence(md, 3);
        apply(md, MetaRequest::SetShuttingDown { id: 4 });
        apply(
            md,
            MetaRequest::ElectPreferredLeaders {
                scope: ElectionScope::All,
            },
        );
        apply(
            md,
            MetaRequest::AllocateProducerIds {
                broker: 1,
                count: 10,
            },
        );
    };
    let mut a = ClusterMetadata::default();
    let mut b = ClusterMetadata::default();
    script(&mut a);
    script(&mut b);
    assert_eq!(a, b);

    let json = serde_json::to_vec(&a).unwrap();
    let back: ClusterMetadata = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, a);
    // Requests and responses travel as JSON too (raft log, forwarding).
    let req = MetaRequest::ElectPreferredLeaders {
        scope: ElectionScope::Partitions(vec![("x".into(), 1)]),
    };
    let back: MetaRequest = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
    assert_eq!(back, req);
}

#[test]
fn broker_configs_are_set_deleted_and_read_from_old_state() {
    let mut md = cluster(2);
    let set = |broker: &str, k: &str, v: Option<&str>| MetaRequest::AlterBrokerConfigs {
        broker: broker.into(),
        configs: BTreeMap::from([(k.to_string(), v.map(str::to_string))]),
    };
    let rate = "leader.replication.throttled.rate";
    assert_eq!(
        apply(&mut md, set("1", rate, Some("1000"))),
        MetaResponse::Ok
    );
    assert_eq!(apply(&mut md, set("", rate, Some("5"))), MetaResponse::Ok);
    assert_eq!(md.broker_configs["1"][rate], "1000");
    assert_eq!(md.broker_configs[""][rate], "5");
    assert_eq!(
        reject(&mut md, set("1", rate, Some("1000"))),
        RequestError::NoChange
    );
    assert!(matches!(
        reject(&mut md, set("-3", rate, Some("1"))),
        RequestError::InvalidConfig(_)
    ));
    assert_eq!(apply(&mut md, set("1", rate, None)), MetaResponse::Ok);
    assert!(!md.broker_configs.contains_key("1"));
    assert_eq!(
        reject(&mut md, set("2", rate, None)),
        RequestError::NoChange
    );

    // State written before broker configs existed still loads.
    let mut json: serde_json::Value = serde_json::to_value(&md).unwrap();
    json.as_object_mut().unwrap().remove("broker_configs");
    let old: ClusterMetadata = serde_json::from_value(json).unwrap();
    assert!(old.broker_configs.is_empty());
}

/// Fences every ISR member of `t-0` but the last; returns (last ISR member, a replica outside
/// the ISR that is still eligible).
fn leave_only_one_isr_member_then_fence_it(md: &mut ClusterMetadata) -> (i32, i32) {
    let p = partition(md, "t", 0);
    let (first, second, third) = (p.replicas[0], p.replicas[1], p.replicas[2]);
    // `first` falls out of the ISR while alive (say it lagged), then the rest die.
    let leader = p.leader;
    let shrunk: Vec<i32> = p.isr.iter().copied().filter(|r| *r != first).collect();
    let new_leader = if leader == first { shrunk[0] } else { leader };
    apply(
        md,
        change("t", 0, Some(new_leader), Some(shrunk), p.partition_epoch),
    );
    fence(md, second);
    fence(md, third);
    (third, first)
}

#[test]
fn unclean_election_only_for_topics_that_allow_it() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 1, 3);
    let (last_isr, outside) = leave_only_one_isr_member_then_fence_it(&mut md);
    let p = partition(&md, "t", 0);
    assert_eq!(
        (p.leader, p.isr.clone()),
        (NO_LEADER, vec![last_isr]),
        "clean: waits"
    );

    // Turning the setting on elects the live replica outside the ISR.
    apply(
        &mut md,
        MetaRequest::AlterTopicConfigs {
            name: "t".into(),
            configs: [(
                "unclean.leader.election.enable".to_string(),
                Some("true".to_string()),
            )]
            .into(),
        },
    );
    let p = partition(&md, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (outside, vec![outside]));
}

#[test]
fn elect_leaders_unclean_forces_an_election_and_reports_per_partition() {
    let mut md = cluster(3);
    create_topic(&mut md, "t", 2, 3);
    let (_, outside) = leave_only_one_isr_member_then_fence_it(&mut md);
    let req = MetaRequest::ElectUncleanLeaders {
        partitions: vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 7)],
    };
    let MetaResponse::Elections(results) = apply(&mut md, req) else {
        panic!("expected elections");
    };
    assert_eq!(results[0].result, Ok(outside));
    assert!(matches!(
        results[1].result,
        Err(RequestError::ElectionNotNeeded { .. })
    ));
    assert_eq!(
        results[2].result.clone().map_err(|e| e.kafka_error_code()),
        Err(3)
    );
    assert_eq!(partition(&md, "t", 0).isr, vec![outside]);
}

#[test]
fn brokers_answer_per_listener() {
    let ep = |name: &str, host: &str, port| ListenerEndpoint {
        name: name.into(),
        host: host.into(),
        port,
    };
    let mut md = ClusterMetadata::default();
    let req = |listeners: Vec<ListenerEndpoint>| MetaRequest::RegisterBroker {
        id: 1,
        incarnation: Uuid::from_u128(1),
        host: "spate-1.internal".into(),
        port: 9092,
        listeners,
        rack: None,
    };
    let twice = vec![ep("A", "h", 1), ep("A", "h", 2)];
    assert!(matches!(
        reject(&mut md, req(twice)),
        RequestError::InvalidRegistration(m) if m.contains("named twice")
    ));
    assert!(matches!(
        reject(&mut md, req(vec![ep("EXTERNAL", "", 1)])),
        RequestError::InvalidRegistration(_)
    ));
    let listeners = vec![
        ep("INTERNAL", "spate-1.internal", 9092),
        ep("EXTERNAL", "203.0.113.9", 31001),
    ];
    apply(&mut md, req(listeners));
    let b = &md.brokers[&1];
    assert_eq!(b.endpoint("EXTERNAL"), Some(("203.0.113.9", 31001)));
    assert_eq!(b.endpoint("INTERNAL"), Some(("spate-1.internal", 9092)));
    assert_eq!(b.endpoint("OTHER"), None, "Kafka leaves such brokers out");
    // Registrations from before named listeners answer every listener with host:port.
    let mut old = b.clone();
    old.listeners.clear();
    assert_eq!(old.endpoint("ANY"), Some(("spate-1.internal", 9092)));
}

mod scram {
    use super::*;
    use crate::ScramUserChange;
    use spate_auth::{ScramCredential, ScramMechanism};

    fn cred(password: &str) -> ScramCredential {
        ScramCredential::from_password(
            ScramMechanism::Sha512,
            password.as_bytes(),
            vec![7; 16],
            4096,
        )
    }

    fn upsert(user: &str, password: &str) -> ScramUserChange {
        ScramUserChange {
            user: user.into(),
            deletions: vec![],
            upsertions: vec![(ScramMechanism::Sha512, cred(password))],
        }
    }

    #[test]
    fn credentials_are_altered_per_user_atomically() {
        let mut md = cluster(1);
        let r = apply(
            &mut md,
            MetaRequest::AlterScramCredentials {
                changes: vec![upsert("alice", "a"), upsert("bob", "b")],
            },
        );
        assert_eq!(r, MetaResponse::ScramAltered(vec![None, None]));
        assert_eq!(md.scram["alice"][&ScramMechanism::Sha512], cred("a"));

        // bob's change names a missing credential: none of it applies; carol's does.
        let r = apply(
            &mut md,
            MetaRequest::AlterScramCredentials {
                changes: vec![
                    ScramUserChange {
                        user: "bob".into(),
                        deletions: vec![ScramMechanism::Sha256],
                        upsertions: vec![(ScramMechanism::Sha512, cred("b2"))],
                    },
                    upsert("carol", "c"),
                ],
            },
        );
        let MetaResponse::ScramAltered(results) = r else {
            panic!("{r:?}")
        };
        assert!(matches!(
            &results[0],
            Some(e @ RequestError::ScramCredentialNotFound { .. }) if e.kafka_error_code() == 91
        ));
        assert_eq!(results[1], None);
        assert_eq!(md.scram["bob"][&ScramMechanism::Sha512], cred("b"));
        assert!(md.scram.contains_key("carol"));

        // Deleting a user's last credential forgets the user.
        apply(
            &mut md,
            MetaRequest::AlterScramCredentials {
                changes: vec![ScramUserChange {
                    user: "carol".into(),
                    deletions: vec![ScramMechanism::Sha512],
                    upsertions: vec![],
                }],
            },
        );
        assert!(!md.scram.contains_key("carol"));
    }

    #[test]
    fn a_bootstrap_credential_never_overwrites_one_that_exists() {
        let mut md = cluster(1);
        let add = |password: &str| MetaRequest::AddScramCredentialIfAbsent {
            user: "admin".into(),
            mechanism: ScramMechanism::Sha512,
            credential: cred(password),
        };
        assert_eq!(apply(&mut md, add("first")), MetaResponse::Ok);
        let e = reject(&mut md, add("second"));
        assert!(e.is_no_op(), "{e}");
        assert_eq!(md.scram["admin"][&ScramMechanism::Sha512], cred("first"));
    }

    #[test]
    fn credentials_survive_a_snapshot_and_stay_out_of_debug_output() {
        let mut md = cluster(1);
        apply(
            &mut md,
            MetaRequest::AlterScramCredentials {
                changes: vec![upsert("alice", "a")],
            },
        );
        let json = serde_json::to_vec(&md).unwrap();
        let back: ClusterMetadata = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, md);
        let req = MetaRequest::AlterScramCredentials {
            changes: vec![upsert("alice", "a")],
        };
        let shown = format!("{req:?} {md:?}");
        assert!(
            shown.contains("[hidden]") && !shown.contains("stored_key"),
            "{shown}"
        );
    }
}

mod acls {
    use super::*;
    use spate_auth::acl::*;

    fn acl(name: &str, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn acls_are_created_once_and_deleted_by_filter() {
        let mut md = cluster(1);
        let create = |acls: Vec<AclBinding>| MetaRequest::CreateAcls { acls };
        apply(
            &mut md,
            create(vec![acl("a", "User:x"), acl("b", "User:x")]),
        );
        assert_eq!(md.acls.len(), 2);
        let version = md.acls_version;
        apply(&mut md, create(vec![acl("a", "User:x")]));
        assert_eq!(md.acls_version, version, "an existing ACL changes nothing");

        let by_principal = AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: Some("User:x".into()),
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        let only_a = AclFilter {
            resource_name: Some("a".into()),
            ..by_principal.clone()
        };
        let r = apply(
            &mut md,
            MetaRequest::DeleteAcls {
                filters: vec![only_a, by_principal],
            },
        );
        let MetaResponse::AclsDeleted(per_filter) = r else {
            panic!("{r:?}")
        };
        assert_eq!(per_filter[0], vec![acl("a", "User:x")]);
        assert_eq!(
            per_filter[1].len(),
            2,
            "filters see the set before the delete"
        );
        assert!(md.acls.is_empty());
        assert!(md.acls_version > version);
    }
}

mod quotas {
    use super::*;
    use spate_auth::quota::QuotaEntity;

    #[test]
    fn quotas_are_set_removed_and_survive_a_snapshot() {
        let mut md = cluster(1);
        let alice = QuotaEntity::from_parts([("user", Some("alice"))]).unwrap();
        let default_client = QuotaEntity::from_parts([("client-id", None)]).unwrap();
        apply(
            &mut md,
            MetaRequest::AlterClientQuotas {
                entries: vec![
                    (
                        alice.clone(),
                        vec![("producer_byte_rate".into(), Some(1024f64.to_bits()))],
                    ),
                    (
                        default_client.clone(),
                        vec![("consumer_byte_rate".into(), Some(2048f64.to_bits()))],
                    ),
                ],
            },
        );
        assert_eq!(md.client_quotas.len(), 2);
        let json = serde_json::to_vec(&md).unwrap();
        assert_eq!(
            serde_json::from_slice::<ClusterMetadata>(&json).unwrap(),
            md
        );
        apply(
            &mut md,
            MetaRequest::AlterClientQuotas {
                entries: vec![(alice, vec![("producer_byte_rate".into(), None)])],
            },
        );
        assert_eq!(md.client_quotas.len(), 1);
        assert_eq!(md.client_quotas[0].0, default_client);
    }
}
