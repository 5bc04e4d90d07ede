//! A controller-only node (Kafka's `process.roles=controller`).
//!
//! It is a voter of the metadata quorum and, while it is the raft leader, the active
//! controller: it fences brokers whose heartbeats stop, moves leaderships, runs preferred
//! leader elections and finishes reassignments (`liveness.rs`); elections, ISR changes
//! and admin requests arrive as proposals forwarded by brokers. It serves the quorum's gRPC
//! (`controller.listener`) and the HTTP health and metrics endpoint, but no Kafka listener,
//! and it never registers as a broker: no partitions, no groups, no transactions, no logs
//! beyond the metadata log in `<log.dirs>/__meta`.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::liveness;
use crate::cluster::Quorum;
use crate::config::BrokerConfig;
use crate::observability::{http, Metrics};

/// A started controller-only node, serving until `shutdown`.
pub struct Controller {
    /// Where the quorum's gRPC server listens.
    pub raft_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub http_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    quorum: Arc<Quorum>,
}

impl Controller {
    /// Joins the quorum (returns once a raft leader is known, so start the voters together)
    /// and starts the controller duties and the HTTP endpoint.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Self> {
        if !config.controller_only() {
            anyhow::bail!("a controller-only node needs process.roles=controller");
        }
        let qc = config.quorum.clone();
        tracing::info!(
            listeners = %config.listen,
            "process.roles=controller: no Kafka listener is bound, `listeners` is ignored"
        );
        let config = Arc::new(config);
        // The advertised host only matters to a broker-only node.
        let quorum = Quorum::open(&config, &qc, "", None).await?;
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let http_addr = match config.http_listen {
            None => None,
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(l) => {
                    let bound = l.local_addr()?;
                    let metrics = Arc::new(Metrics::new());
                    tasks.spawn(http::serve_controller(
                        l,
                        quorum.clone(),
                        metrics,
                        rx.clone(),
                    ));
                    Some(bound)
                }
                Err(e) if config.http_listen_explicit => {
                    quorum.shutdown().await;
                    anyhow::bail!("binding http.listeners {addr}: {e}")
                }
                Err(e) => {
                    tracing::warn!("HTTP endpoint disabled: binding the default {addr}: {e}");
                    None
                }
            },
        };
        tasks.spawn(liveness::run(quorum.clone(), config.clone(), rx));
        tracing::info!(node = config.node_id, raft = %quorum.raft_addr(), "controller-only node joined the metadata quorum");
        Ok(Self {
            raft_addr: quorum.raft_addr(),
            http_addr,
            shutdown,
            tasks,
            quorum,
        })
    }

    /// Is this node the active controller (the raft leader)?
    pub fn is_active(&self) -> bool {
        self.quorum.is_controller()
    }

    /// Stops the controller duties, the HTTP endpoint and the metadata node. To the other
    /// voters this is a lost voter: if it led, they elect a new leader.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        crate::drain(&mut self.tasks).await;
        self.quorum.shutdown().await;
    }
}
