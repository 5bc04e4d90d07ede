//! A TCP forwarder from the bridge address to the API server, for control planes that
//! listen on loopback only: pods cannot reach the root namespace's 127.0.0.1, but they can
//! reach the bridge. TLS passes through untouched, so pods verify the API server's own
//! certificate; they address it as `kubernetes.default.svc` (a name its certificate
//! carries, mapped to the bridge address in every pod's hosts file).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Listens on `listen` and forwards every connection to `upstream`. Returns an error if
/// `listen` cannot be bound (for instance because the API server already listens on all
/// addresses, in which case no proxy is needed).
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

pub async fn serve(listener: TcpListener, upstream: String) {
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "api proxy accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::warn!(%peer, %upstream, error = %e, "api proxy connect"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_bytes_both_ways() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                let mut buf = [0u8; 5];
                if s.read_exact(&mut buf).await.is_ok() {
                    let _ = s.write_all(&buf).await;
                }
            }
        });
        let proxy = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        tokio::spawn(serve(proxy, echo_addr.to_string()));
        let mut c = TcpStream::connect(proxy_addr).await.expect("connect");
        c.write_all(b"hello").await.expect("write");
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello");
    }
}
