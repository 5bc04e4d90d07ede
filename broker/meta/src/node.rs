//! [`MetaNode`]: one member of the metadata quorum, as the broker uses it.
//!
//! Starting a node opens its stores, starts openraft and the gRPC server, and bootstraps the
//! cluster if this node is the lowest voter id and has never been initialized. A learner
//! (`MetaConfig::learner`, Kafka's broker-only node) never bootstraps: it asks the leader to
//! add it, again on every start (idempotent; a changed address is updated), and then receives
//! the log like a voter, without voting. Proposals from a follower or learner are forwarded to
//! the leader; while there is no leader they are retried until the propose deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{MetaError, Result};
use crate::liveness::{BrokerHeartbeat, HeartbeatAck, HeartbeatReply, Heartbeats};
use crate::membership::{self, MembershipChange, MembershipReply, QuorumReply, QuorumView};
use crate::network::pb::raft_service_server::RaftServiceServer;
use crate::network::{ForwardReply, Forwarder, NetworkFactory, RaftGrpc};
use crate::requests::{MetaRequest, MetaResponse};
use crate::state_machine::ClusterMetadata;
use crate::store::{self, CommittedIndex};
use crate::types::{NodeId, Raft};

/// How to run one metadata node.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// This node's raft id; must be a key of `voters` to take part in the initial quorum.
    pub node_id: NodeId,
    /// Join as a learner (Kafka's broker-only node, an observer of the quorum): never
    /// bootstrap, ask the leader (found through `voters`) to add this node, then receive the
    /// log without voting. `node_id` must not be one of `voters`.
    pub learner: bool,
    /// The address peers use to reach this node, stored in the membership when a learner
    /// joins. `None`: the bound listener address (an error if it is unspecified, 0.0.0.0).
    pub advertised_addr: Option<String>,
    /// Where the gRPC server listens.
    pub bind_addr: SocketAddr,
    /// Vote, log and snapshot files.
    pub data_dir: PathBuf,
    /// The initial voters: raft id → gRPC address (`host:port`) peers use to reach it.
    pub voters: BTreeMap<NodeId, String>,
    /// Written into the metadata once, by the bootstrapping node. Empty: not set.
    pub cluster_id: String,
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Connect timeout for peer channels.
    pub connect_timeout: Duration,
    /// How long `propose` keeps trying (waiting for a leader, following redirects).
    pub propose_timeout: Duration,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, so that slightly lagging followers catch up
    /// from the log instead of a snapshot.
    pub entries_kept_after_snapshot: u64,
    /// Mutual TLS between nodes; `None`: plain gRPC.
    pub tls: Option<Arc<crate::network::RaftTls>>,
}

impl MetaConfig {
    /// A config with production-leaning timings (Kafka's KRaft uses 2 s fetch timeouts and
    /// 1 s election timeouts; ours are in the same range).
    pub fn new(
        node_id: NodeId,
        bind_addr: SocketAddr,
        data_dir: impl Into<PathBuf>,
        voters: BTreeMap<NodeId, String>,
    ) -> Self {
        MetaConfig {
            node_id,
            learner: false,
            advertised_addr: None,
            bind_addr,
            data_dir: data_dir.into(),
            voters,
            cluster_id: String::new(),
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(500),
            propose_timeout: Duration::from_secs(10),
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
            tls: None,
        }
    }

    fn raft_config(&self) -> Result<openraft::Config> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: if self.cluster_id.is_empty() {
                "spate".into()
            } else {
                self.cluster_id.clone()
            },
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| MetaError::Config(e.to_string()))
    }
}

/// A node's role in the quorum, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    Leader,
    Follower,
    Candidate,
    /// Replicates but does not vote (being added, or removed from the voters).
    Learner,
    Shutdown,
}

/// What a node knows about the quorum; cheap to take, for health checks and Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaMetrics {
    pub node_id: NodeId,
    pub role: ServerRole,
    pub term: u64,
    pub current_leader: Option<NodeId>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Highest index this node knows to be committed.
    pub commit_index: Option<u64>,
    /// Highest index applied to this node's metadata (== `ClusterMetadata::metadata_offset`).
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log without voting (broker-only nodes).
    pub learners: BTreeSet<NodeId>,
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
}

struct Inner {
    config: MetaConfig,
    raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    committed: CommittedIndex,
    forwarder: Forwarder,
    /// Broker heartbeats received while this node leads.
    heartbeats: Heartbeats,
    local_addr: SocketAddr,
    server: Mutex<Option<Server>>,
    /// A learner's request to be added, retried until the leader has taken it.
    join_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    /// Dropped without `shutdown`: stop serving, so that the server's raft handle goes away
    /// and openraft stops once the last handle is gone. `shutdown` is the orderly way.
    fn drop(&mut self) {
        if let Some(task) = self
            .join_task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
        if let Some(server) = self
            .server
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = server.stop.send(());
        }
    }
}

/// One member of the metadata quorum. Cheap to clone; clones share the node.
#[derive(Clone)]
pub struct MetaNode {
    inner: Arc<Inner>,
}

impl MetaNode {
    /// Binds `config.bind_addr` and starts the node (see [`MetaNode::start_with_listener`]).
    pub async fn start(config: MetaConfig) -> Result<MetaNode> {
        let listener = TcpListener::bind(config.bind_addr).await?;
        MetaNode::start_with_listener(config, listener).await
    }

    /// Starts the node serving on an already bound `listener` (tests bind port 0 first to
    /// learn the addresses before any node starts).
    pub async fn start_with_listener(
        config: MetaConfig,
        listener: TcpListener,
    ) -> Result<MetaNode> {
        if config.voters.is_empty() {
            return Err(MetaError::Config("no voters configured".into()));
        }
        let local_addr = listener.local_addr()?;
        let join = if config.learner {
            if config.voters.contains_key(&config.node_id) {
                return Err(MetaError::Config(format!(
                    "node {} is one of the voters; it cannot join as a learner",
                    config.node_id
                )));
            }
            let addr = match &config.advertised_addr {
                Some(addr) => addr.clone(),
                None if local_addr.ip().is_unspecified() => {
                    return Err(MetaError::Config(format!(
                        "a learner listening on {local_addr} needs an address peers can reach"
                    )))
                }
                None => local_addr.to_string(),
            };
            Some(MembershipChange::JoinAsLearner {
                node_id: config.node_id,
                addr,
            })
        } else {
            None
        };
        let raft_config = Arc::new(config.raft_config()?);
        let (log, sm) = store::open(&config.data_dir).await?;
        let metadata = sm.subscribe();
        let committed = log.committed_watch();
        let network =
            NetworkFactory::new(config.node_id, config.connect_timeout, config.tls.clone());
        let raft = Raft::new(config.node_id, raft_config, network, log, sm)
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?;

        let (stop, stopped) = oneshot::channel::<()>();
        let heartbeats = Heartbeats::default();
        let grpc = RaftGrpc::new(
            config.node_id,
            raft.clone(),
            heartbeats.clone(),
            committed.clone(),
            config.propose_timeout,
        );
        let service = RaftServiceServer::new(grpc).max_decoding_message_size(64 << 20);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &config.tls {
            server = server
                .tls_config(tls.server())
                .map_err(|e| MetaError::Raft(format!("raft TLS: {e}")))?;
        }
        let task = tokio::spawn(server.add_service(service).serve_with_incoming_shutdown(
            incoming,
            async {
                let _ = stopped.await;
            },
        ));

        let node = MetaNode {
            inner: Arc::new(Inner {
                forwarder: Forwarder::new(
                    config.node_id,
                    config.connect_timeout,
                    config.tls.clone(),
                ),
                heartbeats,
                config,
                raft,
                metadata,
                committed,
                local_addr,
                server: Mutex::new(Some(Server { stop, task })),
                join_task: Mutex::new(None),
            }),
        };
        match join {
            Some(change) => {
                // Not awaited: the voters may not be up yet; `wait_for_leader` tells when the
                // leader has added this node and replicates to it.
                let task = tokio::spawn(join_as_learner(
                    node.inner.raft.clone(),
                    node.inner.forwarder.clone(),
                    node.inner.config.voters.values().cloned().collect(),
                    change,
                    node.inner.config.propose_timeout,
                ));
                *node
                    .inner
                    .join_task
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(task);
            }
            None => node.bootstrap().await?,
        }
        Ok(node)
    }

    /// Initializes the cluster with all voters if this is the lowest voter id. Safe to repeat:
    /// openraft refuses (`NotAllowed`) once the node has a log or a vote.
    async fn bootstrap(&self) -> Result<()> {
        let config = &self.inner.config;
        if config.voters.keys().next() != Some(&config.node_id) {
            return Ok(());
        }
        let raft = &self.inner.raft;
        if raft
            .is_initialized()
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?
        {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(node = config.node_id, "bootstrapped the metadata quorum"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(MetaError::Raft(e.to_string())),
        }
        if !config.cluster_id.is_empty() {
            // Once a leader exists; the node that bootstrapped takes care of it.
            let node = self.clone();
            let cluster_id = config.cluster_id.clone();
            tokio::spawn(async move {
                match node.propose(MetaRequest::InitCluster { cluster_id }).await {
                    Ok(_) => {}
                    Err(MetaError::Rejected(e)) if e.is_no_op() => {}
                    Err(e) => tracing::warn!("could not set the cluster id: {e}"),
                }
            });
        }
        Ok(())
    }

    /// Proposes `request` and waits until it is committed and applied, on the leader or by
    /// forwarding to it. Rejections by the state machine come back as
    /// [`MetaError::Rejected`].
    ///
    /// Retries while there is no leader or the leader changes, until the propose timeout. A
    /// retry after an unanswered forward can apply a request twice; requests are designed so
    /// that a second application is rejected as a no-op ([`crate::RequestError::is_no_op`]) or
    /// is harmless (producer id blocks).
    pub async fn propose(&self, request: MetaRequest) -> Result<MetaResponse> {
        let span = tracing::trace_span!(
            target: crate::network::TRACE_TARGET,
            "meta.propose",
            meta.request = request.kind(),
            spate.node.id = self.inner.config.node_id,
        );
        self.propose_in(request).instrument(span).await
    }

    async fn propose_in(&self, request: MetaRequest) -> Result<MetaResponse> {
        let timeout = self.inner.config.propose_timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let leader = match self.inner.raft.client_write(request.clone()).await {
                Ok(written) => return into_result(written.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                    to.leader_node.map(|n| n.addr)
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(MetaError::Raft(e.to_string()))
                }
                Err(RaftError::Fatal(_)) => return Err(MetaError::Shutdown),
            };
            if let Some(addr) = leader {
                let left = deadline.saturating_duration_since(Instant::now());
                match self
                    .inner
                    .forwarder
                    .client_write(&addr, &request, left)
                    .await
                {
                    Ok(ForwardReply::Applied(response)) => return into_result(response),
                    Ok(ForwardReply::NotLeader { .. }) => {}
                    Ok(ForwardReply::Failed(e)) | Err(e) => {
                        tracing::debug!("forwarding a proposal failed: {e}")
                    }
                }
            }
            if Instant::now() + pause >= deadline {
                return Err(MetaError::NoLeader(timeout));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// The committed metadata, updated after every applied batch, in log order.
    pub fn metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.inner.metadata.clone()
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id())
    }

    pub fn leader_id(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn metrics(&self) -> MetaMetrics {
        let m = self.inner.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => ServerRole::Leader,
            ServerState::Follower => ServerRole::Follower,
            ServerState::Candidate => ServerRole::Candidate,
            ServerState::Learner => ServerRole::Learner,
            ServerState::Shutdown => ServerRole::Shutdown,
        };
        MetaMetrics {
            node_id: m.id,
            role,
            term: m.current_term,
            current_leader: m.current_leader,
            last_log_index: m.last_log_index,
            // The saved marker lags after a snapshot install (openraft does not save it
            // then); whatever is applied is committed.
            commit_index: self
                .inner
                .committed
                .get()
                .map(|l| l.index)
                .max(m.last_applied.map(|l| l.index)),
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            voters: m.membership_config.membership().voter_ids().collect(),
            learners: m.membership_config.membership().learner_ids().collect(),
        }
    }

    /// Sends a broker's heartbeat to the leader (recorded locally when this node leads).
    /// `NotLeader`/`NoLeader` when no leader took it within `timeout`; the caller simply sends
    /// the next one on schedule.
    pub async fn heartbeat(
        &self,
        heartbeat: BrokerHeartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatAck> {
        {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader && m.current_leader == Some(self.node_id()) {
                self.inner.heartbeats.record(heartbeat);
                return Ok(HeartbeatAck::from_metrics(&m));
            }
        }
        let leader = self.leader_addr();
        let Some((id, addr)) = leader else {
            return Err(MetaError::NoLeader(timeout));
        };
        match self
            .inner
            .forwarder
            .heartbeat(&addr, &heartbeat, timeout)
            .await
        {
            Ok(HeartbeatReply::Recorded(ack)) => Ok(ack),
            Ok(HeartbeatReply::NotLeader { leader }) => Err(MetaError::NotLeader {
                leader: leader.map(|(id, _)| id),
            }),
            Err(e) => {
                tracing::debug!(leader = id, "heartbeat not delivered: {e}");
                Err(MetaError::NoLeader(timeout))
            }
        }
    }

    /// The last heartbeat of every broker that reported to this node while it led, with its
    /// arrival time. Not replicated: a node that just became leader knows only what it has
    /// received since.
    pub fn heartbeats(&self) -> std::collections::HashMap<i32, (BrokerHeartbeat, Instant)> {
        self.inner.heartbeats.snapshot()
    }

    /// Waits until some node is known as leader; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let m = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|_| MetaError::NoLeader(timeout))?;
        m.current_leader.ok_or(MetaError::NoLeader(timeout))
    }

    /// The leader this node knows of, with its address.
    fn leader_addr(&self) -> Option<(NodeId, String)> {
        membership::leader_hint(&self.inner.raft.metrics().borrow())
    }

    /// Makes a membership change on the leader: here if this node leads, else forwarded to it.
    /// Retries while there is no leader, the leader changes or another change is in progress,
    /// until the propose timeout. Changes are idempotent (see [`MembershipChange`]).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<()> {
        let timeout = self.inner.config.propose_timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = if self.is_leader() {
                membership::apply_on_leader(&self.inner.raft, change.clone(), left).await
            } else if let Some((_, addr)) = self.leader_addr() {
                self.inner
                    .forwarder
                    .change_membership(&addr, &change, left)
                    .await
                    .unwrap_or_else(MembershipReply::Busy)
            } else {
                MembershipReply::NotLeader { leader: None }
            };
            match reply {
                MembershipReply::Done => return Ok(()),
                MembershipReply::Refused(e) => return Err(MetaError::MembershipRefused(e)),
                MembershipReply::Busy(e) => tracing::debug!("membership change not done yet: {e}"),
                MembershipReply::NotLeader { .. } => {}
            }
            if Instant::now() + pause >= deadline {
                return Err(MetaError::NoLeader(timeout));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Removes a decommissioned learner (a broker-only node) from the membership; it stops
    /// receiving the log. Nothing to do if it is not a member; refused for a voter. Runs on the
    /// leader, forwarded if needed.
    pub async fn remove_learner(&self, id: NodeId) -> Result<()> {
        self.change_membership(MembershipChange::RemoveLearner { node_id: id })
            .await
    }

    /// The quorum as the leader sees it (asked of the leader if this node does not lead).
    pub async fn describe_quorum(&self) -> Result<QuorumView> {
        let timeout = self.inner.config.propose_timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let committed = self.inner.committed.get().map(|l| l.index);
            let reply = if self.is_leader() {
                Some(membership::quorum_view(&self.inner.raft, committed))
            } else if let Some((_, addr)) = self.leader_addr() {
                match self.inner.forwarder.describe_quorum(&addr, left).await {
                    Ok(reply) => Some(reply),
                    Err(e) => {
                        tracing::debug!("describing the quorum failed: {e}");
                        None
                    }
                }
            } else {
                None
            };
            if let Some(QuorumReply::View(view)) = reply {
                return Ok(view);
            }
            if Instant::now() + pause >= deadline {
                return Err(MetaError::NoLeader(timeout));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Adds a voter: first as a learner that catches up, then into the voter set. Must be
    /// called on the leader.
    pub async fn add_voter(&self, id: NodeId, addr: String) -> Result<()> {
        self.ensure_leader()?;
        let raft = &self.inner.raft;
        raft.add_learner(id, BasicNode::new(addr), true)
            .await
            .map_err(|e| self.membership_error(e))?;
        let mut voters = self.metrics().voters;
        voters.insert(id);
        raft.change_membership(voters, false)
            .await
            .map_err(|e| self.membership_error(e))?;
        Ok(())
    }

    /// Removes a voter (it stops receiving the log). Must be called on the leader.
    pub async fn remove_voter(&self, id: NodeId) -> Result<()> {
        self.ensure_leader()?;
        let mut voters = self.metrics().voters;
        if !voters.remove(&id) {
            return Ok(());
        }
        self.inner
            .raft
            .change_membership(voters, false)
            .await
            .map_err(|e| self.membership_error(e))?;
        Ok(())
    }

    fn ensure_leader(&self) -> Result<()> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(MetaError::NotLeader {
                leader: self.leader_id(),
            })
        }
    }

    fn membership_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> MetaError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => MetaError::NotLeader {
                leader: to.leader_id,
            },
            RaftError::Fatal(_) => MetaError::Shutdown,
            e => MetaError::Raft(e.to_string()),
        }
    }

    /// Stops raft and the gRPC server. Idempotent.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(task) = self
            .inner
            .join_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(server) = server else {
            return Ok(());
        };
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft did not shut down cleanly: {e}");
        }
        let _ = server.stop.send(());
        match server.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MetaError::Transport(e)),
            Err(e) => Err(MetaError::Raft(format!("gRPC server task failed: {e}"))),
        }
    }
}

fn into_result(response: MetaResponse) -> Result<MetaResponse> {
    match response {
        MetaResponse::Rejected(e) => Err(MetaError::Rejected(e)),
        other => Ok(other),
    }
}

/// A learner's start: asks the leader to add it (or update its address) until one says done.
/// The leader is whoever this node already knows, a leader named in a refusal, or else each
/// voter in turn.
async fn join_as_learner(
    raft: Raft,
    forwarder: Forwarder,
    voters: Vec<String>,
    change: MembershipChange,
    timeout: Duration,
) {
    let mut pause = Duration::from_millis(50);
    let mut hint: Option<String> = None;
    let mut next_voter = 0usize;
    loop {
        let addr = hint
            .take()
            .or_else(|| membership::leader_hint(&raft.metrics().borrow()).map(|(_, a)| a))
            .or_else(|| {
                let addr = voters.get(next_voter % voters.len().max(1)).cloned();
                next_voter += 1;
                addr
            });
        let Some(addr) = addr else { return };
        match forwarder.change_membership(&addr, &change, timeout).await {
            Ok(MembershipReply::Done) => {
                tracing::info!(?change, "joined the metadata quorum as a learner");
                return;
            }
            Ok(MembershipReply::NotLeader { leader }) => {
                hint = leader.map(|(_, a)| a);
                if hint.is_some() {
                    // Short: the hint is likely right; a pause still bounds a stale-hint loop.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
            Ok(MembershipReply::Busy(e)) => tracing::debug!("joining as a learner: {e}"),
            Ok(MembershipReply::Refused(e)) => tracing::warn!("joining as a learner: {e}"),
            Err(e) => tracing::debug!("joining as a learner: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
