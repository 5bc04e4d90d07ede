//! A single node as the coordinators' unit tests run it: the one voter of its own metadata
//! quorum in a temporary directory, registered and unfenced, with its registry mirroring the
//! metadata. Topics are created through the admin facade, so this node leads their
//! partitions (leader epoch 0, ISR = itself). Stopping it and starting it again on the same
//! directory is a broker restart: the metadata and every log are read back.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use spate_meta::ListenerEndpoint;

use crate::cluster::admin::NewTopic;
use crate::cluster::{Quorum, Registry};
use crate::config::BrokerConfig;

/// Starts the node in `dir` (a new one, or the one stopped there before).
pub(crate) async fn start(dir: &Path) -> Arc<Registry> {
    let cli = vec![("log.dirs".to_string(), dir.display().to_string())];
    let config = Arc::new(BrokerConfig::load(None, vec![], cli).expect("test config"));
    // Registered under the inter-broker listener's address, as `Broker::start` does; nothing
    // is bound there because no client connects.
    let l = config.listeners.inter_broker();
    let (host, port) = l.advertised_endpoint(l.bind);
    let listeners = vec![ListenerEndpoint {
        name: l.name.clone(),
        host,
        port,
    }];
    let quorum = Quorum::start(&config, &config.quorum, listeners, None)
        .await
        .expect("starting a one-voter metadata quorum");
    let registry = Arc::new(Registry::open(config, quorum).expect("opening the registry"));
    registry.sync().await;
    registry
}

/// Creates a client topic of `partitions` partitions, one replica each.
pub(crate) async fn create_topic(registry: &Arc<Registry>, name: &str, partitions: i32) {
    let topic = NewTopic {
        name,
        partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
        assignment: None,
    };
    registry
        .admin_create_topic(topic, false)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    assert_led(registry, name, partitions);
}

/// Creates a broker-owned topic as FindCoordinator does (one replica), unless it exists.
pub(crate) async fn ensure_internal_topic(
    registry: &Arc<Registry>,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
) {
    let existed = registry.topic(name).is_some();
    registry
        .admin_ensure_internal_topic(name, partitions, 1, configs)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    if !existed {
        assert_led(registry, name, partitions);
    }
}

/// A new topic's partitions are all here, led by this node in leader epoch 0 with itself
/// as the only replica (so nothing waits for followers).
fn assert_led(registry: &Registry, name: &str, partitions: i32) {
    let topic = registry
        .topic(name)
        .unwrap_or_else(|| panic!("{name} is not in the registry"));
    let led: Vec<(i32, i32, (usize, usize))> = topic
        .partitions
        .iter()
        .filter(|p| p.is_leader())
        .map(|p| (p.index, p.leader_epoch(), p.isr_counts()))
        .collect();
    let expected: Vec<(i32, i32, (usize, usize))> =
        (0..partitions).map(|i| (i, 0, (1, 1))).collect();
    assert_eq!(
        led, expected,
        "{name}: led partitions, epochs and (ISR, replicas)"
    );
}

/// Stops the node as a broker shuts down: logs flushed and closed, then the quorum.
pub(crate) async fn stop(registry: Arc<Registry>) {
    registry.close();
    registry.quorum().shutdown().await;
}
