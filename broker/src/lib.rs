//! Spate broker: a Kafka wire-compatible event streaming broker.
//!
//! # Layout
//! - `protocol/`  — sans-io wire layer: framing, request decoding, response encoding, the
//!   advertised API versions. Bytes in, bytes out; no sockets.
//! - `handlers/`  — one file per Kafka API, routed by `handlers::dispatch`.
//! - `server/`    — the TCP accept loop, per-connection request loop, background log work.
//! - `cluster/`   — topics, partitions, topic configs and names, mirrored from the metadata
//!   quorum (`quorum.rs`, `applier.rs`; a single node is the quorum's one voter); every
//!   metadata change goes through `admin/`.
//! - `replication/` — replication between brokers: follower fetchers, the leader's side of
//!   their fetches, ISR upkeep, step-down without a session, the wait for in-sync replicas,
//!   throttles.
//! - `controller/` — the controller's duties (fencing, preferred leaders, reassignments) and
//!   [`Controller`], a controller-only node (`process.roles=controller`) with no Kafka
//!   listener; [`Broker`] below is every other node.
//! - `producer/`  — per-partition idempotent sequence state and open transactions.
//! - `coordinator/` — the runtime the group and transaction coordinators share: which
//!   partitions of their topic this broker owns at which leader epoch, loading them by
//!   replaying the log, and appending a change then waiting for the in-sync replicas; the
//!   field encodings of their records.
//! - `group/`     — consumer groups (classic protocol in `classic/`, KIP-848) and committed
//!   offsets, durable in `__consumer_offsets`; the coordinator in `group/coordinator/`, one
//!   file per job (membership, offsets, transactional offsets, admin, the replayed store).
//! - `txn/`       — the transaction coordinator, durable in `__transaction_state`, and
//!   transaction markers.
//! - `observability/` — Prometheus metrics, the HTTP health endpoints (warp), the log and
//!   trace subscriber; `trace_context.rs` carries W3C trace context between brokers.
//! - `security/` — TLS on SSL listeners (rustls, reloaded when files change) and the principal
//!   of a connection (the client certificate's DN, mapped as Kafka maps it).
//! - `config.rs`  — broker settings: defaults < file < environment < CLI.
//! - the log itself (segments, indexes, recovery, retention, compaction) is the `spate-log`
//!   crate in `broker/log`.

pub mod cluster;
pub mod config;
pub mod context;
pub mod controller;
pub mod coordinator;
pub mod group;
pub mod handlers;
pub mod listeners;
pub mod observability;
pub mod producer;
pub mod protocol;
pub mod replication;
pub mod security;
pub mod server;
#[doc(hidden)]
pub mod testing;
pub mod trace_context;
pub mod txn;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::{Quorum, Registry};
use crate::config::BrokerConfig;
use crate::context::Context;
use crate::group::GroupCoordinator;

pub use crate::controller::Controller;

/// How long shutdown waits for background tasks before aborting them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a controlled shutdown waits for leaderships to move away.
const CONTROLLED_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for background tasks to end after the shutdown signal, at most SHUTDOWN_GRACE, then
/// aborts the rest: a task stuck on a dead peer (an election, a fetch) must not hold the exit
/// for long; what follows (closing logs, the metadata node) is clean either way.
pub(crate) async fn drain(tasks: &mut tokio::task::JoinSet<()>) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            "tasks still running {SHUTDOWN_GRACE:?} after shutdown: aborting them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Binds every listener, the inter-broker one first.
async fn bind_listeners(
    config: &BrokerConfig,
) -> anyhow::Result<Vec<(listeners::Listener, TcpListener)>> {
    let ls = &config.listeners;
    let order =
        std::iter::once(ls.inter_broker).chain((0..ls.all.len()).filter(|i| *i != ls.inter_broker));
    let mut out = Vec::with_capacity(ls.all.len());
    for i in order {
        let l = ls.all[i].clone();
        let socket = TcpListener::bind(l.bind)
            .await
            .map_err(|e| anyhow::anyhow!("binding listener {} at {}: {e}", l.name, l.bind))?;
        out.push((l, socket));
    }
    Ok(out)
}

/// What each bound listener tells clients, in binding order.
fn advertised(
    sockets: &[(listeners::Listener, TcpListener)],
) -> anyhow::Result<Vec<spate_meta::ListenerEndpoint>> {
    sockets
        .iter()
        .map(|(l, s)| {
            let (host, port) = l.advertised_endpoint(s.local_addr()?);
            Ok(spate_meta::ListenerEndpoint {
                name: l.name.clone(),
                host,
                port,
            })
        })
        .collect()
}

/// A started broker: bound, recovered, serving until `shutdown` is triggered.
pub struct Broker {
    /// The inter-broker listener's bound address.
    pub local_addr: std::net::SocketAddr,
    /// Every listener's name and bound address, the inter-broker one first.
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    registry: Arc<Registry>,
}

impl Broker {
    /// Opens the data directory (recovering every log) and starts listening.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Self> {
        if config.controller_only() {
            anyhow::bail!("process.roles=controller is no broker: start a controller::Controller");
        }
        for key in &config.retired {
            tracing::warn!("setting {key} no longer does anything and is ignored");
        }
        let config = Arc::new(config);
        // Certificates before anything else: a broker that cannot serve TLS does not start.
        let mut tls = std::collections::BTreeMap::new();
        for (name, settings) in &config.tls {
            let l = security::tls::TlsListener::load(settings.clone())
                .map_err(|e| anyhow::anyhow!("listener {name}: {e}"))?;
            tls.insert(name.clone(), Arc::new(l));
        }
        let legacy = cluster::migrate::read(&config.data_dir)?;
        // Listeners first: the broker registers the addresses it serves on.
        let sockets = bind_listeners(&config).await?;
        let cluster_id = legacy.as_ref().map(|l| l.cluster_id.clone());
        let quorum =
            Quorum::start(&config, &config.quorum, advertised(&sockets)?, cluster_id).await?;
        let registry = {
            let config = config.clone();
            Arc::new(tokio::task::spawn_blocking(move || Registry::open(config, quorum)).await??)
        };
        if let Some(legacy) = legacy {
            cluster::migrate::migrate(&registry, legacy).await?;
        }
        registry.sync().await;
        registry
            .bootstrap_scram(&config.bootstrap_scram)
            .await
            .map_err(|e| anyhow::anyhow!("storing --add-scram credentials: {}", e.message))?;
        let local_addr = sockets[0].1.local_addr()?;
        let advertised = advertised(&sockets)?;
        let bound = sockets
            .iter()
            .map(|(l, s)| Ok((l.name.clone(), s.local_addr()?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let groups = {
            let (registry, group_config) = (registry.clone(), config.group.clone());
            Arc::new(
                tokio::task::spawn_blocking(move || GroupCoordinator::open(registry, group_config))
                    .await?,
            )
        };
        let txn = {
            let (registry, groups, txn_config) =
                (registry.clone(), groups.clone(), config.txn.clone());
            Arc::new(
                tokio::task::spawn_blocking(move || {
                    txn::TxnCoordinator::open(registry, groups, txn_config)
                })
                .await?,
            )
        };
        let metrics = Arc::new(observability::Metrics::new());
        let ctx = Arc::new(Context {
            registry: registry.clone(),
            config: config.clone(),
            groups: groups.clone(),
            txn: txn.clone(),
            metrics: metrics.clone(),
            ack_waits: Default::default(),
            advertised,
            authz: security::authz::Authz::new(
                config.authorizer.clone(),
                registry.clone(),
                metrics,
            ),
            quotas: security::quotas::Quotas::new(registry.clone()),
        });
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let ready = Arc::new(AtomicBool::new(false));
        let http_addr = match config.http_listen {
            None => None,
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(l) => {
                    let bound = l.local_addr()?;
                    tasks.spawn(observability::http::serve(
                        l,
                        ctx.clone(),
                        ready.clone(),
                        rx.clone(),
                    ));
                    Some(bound)
                }
                Err(e) if config.http_listen_explicit => {
                    return Err(anyhow::anyhow!("binding http.listeners {addr}: {e}"))
                }
                // The default port may be taken by another broker on this host; Kafka clients
                // are still served, and the log says where metrics are not.
                Err(e) => {
                    tracing::warn!("HTTP endpoint disabled: binding the default {addr}: {e}");
                    None
                }
            },
        };
        tasks.spawn(replication::run(ctx.clone(), rx.clone()));
        for (l, socket) in sockets {
            let listener_tls = tls.get(&l.name).cloned();
            let listener_sasl = config.sasl.get(&l.name).cloned();
            tasks.spawn(server::listener::run(
                ctx.clone(),
                l.name.into(),
                socket,
                listener_tls,
                listener_sasl,
                rx.clone(),
            ));
        }
        tasks.spawn(security::tls::watch(
            tls.into_values().collect(),
            config.ssl_reload_interval,
            rx.clone(),
        ));
        tasks.spawn(server::maintenance::run(registry.clone(), rx.clone()));
        tasks.spawn(cluster::applier::run(registry.clone(), rx.clone()));
        tasks.spawn(controller::liveness::run(
            registry.quorum().clone(),
            config.clone(),
            rx.clone(),
        ));
        tasks.spawn(server::txn_timers::run(txn, rx.clone()));
        tasks.spawn(server::group_timers::run(groups, rx));
        // Logs recovered, metadata and groups loaded, listener bound: clients can be served.
        ready.store(true, Ordering::Release);
        Ok(Self {
            local_addr,
            listeners: bound,
            http_addr,
            shutdown,
            tasks,
            registry,
        })
    }

    /// With `controlled.shutdown.enable` (what SIGTERM does): first moves this broker's
    /// leaderships to other in-sync replicas (`SetShuttingDown`, waiting up to 10 s until it
    /// leads nothing), then shuts down. A broker with no other brokers to hand over to just
    /// shuts down.
    pub async fn controlled_shutdown(self) {
        let q = self.registry.quorum().clone();
        let alone = q.metadata().brokers.keys().all(|b| *b == q.broker_id);
        if self.registry.config.controlled_shutdown_enable && !alone {
            controller::liveness::controlled_shutdown(&q, CONTROLLED_SHUTDOWN_TIMEOUT).await;
        }
        self.shutdown().await;
    }

    /// Stops accepting, ends connections, then flushes and closes every log. To other brokers
    /// this is a crash: they fence this broker once its heartbeats stop (see
    /// `controlled_shutdown`).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        drain(&mut self.tasks).await;
        let registry = self.registry.clone();
        let q = registry.quorum().clone();
        let _ = tokio::task::spawn_blocking(move || registry.close()).await;
        q.shutdown().await;
    }
}
