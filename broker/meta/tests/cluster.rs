//! Real clusters in one process: every node has its own data directory and its own gRPC
//! server on a distinct loopback address (127.0.0.1, .2, ...), and they talk over TCP.
//! Waits poll metrics against deadlines; no sleep decides an outcome.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use spate_meta::{
    BrokerHeartbeat, ClusterMetadata, MetaConfig, MetaError, MetaNode, MetaRequest, MetaResponse,
    RequestError, ServerRole,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

fn config(id: u64, addr: SocketAddr, dir: PathBuf, voters: &BTreeMap<u64, String>) -> MetaConfig {
    let mut c = MetaConfig::new(id, addr, dir, voters.clone());
    c.cluster_id = "test-cluster".into();
    // Fast, but with room for a loaded 2-core CI machine running several clusters at once.
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout_min = Duration::from_millis(400);
    c.election_timeout_max = Duration::from_millis(800);
    c.connect_timeout = Duration::from_millis(300);
    c.propose_timeout = Duration::from_secs(15);
    // Snapshot and purge often so that catching up exercises snapshot installs too.
    c.snapshot_after_entries = 8;
    c.entries_kept_after_snapshot = 0;
    c
}

struct Member {
    addr: SocketAddr,
    dir: PathBuf,
    node: Option<MetaNode>,
}

struct Cluster {
    _tmp: TempDir,
    voters: BTreeMap<u64, String>,
    members: BTreeMap<u64, Member>,
    tweak: fn(&mut MetaConfig),
}

impl Cluster {
    async fn start(n: u64) -> Result<Cluster> {
        Cluster::start_with(n, |_| {}).await
    }

    /// Starts voters 1..=n, node i on 127.0.0.i.
    async fn start_with(n: u64, tweak: fn(&mut MetaConfig)) -> Result<Cluster> {
        let tmp = tempfile::tempdir()?;
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind(format!("127.0.0.{id}:0")).await?;
            listeners.insert(id, listener);
        }
        let voters: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, l)| Ok((*id, l.local_addr()?.to_string())))
            .collect::<Result<_>>()?;
        let mut cluster = Cluster {
            voters,
            members: BTreeMap::new(),
            tweak,
            _tmp: tmp,
        };
        for (id, listener) in listeners {
            let addr = listener.local_addr()?;
            let dir = cluster._tmp.path().join(format!("node-{id}"));
            let mut c = config(id, addr, dir.clone(), &cluster.voters);
            (cluster.tweak)(&mut c);
            let node = MetaNode::start_with_listener(c, listener).await?;
            cluster.members.insert(
                id,
                Member {
                    addr,
                    dir,
                    node: Some(node),
                },
            );
        }
        Ok(cluster)
    }

    fn node(&self, id: u64) -> &MetaNode {
        self.members[&id].node.as_ref().expect("node is running")
    }

    fn running(&self) -> Vec<&MetaNode> {
        self.members
            .values()
            .filter_map(|m| m.node.as_ref())
            .collect()
    }

    /// Waits until every running node sees the same leader, which considers itself leader.
    async fn wait_leader(&self) -> Result<u64> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leaders: Vec<Option<u64>> = self.running().iter().map(|n| n.leader_id()).collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader))
                    && self
                        .members
                        .get(leader)
                        .and_then(|m| m.node.as_ref())
                        .is_some_and(|n| n.is_leader())
                {
                    return Ok(*leader);
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader within {DEADLINE:?}: {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node has applied the same entries; returns their metadata.
    async fn wait_converged(&self) -> Result<Arc<ClusterMetadata>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let views: Vec<Arc<ClusterMetadata>> = self
                .running()
                .iter()
                .map(|n| n.metadata().borrow().clone())
                .collect();
            let leader_applied = self
                .running()
                .iter()
                .find(|n| n.is_leader())
                .and_then(|n| n.metrics().last_applied);
            if let Some(first) = views.first() {
                if Some(first.metadata_offset) == leader_applied && views.iter().all(|v| v == first)
                {
                    return Ok(first.clone());
                }
            }
            if Instant::now() > deadline {
                let offsets: Vec<u64> = views.iter().map(|v| v.metadata_offset).collect();
                bail!("nodes did not converge within {DEADLINE:?}: offsets {offsets:?}, leader applied {leader_applied:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&mut self, id: u64) -> Result<()> {
        if let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.take()) {
            node.shutdown().await?;
        }
        Ok(())
    }

    /// Restarts a stopped node from its data directory on its old address.
    async fn restart(&mut self, id: u64) -> Result<()> {
        let member = self.members.get_mut(&id).context("no such member")?;
        let listener = TcpListener::bind(member.addr).await?;
        let mut c = config(id, member.addr, member.dir.clone(), &self.voters);
        (self.tweak)(&mut c);
        member.node = Some(MetaNode::start_with_listener(c, listener).await?);
        Ok(())
    }

    async fn shutdown(mut self) -> Result<()> {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.kill(id).await?;
        }
        Ok(())
    }
}

fn register(id: i32) -> MetaRequest {
    MetaRequest::RegisterBroker {
        id,
        incarnation: Uuid::from_u128(id as u128),
        host: format!("broker-{id}"),
        port: 9092,
        listeners: vec![],
        rack: None,
    }
}

fn create_topic(name: &str, partitions: i32, rf: i16) -> MetaRequest {
    MetaRequest::CreateTopic {
        name: name.into(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor: rf,
        configs: BTreeMap::new(),
        assignment: None,
    }
}

/// Registers and unfences brokers `ids`, proposing through `node`.
async fn add_brokers(node: &MetaNode, ids: impl IntoIterator<Item = i32>) -> Result<()> {
    for id in ids {
        node.propose(register(id)).await?;
        node.propose(MetaRequest::UnfenceBroker { id }).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_cluster_elects_itself_and_applies() -> Result<()> {
    let cluster = Cluster::start(1).await?;
    assert_eq!(cluster.wait_leader().await?, 1);
    let node = cluster.node(1);
    let mut updates = node.metadata();

    let MetaResponse::BrokerRegistered { epoch } = node.propose(register(1)).await? else {
        bail!("unexpected response");
    };
    updates.changed().await?;
    let md = cluster.wait_converged().await?;
    assert_eq!(md.brokers[&1].epoch, epoch);
    assert_eq!(md.cluster_id, "test-cluster");
    let m = node.metrics();
    assert_eq!(m.role, ServerRole::Leader);
    assert_eq!(m.last_applied, Some(md.metadata_offset));
    assert!(m.commit_index >= m.last_applied, "{m:?}");

    // Rejections come back as errors and change nothing.
    let before = node.metadata().borrow().clone();
    match node.propose(register(1)).await {
        Err(MetaError::Rejected(e @ RequestError::AlreadyRegistered { .. })) => {
            assert!(e.is_no_op())
        }
        other => bail!("expected AlreadyRegistered, got {other:?}"),
    }
    let after = node.metadata().borrow().clone();
    assert_eq!(after.brokers, before.brokers);
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_from_any_node_apply_everywhere_in_the_same_order() -> Result<()> {
    let cluster = Cluster::start(3).await?;
    let leader = cluster.wait_leader().await?;
    let follower = (1..=3).find(|id| *id != leader).context("no follower")?;

    // Record the offsets a follower's watch publishes: strictly increasing, never skipping
    // back.
    let mut watch = cluster.node(follower).metadata();
    let seen = tokio::spawn(async move {
        let mut offsets = Vec::new();
        while watch.changed().await.is_ok() {
            let offset = watch.borrow_and_update().metadata_offset;
            offsets.push(offset);
            if offsets.len() > 1000 {
                break;
            }
        }
        offsets
    });

    // Each node proposes some of the changes; followers forward to the leader.
    add_brokers(cluster.node(1), [1, 2]).await?;
    add_brokers(cluster.node(2), [3]).await?;
    add_brokers(cluster.node(3), [4]).await?;
    for (i, id) in (1..=3).enumerate() {
        let r = cluster
            .node(id)
            .propose(create_topic(&format!("topic-{i}"), 4, 3))
            .await?;
        assert!(matches!(r, MetaResponse::TopicCreated { .. }), "{r:?}");
    }
    let MetaResponse::ProducerIds { start: a, .. } = cluster
        .node(follower)
        .propose(MetaRequest::AllocateProducerIds {
            broker: 1,
            count: 1000,
        })
        .await?
    else {
        bail!("no producer ids");
    };
    let MetaResponse::ProducerIds { start: b, .. } = cluster
        .node(leader)
        .propose(MetaRequest::AllocateProducerIds {
            broker: 2,
            count: 1000,
        })
        .await?
    else {
        bail!("no producer ids");
    };
    assert_eq!(b, a + 1000, "blocks are handed out in log order");
    // A rejection travels back through forwarding too.
    match cluster
        .node(follower)
        .propose(create_topic("topic-0", 1, 1))
        .await
    {
        Err(MetaError::Rejected(RequestError::TopicExists(t))) => assert_eq!(t, "topic-0"),
        other => bail!("expected TopicExists, got {other:?}"),
    }

    let md = cluster.wait_converged().await?;
    assert_eq!(md.brokers.len(), 4);
    assert_eq!(md.topics.len(), 3);
    assert!(md.brokers.values().all(|b| !b.fenced));
    assert_eq!(md.next_producer_id_block, a + 2000);
    for n in cluster.running() {
        assert_eq!(n.metrics().last_applied, Some(md.metadata_offset));
    }

    cluster.node(follower).shutdown().await?;
    let offsets = seen.await?;
    assert!(!offsets.is_empty());
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_nothing_and_restarted_node_catches_up() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let old_leader = cluster.wait_leader().await?;
    let survivor = (1..=3)
        .find(|id| *id != old_leader)
        .context("no follower")?;
    add_brokers(cluster.node(survivor), 1..=3).await?;
    cluster
        .node(survivor)
        .propose(create_topic("before", 6, 3))
        .await?;
    let before = cluster.wait_converged().await?;

    cluster.kill(old_leader).await?;
    let new_leader = cluster.wait_leader().await?;
    assert_ne!(new_leader, old_leader);

    // Proposals keep working, from either survivor; enough of them to pass the snapshot
    // threshold so that the log the old leader missed gets purged.
    cluster
        .node(survivor)
        .propose(create_topic("after", 3, 2))
        .await?;
    for i in 0..12 {
        cluster
            .node(new_leader)
            .propose(MetaRequest::AlterTopicConfigs {
                name: "after".into(),
                configs: BTreeMap::from([("retention.ms".into(), Some(format!("{i}")))]),
            })
            .await?;
    }
    let during = cluster.wait_converged().await?;
    assert_eq!(
        during.topics["before"], before.topics["before"],
        "committed data survived"
    );
    assert_eq!(during.brokers, before.brokers);
    assert!(during.topics.contains_key("after"));

    cluster.restart(old_leader).await?;
    let after = cluster.wait_converged().await?;
    assert_eq!(after.metadata_offset, during.metadata_offset);
    assert_eq!(*cluster.node(old_leader).metadata().borrow(), after);

    // The restarted node is a full member again: it can propose.
    cluster
        .node(old_leader)
        .propose(MetaRequest::DeleteTopic {
            name: "before".into(),
        })
        .await?;
    let last = cluster.wait_converged().await?;
    assert!(!last.topics.contains_key("before"));
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restarts_from_disk() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_leader().await?;
    add_brokers(cluster.node(leader), 1..=3).await?;
    for i in 0..5 {
        cluster
            .node(leader)
            .propose(create_topic(&format!("t{i}"), 2, 3))
            .await?;
    }
    let before = cluster.wait_converged().await?;
    for id in 1..=3 {
        cluster.kill(id).await?;
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader().await?;
    // A new leader commits a blank entry of its term, so the offset may move on; the content
    // is what must survive.
    let after = cluster.wait_converged().await?;
    assert!(after.metadata_offset >= before.metadata_offset);
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.brokers, before.brokers);
    assert_eq!(after.cluster_id, "test-cluster");
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_tolerate_two_failures() -> Result<()> {
    let mut cluster = Cluster::start(5).await?;
    let leader = cluster.wait_leader().await?;
    add_brokers(cluster.node(leader), 1..=3).await?;
    // Lose the leader and one follower.
    let follower = (1..=5).find(|id| *id != leader).context("no follower")?;
    cluster.kill(leader).await?;
    cluster.kill(follower).await?;
    let new_leader = cluster.wait_leader().await?;
    assert!(new_leader != leader && new_leader != follower);
    for id in (1..=5).filter(|id| *id != leader && *id != follower) {
        cluster
            .node(id)
            .propose(create_topic(&format!("from-{id}"), 1, 3))
            .await?;
    }
    let md = cluster.wait_converged().await?;
    assert_eq!(md.topics.len(), 3);
    assert_eq!(md.brokers.len(), 3);
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_without_a_quorum_fail_at_the_deadline() -> Result<()> {
    let mut cluster =
        Cluster::start_with(3, |c| c.propose_timeout = Duration::from_secs(2)).await?;
    let leader = cluster.wait_leader().await?;
    cluster.node(leader).propose(register(1)).await?;
    let survivor = (1..=3).find(|id| *id != leader).context("no follower")?;
    for id in (1..=3).filter(|id| *id != survivor) {
        cluster.kill(id).await?;
    }
    let started = Instant::now();
    match cluster.node(survivor).propose(register(2)).await {
        Err(MetaError::NoLeader(_)) => {}
        other => bail!("expected NoLeader, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_can_be_added_and_removed() -> Result<()> {
    let cluster = Cluster::start(1).await?;
    cluster.wait_leader().await?;
    let leader = cluster.node(1);
    add_brokers(leader, [1]).await?;

    // A second node that is not among the initial voters: it does not bootstrap, it waits.
    let listener = TcpListener::bind("127.0.0.2:0").await?;
    let addr = listener.local_addr()?;
    let dir = tempfile::tempdir()?;
    let newcomer = MetaNode::start_with_listener(
        config(2, addr, dir.path().to_path_buf(), &cluster.voters),
        listener,
    )
    .await?;
    match newcomer.add_voter(3, "127.0.0.3:1".into()).await {
        Err(MetaError::NotLeader { .. }) => {}
        other => bail!("a follower accepted a membership change: {other:?}"),
    }

    leader.add_voter(2, addr.to_string()).await?;
    assert_eq!(leader.metrics().voters, [1, 2].into_iter().collect());
    let deadline = Instant::now() + DEADLINE;
    while newcomer.metadata().borrow().brokers.len() != 1 || newcomer.leader_id() != Some(1) {
        if Instant::now() > deadline {
            bail!("the new voter did not catch up: {:?}", newcomer.metrics());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Proposals through the new voter reach the leader.
    newcomer.propose(register(2)).await?;

    leader.remove_voter(2).await?;
    assert_eq!(leader.metrics().voters, [1].into_iter().collect());
    newcomer.shutdown().await?;
    // With one voter left the cluster still commits on its own.
    leader.propose(register(3)).await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_heartbeats_reach_the_leader_from_every_node() -> Result<()> {
    let cluster = Cluster::start(3).await?;
    let incarnation = Uuid::new_v4();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let leader = cluster.wait_leader().await?;
        for id in 1..=3u64 {
            let heartbeat = BrokerHeartbeat {
                broker_id: id as i32,
                incarnation,
                metadata_offset: id,
            };
            // A leader change in between only loses this round.
            let _ = cluster
                .node(id)
                .heartbeat(heartbeat, Duration::from_secs(2))
                .await;
        }
        let seen = cluster.node(leader).heartbeats();
        if (1..=3).all(|id| {
            seen.get(&id)
                .is_some_and(|(h, _)| h.metadata_offset == id as u64)
        }) {
            break;
        }
        if Instant::now() > deadline {
            bail!("heartbeats did not all reach leader {leader}: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await
}

/// Starts a learner (a broker-only node) `id` on 127.0.0.`id`, any port, joining `cluster`.
async fn start_learner(cluster: &Cluster, id: u64, dir: &std::path::Path) -> Result<MetaNode> {
    let listener = TcpListener::bind(format!("127.0.0.{id}:0")).await?;
    let addr = listener.local_addr()?;
    let mut c = config(id, addr, dir.to_path_buf(), &cluster.voters);
    c.learner = true;
    Ok(MetaNode::start_with_listener(c, listener).await?)
}

/// Waits until `node` has applied what the leader `leader` has applied.
async fn wait_caught_up(leader: &MetaNode, node: &MetaNode) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let want = leader.metrics().last_applied;
        if want.is_some() && node.metrics().last_applied >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not caught up: {:?} vs {:?}", node.metrics(), want);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_follows_the_log_and_rejoins_with_a_new_address() -> Result<()> {
    let cluster = Cluster::start(3).await?;
    let leader_id = cluster.wait_leader().await?;
    add_brokers(cluster.node(leader_id), [1, 2, 3]).await?;

    let dir = tempfile::tempdir()?;
    let learner = start_learner(&cluster, 4, dir.path()).await?;
    learner.wait_for_leader(DEADLINE).await?;
    wait_caught_up(cluster.node(leader_id), &learner).await?;
    let m = cluster.node(leader_id).metrics();
    assert_eq!(m.voters, [1, 2, 3].into_iter().collect());
    assert_eq!(m.learners, [4].into_iter().collect());
    assert_eq!(learner.metrics().role, ServerRole::Learner);

    // Proposals through the learner are forwarded to the leader, and come back in its log.
    learner.propose(register(4)).await?;
    wait_caught_up(cluster.node(leader_id), &learner).await?;
    assert!(learner.metadata().borrow().brokers.contains_key(&4));

    // The leader's view, asked of the learner: three voters, one observer that is caught up.
    let view = learner.describe_quorum().await?;
    assert_eq!(view.leader_id, leader_id);
    let voters: Vec<u64> = view.voters.iter().map(|r| r.node_id).collect();
    assert_eq!(voters, [1, 2, 3]);
    assert_eq!(view.observers.len(), 1);
    assert_eq!(view.observers[0].node_id, 4);
    assert!(view.commit_index.is_some());

    // A learner does not count for the quorum: without it the voters commit as before.
    learner.shutdown().await?;
    cluster.node(leader_id).propose(register(5)).await?;

    // It restarts on another port: joining again updates its address, and it catches up.
    let learner = start_learner(&cluster, 4, dir.path()).await?;
    let new_addr = learner.local_addr().to_string();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let leader = cluster.node(cluster.wait_leader().await?);
        let view = leader.describe_quorum().await?;
        if view
            .observers
            .iter()
            .any(|r| r.node_id == 4 && r.addr == new_addr)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("address not updated to {new_addr}: {view:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader_id = cluster.wait_leader().await?;
    wait_caught_up(cluster.node(leader_id), &learner).await?;
    assert!(learner.metadata().borrow().brokers.contains_key(&5));

    // Decommissioned through a follower (forwarded): the leader stops replicating to it.
    let follower = (1..=3).find(|id| *id != leader_id).unwrap_or(1);
    match cluster.node(follower).remove_learner(leader_id).await {
        Err(MetaError::MembershipRefused(_)) => {}
        other => bail!("removing a voter as a learner: {other:?}"),
    }
    cluster.node(follower).remove_learner(4).await?;
    cluster.node(follower).remove_learner(4).await?;
    assert!(cluster.node(leader_id).metrics().learners.is_empty());
    learner.shutdown().await?;

    // A voter cannot be configured as a learner.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut c = config(
        1,
        listener.local_addr()?,
        dir.path().join("x"),
        &cluster.voters,
    );
    c.learner = true;
    match MetaNode::start_with_listener(c, listener).await {
        Err(MetaError::Config(_)) => {}
        Err(e) => bail!("expected a config error, got {e}"),
        Ok(_) => bail!("a voter started as a learner"),
    }
    cluster.shutdown().await
}
