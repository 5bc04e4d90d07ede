//! The HTTP endpoint (warp): `/metrics` (Prometheus), `/healthz` (the process is alive and
//! answering) and `/readyz` (a broker: recovered, metadata loaded, accepting Kafka clients; a
//! controller-only node: a voter that knows the raft leader).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use warp::Filter;

use crate::cluster::Quorum;
use crate::context::Context;

use super::Metrics;

/// A broker's endpoint; serves until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    // Rendering walks partitions and groups under short locks; a scrape every few seconds
    // costs microseconds.
    let metrics = move || ctx.metrics.render(&ctx.registry, &ctx.groups);
    serve_with(
        listener,
        move || ready.load(Ordering::Acquire),
        metrics,
        shutdown,
    )
    .await
}

/// A controller-only node's endpoint: raft metrics only (it has no logs or groups).
pub async fn serve_controller(
    listener: tokio::net::TcpListener,
    quorum: Arc<Quorum>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let ready = {
        let quorum = quorum.clone();
        move || {
            let m = quorum.raft_metrics();
            m.voters.contains(&m.node_id) && m.current_leader.is_some()
        }
    };
    serve_with(
        listener,
        ready,
        move || metrics.render_quorum(&quorum),
        shutdown,
    )
    .await
}

/// `/healthz`, `/readyz` (200 while `ready()`, else 503) and `/metrics` (`metrics()`).
async fn serve_with(
    listener: tokio::net::TcpListener,
    ready: impl Fn() -> bool + Clone + Send + Sync + 'static,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let healthz = warp::path!("healthz").map(|| "ok".to_string());
    let readyz = warp::path!("readyz").map(move || {
        if ready() {
            warp::reply::with_status("ready".to_string(), warp::http::StatusCode::OK)
        } else {
            warp::reply::with_status(
                "starting".to_string(),
                warp::http::StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    });
    let metrics = warp::path!("metrics").map(move || {
        warp::reply::with_header(
            metrics(),
            "content-type",
            "text/plain; version=0.0.4; charset=utf-8",
        )
    });
    let routes = warp::get().and(healthz.or(readyz).or(metrics));
    warp::serve(routes)
        .incoming(listener)
        .graceful(async move {
            let _ = shutdown.changed().await;
        })
        .run()
        .await;
}

pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
