//! This broker's seat in the metadata quorum (`spate-meta`).
//!
//! Without `controller.quorum.voters` a node is the one voter of its own quorum (Kafka's
//! single combined KRaft node): everything below works the same for one node as for many.
//! When `controller.quorum.voters` is set, a broker whose id is one of the voters is also a
//! voter of the openraft metadata quorum (`process.roles=broker,controller`); any other broker
//! is broker-only (`process.roles=broker`): its metadata node joins as a raft learner, asking
//! the leader to add it, and then receives the same metadata log without voting, so everything
//! below works the same on both kinds of node. A controller-only node
//! (`process.roles=controller`) is a voter that stops after [`Quorum::open`]: it never
//! registers, so it is no broker anyone places replicas on or sends clients to, and it runs
//! only the controller side (`liveness.rs`) and the quorum's gRPC server.
//!
//! At start a broker registers itself (a new incarnation each process start, so the
//! controller can tell a restart from a retry), waits until its own copy of the metadata has
//! caught up with its registration record, and unfences itself (KRaft's "caught up" rule).
//! From then on topic metadata comes from [`ClusterMetadata`]; admin handlers propose
//! [`MetaRequest`]s here and `applier.rs` turns the committed metadata into local partition
//! logs.
//!
//! From its registration on, the broker heartbeats the active controller (the raft leader)
//! every `broker.heartbeat.interval.ms` with its incarnation and metadata offset; the
//! controller side (fencing, unfencing, preferred leaders) is `liveness.rs`.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use spate_meta::{
    BrokerHeartbeat, ClusterMetadata, ListenerEndpoint, MembershipChange, MetaConfig, MetaError,
    MetaNode, MetaRequest, MetaResponse, QuorumView,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::registry::{new_cluster_id, AdminError};
use super::session::ControllerSession;
use crate::config::{BrokerConfig, ProcessRoles, QuorumConfig};
use crate::replication::throttle::Throttles;

/// Why this broker could not take its seat in the metadata quorum.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("a broker needs a listener")]
    NoListener,
    #[error("binding the metadata quorum's listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("metadata quorum: {0}")]
    Meta(#[from] MetaError),
    #[error("registering broker {broker}: {reason}")]
    Register { broker: i32, reason: String },
    #[error("broker {0} did not catch up with the metadata log")]
    NotCaughtUp(i32),
    #[error("unfencing broker {broker}: {source}")]
    Unfence { broker: i32, source: MetaError },
    #[error("controller.listener {bound} binds every interface and the advertised host is {host}: set advertised.listeners so that the metadata leader can reach this broker-only node")]
    UnreachableLearner { bound: SocketAddr, host: String },
    #[error("the metadata quorum's TLS: {0}")]
    Tls(String),
}

/// How long start-up waits for a quorum (all voters are usually started together).
const FORM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an admin request waits for this node to apply what the leader committed.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Producer ids asked for at a time.
const PRODUCER_ID_BLOCK: i32 = 1000;

pub struct Quorum {
    node: MetaNode,
    /// This node's id (raft ids are node ids). A controller-only node registers no broker
    /// under it.
    pub broker_id: i32,
    /// Random per process start.
    pub incarnation: Uuid,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// The current producer id block: (next, end).
    producer_ids: Mutex<(i64, i64)>,
    /// The heartbeat task, from registration until shutdown.
    heartbeat_task: Mutex<Option<JoinHandle<()>>>,
    /// This broker's session with the controller, as it can tell from its heartbeats.
    session: Arc<ControllerSession>,
    /// Set while the session is lapsed and this broker had to step down from leading (its
    /// followers are silent too): it is cut off from the cluster, not just from a
    /// controller quorum that is down.
    cut_off: AtomicBool,
    /// Replication throttle buckets (`throttle.rs`); only replication between brokers uses them.
    pub throttles: Throttles,
}

impl Quorum {
    /// A broker's seat: [`Quorum::open`], then [`Quorum::register`] with its advertised
    /// listeners (the inter-broker one first).
    pub async fn start(
        config: &BrokerConfig,
        qc: &QuorumConfig,
        listeners: Vec<ListenerEndpoint>,
        cluster_id: Option<String>,
    ) -> Result<Arc<Self>, QuorumError> {
        let host = listeners
            .first()
            .map(|l| l.host.clone())
            .ok_or(QuorumError::NoListener)?;
        let quorum = Self::open(config, qc, &host, cluster_id).await?;
        if let Err(e) = quorum.register(config, qc, listeners).await {
            quorum.shutdown().await;
            return Err(e);
        }
        Ok(quorum)
    }

    /// Starts the metadata node (a learner for a broker-only node, which asks the leader to
    /// add it at an address reachable through `advertised_host`) and waits until a leader is
    /// known. Registers nothing: a controller-only node stops here. `cluster_id` is the id
    /// a new quorum starts with (a fresh one if `None`); an existing quorum keeps its own.
    pub async fn open(
        config: &BrokerConfig,
        qc: &QuorumConfig,
        advertised_host: &str,
        cluster_id: Option<String>,
    ) -> Result<Arc<Self>, QuorumError> {
        let node_id = config.node_id;
        let listener =
            TcpListener::bind(qc.listener)
                .await
                .map_err(|source| QuorumError::Bind {
                    addr: qc.listener,
                    source,
                })?;
        let mut voters = qc.voters.clone();
        if qc.solo {
            // The lone voter's address is whatever it bound; nobody else dials it.
            voters.insert(node_id as u64, listener.local_addr()?.to_string());
        }
        let mut meta = MetaConfig::new(
            node_id as u64,
            qc.listener,
            config.data_dir.join("__meta"),
            voters,
        );
        if let Some(tls) = &qc.tls {
            let pem = tls
                .pem_material()
                .map_err(|e| QuorumError::Tls(e.to_string()))?;
            let ca_pem = pem.trust.ok_or_else(|| {
                QuorumError::Tls(
                    "CONTROLLER:SSL needs a truststore (ssl.truststore.location) to check peers"
                        .into(),
                )
            })?;
            meta.tls = Some(Arc::new(spate_meta::network::RaftTls {
                ca_pem,
                cert_pem: pem.chain,
                key_pem: pem.key,
            }));
        }
        // Only used by the bootstrapping (lowest id) voter, once.
        meta.cluster_id = cluster_id.unwrap_or_else(new_cluster_id);
        // openraft waits its leader lease (= election_timeout_max) plus a random election
        // timeout (min..max) after the last heartbeat, so a voter elects after 1.5-2x the
        // configured timeout: about Kafka's fetch timeout (2 s) at the 1 s default.
        meta.election_timeout_min = qc.election_timeout / 2;
        meta.election_timeout_max = qc.election_timeout;
        // Several heartbeats per election timeout, so one lost message starts no election.
        meta.heartbeat_interval = meta.heartbeat_interval.min(qc.election_timeout / 4);
        if qc.roles == ProcessRoles::Broker {
            meta.learner = true;
            meta.advertised_addr = Some(learner_addr(advertised_host, listener.local_addr()?)?);
        }
        let node = MetaNode::start_with_listener(meta, listener).await?;
        if let Err(e) = node.wait_for_leader(FORM_TIMEOUT).await {
            let _ = node.shutdown().await;
            return Err(e.into());
        }
        Ok(Arc::new(Self {
            metadata: node.metadata(),
            node,
            broker_id: node_id,
            incarnation: Uuid::new_v4(),
            producer_ids: Mutex::new((0, 0)),
            heartbeat_task: Mutex::new(None),
            session: Arc::new(ControllerSession::new(
                Duration::from_millis(config.broker_session_timeout_ms),
                Instant::now(),
            )),
            cut_off: AtomicBool::new(false),
            throttles: Throttles::default(),
        }))
    }

    /// Registers this broker with its advertised listeners (the inter-broker one first, also
    /// its `host:port`), heartbeats the controller from then on, and unfences itself once
    /// caught up.
    pub async fn register(
        &self,
        config: &BrokerConfig,
        qc: &QuorumConfig,
        listeners: Vec<ListenerEndpoint>,
    ) -> Result<(), QuorumError> {
        let broker_id = self.broker_id;
        let (host, port) = listeners
            .first()
            .map(|l| (l.host.clone(), l.port))
            .ok_or(QuorumError::NoListener)?;
        let register = MetaRequest::RegisterBroker {
            id: broker_id,
            incarnation: self.incarnation,
            host,
            port,
            listeners,
            rack: qc.rack.clone(),
        };
        let epoch = match self.node.propose(register).await {
            Ok(MetaResponse::BrokerRegistered { epoch }) => epoch,
            Ok(other) => {
                return Err(QuorumError::Register {
                    broker: broker_id,
                    reason: format!("unexpected {other:?}"),
                })
            }
            Err(e) => {
                return Err(QuorumError::Register {
                    broker: broker_id,
                    reason: e.to_string(),
                })
            }
        };
        // Heartbeat from now on, so that the controller never sees this incarnation silent.
        *self.heartbeat_task.lock() = Some(tokio::spawn(send_heartbeats(
            self.node.clone(),
            self.metadata.clone(),
            self.session.clone(),
            BrokerHeartbeat {
                broker_id,
                incarnation: self.incarnation,
                metadata_offset: 0,
            },
            Duration::from_millis(config.broker_heartbeat_interval_ms),
        )));
        // Caught up: our metadata includes our own registration and the cluster id.
        let caught_up = self
            .wait_for(FORM_TIMEOUT, |md| {
                md.metadata_offset >= epoch && !md.cluster_id.is_empty()
            })
            .await;
        if !caught_up {
            return Err(QuorumError::NotCaughtUp(broker_id));
        }
        match self
            .node
            .propose(MetaRequest::UnfenceBroker { id: broker_id })
            .await
        {
            Ok(_) => {}
            Err(MetaError::Rejected(e)) if e.is_no_op() => {}
            Err(source) => {
                return Err(QuorumError::Unfence {
                    broker: broker_id,
                    source,
                })
            }
        }
        tracing::info!(broker = broker_id, epoch, incarnation = %self.incarnation, "registered with the metadata quorum");
        Ok(())
    }

    /// The latest metadata this node has applied.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// The active controller (raft leader); -1 when unknown. It may be a controller-only node,
    /// which clients cannot reach: Metadata reports `cluster_view::controller_id` instead.
    pub fn controller_id(&self) -> i32 {
        self.node
            .leader_id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(-1)
    }

    /// Where the quorum's gRPC server listens.
    pub fn raft_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    /// Does this broker still have its session with a controller that has a quorum? (Its
    /// own clock, see `session.rs`; a broker that lost it may have been fenced.)
    pub fn session_alive(&self) -> bool {
        self.session.alive(Instant::now())
    }

    /// Is this broker cut off from the rest of the cluster (no controller session, and
    /// followers that stopped fetching from it)? The controller has most likely fenced it,
    /// and fenced brokers are not in anyone's Metadata: it leaves itself out of its own
    /// answers too, so clients go to the brokers that know the current leaders.
    pub fn cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Acquire) && !self.session_alive()
    }

    /// Records whether leaderships had to be given up without a session (`replication.rs`).
    pub fn set_cut_off(&self, cut_off: bool) {
        if self.cut_off.swap(cut_off, Ordering::AcqRel) != cut_off {
            tracing::info!(
                broker = self.broker_id,
                cut_off,
                "cut off from the cluster: {cut_off}"
            );
        }
    }

    /// `broker.session.timeout.ms`
    pub fn session_timeout(&self) -> Duration {
        self.session.timeout()
    }

    /// Is this node the active controller (the raft leader)?
    pub fn is_controller(&self) -> bool {
        self.node.is_leader()
    }

    /// The last heartbeat of every broker received while this node is the controller.
    pub fn heartbeats(&self) -> HashMap<i32, (BrokerHeartbeat, Instant)> {
        self.node.heartbeats()
    }

    /// Raft state of this node's metadata replica, for metrics.
    pub fn raft_metrics(&self) -> spate_meta::MetaMetrics {
        self.node.metrics()
    }

    /// The quorum as its leader sees it (asked of the leader when this node does not lead).
    pub async fn describe_quorum(&self) -> Result<QuorumView, MetaError> {
        self.node.describe_quorum().await
    }

    /// Adds or removes a voter or learner, on the leader.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MetaError> {
        self.node.change_membership(change).await
    }

    /// Proposes `request`; rejections come back with the Kafka error a client understands.
    pub async fn propose(&self, request: MetaRequest) -> Result<MetaResponse, AdminError> {
        self.node.propose(request).await.map_err(admin_error)
    }

    /// Like `propose`, but a rejection meaning "already so" (`RequestError::is_no_op`) is
    /// `Ok(None)`.
    pub async fn propose_idempotent(
        &self,
        request: MetaRequest,
    ) -> Result<Option<MetaResponse>, AdminError> {
        match self.node.propose(request).await {
            Ok(r) => Ok(Some(r)),
            Err(MetaError::Rejected(e)) if e.is_no_op() => Ok(None),
            Err(e) => Err(admin_error(e)),
        }
    }

    /// Waits until this node's metadata satisfies `ready`; false on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&ClusterMetadata) -> bool,
    ) -> bool {
        let mut rx = self.metadata.clone();
        tokio::time::timeout(timeout, rx.wait_for(|md| ready(md)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A cluster-unique producer id, from blocks the quorum hands this broker.
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        {
            let mut ids = self.producer_ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let (start, count) = self.take_producer_ids(PRODUCER_ID_BLOCK).await?;
        let mut ids = self.producer_ids.lock();
        *ids = (start + 1, start + i64::from(count));
        Ok(start)
    }

    /// Moves the cluster's producer ids past `next` (ids handed out before the quorum held
    /// them), taking blocks nobody uses.
    pub async fn skip_producer_ids_below(&self, next: i64) -> Result<(), AdminError> {
        while self.metadata().next_producer_id_block < next {
            let gap = next - self.metadata().next_producer_id_block;
            let count = i32::try_from(gap.min(i64::from(spate_meta::MAX_PRODUCER_ID_BLOCK)))
                .unwrap_or(spate_meta::MAX_PRODUCER_ID_BLOCK);
            self.take_producer_ids(count).await?;
        }
        Ok(())
    }

    /// One block of `count` producer ids from the quorum: (first id, count).
    async fn take_producer_ids(&self, count: i32) -> Result<(i64, i32), AdminError> {
        let request = MetaRequest::AllocateProducerIds {
            broker: self.broker_id,
            count,
        };
        match self.propose(request).await? {
            MetaResponse::ProducerIds { start, count } => Ok((start, count)),
            other => Err(AdminError::new(
                ResponseError::UnknownServerError,
                format!("unexpected answer to AllocateProducerIds: {other:?}"),
            )),
        }
    }

    pub async fn shutdown(&self) {
        if let Some(task) = self.heartbeat_task.lock().take() {
            task.abort();
        }
        if let Err(e) = self.node.shutdown().await {
            tracing::warn!("metadata node did not shut down cleanly: {e}");
        }
    }
}

impl Drop for Quorum {
    /// Dropped without `shutdown` (a failed start): the heartbeat task holds a handle to the
    /// metadata node and would keep it alive.
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat_task.get_mut().take() {
            task.abort();
        }
    }
}

/// The raft address a broker-only node asks the leader to store: its bound address, or, when
/// it binds every interface, its advertised Kafka host with the bound port.
fn learner_addr(advertised_host: &str, bound: SocketAddr) -> Result<String, QuorumError> {
    if !bound.ip().is_unspecified() {
        return Ok(bound.to_string());
    }
    let host = advertised_host
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(QuorumError::UnreachableLearner {
            bound,
            host: advertised_host.to_string(),
        }),
        Ok(ip) => Ok(SocketAddr::new(ip, bound.port()).to_string()),
        Err(_) => Ok(format!("{host}:{}", bound.port())),
    }
}

/// Sends `heartbeat` (with the current metadata offset) to the controller every `interval`
/// until aborted. A heartbeat that finds no controller is simply not delivered; the next one
/// goes out on schedule.
async fn send_heartbeats(
    node: MetaNode,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    session: Arc<ControllerSession>,
    mut heartbeat: BrokerHeartbeat,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut had_session = true;
    loop {
        tick.tick().await;
        heartbeat.metadata_offset = metadata.borrow().metadata_offset;
        session.applied(heartbeat.metadata_offset);
        let timeout = interval.max(Duration::from_millis(100));
        let sent = Instant::now();
        match node.heartbeat(heartbeat, timeout).await {
            Ok(ack) => session.acknowledged(sent, ack, metadata.borrow().metadata_offset),
            Err(e) => tracing::debug!(broker = heartbeat.broker_id, "heartbeat not delivered: {e}"),
        }
        let has_session = session.alive(Instant::now());
        if has_session != had_session {
            if has_session {
                tracing::info!(broker = heartbeat.broker_id, "controller session restored");
            } else {
                tracing::warn!(
                    broker = heartbeat.broker_id,
                    "no heartbeat acknowledged by a controller with a quorum for {:?}: this broker may be fenced",
                    session.timeout()
                );
            }
            had_session = has_session;
        }
    }
}

/// Maps a quorum error to the Kafka error a client understands.
pub fn admin_error(e: MetaError) -> AdminError {
    match e {
        MetaError::Rejected(r) => AdminError::new(
            ResponseError::try_from_code(r.kafka_error_code())
                .unwrap_or(ResponseError::UnknownServerError),
            r.to_string(),
        ),
        MetaError::NoLeader(_) | MetaError::NotLeader { .. } => {
            AdminError::new(ResponseError::RequestTimedOut, e.to_string())
        }
        e => AdminError::new(ResponseError::UnknownServerError, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learner_advertises_a_reachable_address() {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        let addr = |s: &str| s.parse::<SocketAddr>().expect("test address");
        assert_eq!(
            learner_addr("ignored", addr("127.0.0.4:7000")).ok(),
            Some("127.0.0.4:7000".into())
        );
        assert_eq!(
            learner_addr("spate-4.spate-brokers", any(9093)).ok(),
            Some("spate-4.spate-brokers:9093".into())
        );
        assert_eq!(
            learner_addr("::1", any(9093)).ok(),
            Some("[::1]:9093".into())
        );
        assert!(learner_addr("0.0.0.0", any(9093)).is_err());
    }
}
