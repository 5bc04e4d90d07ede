//! The broker's HTTP endpoint (warp): `/metrics` (Prometheus), `/healthz` (the process is
//! alive and answering) and `/readyz` (recovered, metadata loaded, accepting Kafka clients).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use warp::Filter;

use crate::context::Context;

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let healthz = warp::path!("healthz").map(|| "ok".to_string());
    let readyz = {
        let ready = ready.clone();
        warp::path!("readyz").map(move || {
            if ready.load(Ordering::Acquire) {
                warp::reply::with_status("ready".to_string(), warp::http::StatusCode::OK)
            } else {
                warp::reply::with_status(
                    "starting".to_string(),
                    warp::http::StatusCode::SERVICE_UNAVAILABLE,
                )
            }
        })
    };
    let metrics = warp::path!("metrics").map(move || {
        // Rendering walks partitions and groups under short locks; a scrape every few
        // seconds costs microseconds.
        let body = ctx.metrics.render(&ctx.registry, &ctx.groups);
        warp::reply::with_header(
            body,
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
