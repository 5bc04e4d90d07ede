//! A cluster of in-process brokers, all voters of one metadata quorum.
use std::net::SocketAddr;
use std::time::Duration;

use spate_broker::config::BrokerConfig;
use spate_broker::Broker;
use tokio::time::Instant;

/// A loopback host of its own for this cluster's raft addresses (all of 127/8 is loopback on
/// Linux): ports are picked free and released before the brokers bind them, so another test
/// cluster could grab the same port meanwhile; on a different host the two never talk.
fn cluster_host() -> String {
    let id = uuid::Uuid::new_v4().as_u128();
    format!(
        "127.{}.{}.{}",
        (id >> 8) as u8,
        (id >> 16) as u8,
        1 + (id as u8) % 250
    )
}

fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind(format!("{host}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `controller.quorum.voters` for voters 1..=n on free ports of a host of their own.
pub fn quorum_voters(n: usize) -> String {
    let host = cluster_host();
    let voters: Vec<String> = (1..=n)
        .map(|id| format!("{id}@{host}:{}", free_port(&host)))
        .collect();
    voters.join(",")
}

/// One config per data dir: node ids 1..=n, all voters, Kafka listeners on free ports, no
/// HTTP endpoint, plus `extra` settings for every broker.
pub fn cluster_configs(dirs: &[tempfile::TempDir], extra: &[(&str, String)]) -> Vec<BrokerConfig> {
    let voters = quorum_voters(dirs.len());
    dirs.iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut cli: Vec<(String, String)> = [
                ("node.id", (i + 1).to_string()),
                ("listeners", "127.0.0.1:0".into()),
                ("log.dirs", dir.path().display().to_string()),
                ("http.listeners", String::new()),
                ("controller.quorum.voters", voters.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            cli.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            BrokerConfig::load(None, vec![], cli).unwrap()
        })
        .collect()
}

/// Starts every broker at once (the voters must form the quorum together).
pub async fn start_all(configs: &[BrokerConfig]) -> Vec<Option<Broker>> {
    let starts = configs.iter().cloned().map(Broker::start);
    futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|b| Some(b.unwrap()))
        .collect()
}

/// The Kafka listener of broker `id` (ids start at 1).
pub fn addr(brokers: &[Option<Broker>], id: i32) -> SocketAddr {
    brokers[(id - 1) as usize].as_ref().unwrap().local_addr
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
