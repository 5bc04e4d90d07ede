//! Cluster mode: this broker's seat in the metadata quorum (`spate-meta`).
//!
//! When `controller.quorum.voters` is set, every broker is also a voter of the openraft
//! metadata quorum. At start the broker registers itself (a new incarnation each process
//! start, so the controller can tell a restart from a retry), waits until its own copy of the
//! metadata has caught up with its registration record, and unfences itself (KRaft's "caught
//! up" rule). From then on topic metadata comes from [`ClusterMetadata`]; admin handlers
//! propose [`MetaRequest`]s here and `applier.rs` turns the committed metadata into local
//! partition logs.
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use spate_meta::{ClusterMetadata, MetaConfig, MetaError, MetaNode, MetaRequest, MetaResponse};
use tokio::sync::watch;
use uuid::Uuid;

use super::registry::{new_cluster_id, AdminError};
use crate::config::{BrokerConfig, QuorumConfig};

/// How long start-up waits for a quorum (all voters are usually started together).
const FORM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an admin request waits for this node to apply what the leader committed.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Producer ids asked for at a time.
const PRODUCER_ID_BLOCK: i32 = 1000;

pub struct Quorum {
    node: MetaNode,
    pub broker_id: i32,
    /// Random per process start.
    pub incarnation: Uuid,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// The current producer id block: (next, end).
    producer_ids: Mutex<(i64, i64)>,
}

impl Quorum {
    /// Starts the metadata node, registers this broker with `host:port` as its client
    /// endpoint and unfences it once caught up.
    pub async fn start(
        config: &BrokerConfig,
        qc: &QuorumConfig,
        host: String,
        port: u16,
    ) -> anyhow::Result<Arc<Self>> {
        let broker_id = config.node_id;
        let mut meta = MetaConfig::new(
            broker_id as u64,
            qc.listener,
            config.data_dir.join("__meta"),
            qc.voters.clone(),
        );
        // Only used by the bootstrapping (lowest id) voter, once.
        meta.cluster_id = new_cluster_id();
        let node = MetaNode::start(meta).await?;
        node.wait_for_leader(FORM_TIMEOUT).await?;
        let quorum = Arc::new(Self {
            metadata: node.metadata(),
            node,
            broker_id,
            incarnation: Uuid::new_v4(),
            producer_ids: Mutex::new((0, 0)),
        });
        let register = MetaRequest::RegisterBroker {
            id: broker_id,
            incarnation: quorum.incarnation,
            host,
            port,
            rack: qc.rack.clone(),
        };
        let epoch = match quorum.node.propose(register).await {
            Ok(MetaResponse::BrokerRegistered { epoch }) => epoch,
            Ok(other) => anyhow::bail!("registering broker {broker_id}: unexpected {other:?}"),
            Err(e) => anyhow::bail!("registering broker {broker_id}: {e}"),
        };
        // Caught up: our metadata includes our own registration and the cluster id.
        let caught_up = quorum
            .wait_for(FORM_TIMEOUT, |md| {
                md.metadata_offset >= epoch && !md.cluster_id.is_empty()
            })
            .await;
        if !caught_up {
            anyhow::bail!("broker {broker_id} did not catch up with the metadata log");
        }
        match quorum
            .node
            .propose(MetaRequest::UnfenceBroker { id: broker_id })
            .await
        {
            Ok(_) => {}
            Err(MetaError::Rejected(e)) if e.is_no_op() => {}
            Err(e) => anyhow::bail!("unfencing broker {broker_id}: {e}"),
        }
        tracing::info!(broker = broker_id, epoch, incarnation = %quorum.incarnation, "registered with the metadata quorum");
        Ok(quorum)
    }

    /// The latest metadata this node has applied.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// The active controller (raft leader); raft ids are broker ids. -1 when unknown.
    pub fn controller_id(&self) -> i32 {
        self.node
            .leader_id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(-1)
    }

    /// Is this node the active controller (the raft leader)?
    pub fn is_controller(&self) -> bool {
        self.node.is_leader()
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
        let request = MetaRequest::AllocateProducerIds {
            broker: self.broker_id,
            count: PRODUCER_ID_BLOCK,
        };
        match self.propose(request).await? {
            MetaResponse::ProducerIds { start, count } => {
                let mut ids = self.producer_ids.lock();
                *ids = (start + 1, start + i64::from(count));
                Ok(start)
            }
            other => Err(AdminError::new(
                ResponseError::UnknownServerError,
                format!("unexpected answer to AllocateProducerIds: {other:?}"),
            )),
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.node.shutdown().await {
            tracing::warn!("metadata node did not shut down cleanly: {e}");
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
