//! A cluster of in-process brokers, all voters of one metadata quorum.
use spate_broker::config::BrokerConfig;

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

/// One config per data dir: node ids 1..=n, all voters, Kafka listeners on free ports, no
/// HTTP endpoint, plus `extra` settings for every broker.
pub fn cluster_configs(dirs: &[tempfile::TempDir], extra: &[(&str, String)]) -> Vec<BrokerConfig> {
    let host = cluster_host();
    let voters: Vec<String> = (1..=dirs.len())
        .map(|id| format!("{id}@{host}:{}", free_port(&host)))
        .collect();
    let voters = voters.join(",");
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
