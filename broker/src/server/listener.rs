//! The accept loop.
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection;
use crate::context::Context;
use crate::security::sasl::SaslSettings;
use crate::security::tls::TlsListener;

/// Accepts connections on the listener called `name` until `shutdown` turns true, then waits
/// for open connections to end. `tls` is set on SSL and SASL_SSL listeners, `sasl` on SASL
/// ones; each connection does its own
/// handshake, so a slow client never holds up the accept loop.
pub async fn run(
    ctx: Arc<Context>,
    name: Arc<str>,
    listener: TcpListener,
    tls: Option<Arc<TlsListener>>,
    sasl: Option<Arc<SaslSettings>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection::serve(ctx.clone(), stream, peer, name.clone(), tls.clone(), sasl.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the rest.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
}
