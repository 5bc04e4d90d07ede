//! Brokers talking to each other over a secured inter-broker listener: replication over
//! SASL_SSL with mutual TLS and SCRAM works; a broker whose certificate another CA signed
//! cannot replicate, so it leaves the ISR.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::cluster::{cluster_configs, eventually, start_all};
use common::pki::{ca, leaf, Ca};
use common::{batch, produce, produce_error};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::cluster::broker_conn::Connector;
use spate_broker::cluster::broker_rpc::Call;
use spate_broker::config::BrokerConfig;
use spate_broker::security::scram_bootstrap::BootstrapScram;
use spate_broker::Broker;

fn keystore(dir: &std::path::Path, name: &str, ca: &Ca, serial: u64, hosts: &[String]) -> String {
    let mut sans = vec!["127.0.0.1", "localhost"];
    sans.extend(hosts.iter().map(String::as_str));
    let (cert, key, _) = leaf(ca, name, &sans, serial);
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, format!("{key}{cert}")).unwrap();
    path.display().to_string()
}

/// Three brokers whose only listener is SASL_SSL with required client certificates;
/// `rogue` brokers get a certificate from another CA.
fn configs(
    dirs: &[tempfile::TempDir],
    pki: &std::path::Path,
    rogue: &[usize],
) -> Vec<BrokerConfig> {
    let good = ca("cluster-ca");
    let other = ca("other-ca");
    std::fs::write(pki.join("ca.pem"), &good.pem).unwrap();
    let default_keystore = keystore(pki, "broker", &good, 9, &[]);
    let shared: Vec<(&str, String)> = vec![
        ("ssl.keystore.location", default_keystore),
        ("listeners", "SECURE://127.0.0.1:0".into()),
        ("listener.security.protocol.map", "SECURE:SASL_SSL".into()),
        ("inter.broker.listener.name", "SECURE".into()),
        ("ssl.truststore.location", pki.join("ca.pem").display().to_string()),
        ("listener.name.secure.ssl.client.auth", "required".into()),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512".into()),
        (
            "listener.name.secure.scram-sha-512.sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#.into(),
        ),
        ("replica.lag.time.max.ms", "1500".into()),
        ("min.insync.replicas", "1".into()),
    ];
    let mut configs = cluster_configs(dirs, &shared);
    // The raft addresses (random 127.x.y.z hosts) are names the certificates must carry too.
    let hosts: Vec<String> = configs[0]
        .quorum
        .voters
        .values()
        .filter_map(|a| a.rsplit_once(':').map(|(h, _)| h.to_string()))
        .collect();
    for (i, c) in configs.iter_mut().enumerate() {
        let issuer = if rogue.contains(&i) { &other } else { &good };
        let ks = keystore(pki, &format!("broker-{i}"), issuer, 10 + i as u64, &hosts);
        let mut raw = c.raw.clone();
        raw.insert("ssl.keystore.location".into(), ks);
        *c = BrokerConfig::from_raw(raw).unwrap();
    }
    configs[0].bootstrap_scram =
        vec![BootstrapScram::parse("SCRAM-SHA-512=[name=broker,password=broker-secret]").unwrap()];
    configs
}

fn endpoint(b: &Broker) -> (String, u16) {
    let a = b.listeners[0].1;
    (a.ip().to_string(), a.port())
}

async fn request<
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
>(
    connector: &Connector,
    to: &Broker,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    Call::new(api, version, "inter-broker-test")
        .once(connector, &endpoint(to), req)
        .await
        .unwrap()
}

async fn isr(connector: &Connector, b: &Broker) -> Vec<i32> {
    let md: MetadataResponse = request(
        connector,
        b,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_static_str("replicated"))))])),
    )
    .await;
    let mut isr: Vec<i32> = md.topics[0].partitions[0]
        .isr_nodes
        .iter()
        .map(|b| b.0)
        .collect();
    isr.sort_unstable();
    isr
}

async fn create(connector: &Connector, b: &Broker) {
    let created: CreateTopicsResponse = request(
        connector,
        b,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("replicated")))
                .with_num_partitions(1)
                .with_replication_factor(3)]),
    )
    .await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );
}

#[tokio::test]
async fn replication_runs_over_sasl_ssl_with_mutual_tls() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let pki = tempfile::tempdir().unwrap();
    let configs = configs(&dirs, pki.path(), &[]);
    let connector = Connector::from_config(&configs[0]).unwrap();
    let brokers: Vec<Broker> = start_all(&configs).await.into_iter().flatten().collect();
    create(&connector, &brokers[0]).await;
    // acks=all needs both followers to have fetched the batch over the secured listener.
    let md: MetadataResponse = request(
        &connector,
        &brokers[0],
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    let leader = md.topics[0].partitions[0].leader_id.0 as usize;
    eventually(Duration::from_secs(15), "an acks=all produce", || async {
        let r: ProduceResponse = request(
            &connector,
            &brokers[leader - 1],
            ApiKey::Produce,
            9,
            &produce("replicated", batch(&["over-sasl-ssl"])),
        )
        .await;
        produce_error(&r) == 0
    })
    .await;
    assert_eq!(isr(&connector, &brokers[0]).await, [1, 2, 3]);
}

#[tokio::test]
async fn a_broker_with_a_foreign_certificate_cannot_replicate() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let pki = tempfile::tempdir().unwrap();
    let configs = configs(&dirs, pki.path(), &[2]);
    let connector = Connector::from_config(&configs[0]).unwrap();
    let brokers: Vec<Broker> = start_all(&configs).await.into_iter().flatten().collect();
    create(&connector, &brokers[0]).await;
    eventually(
        Duration::from_secs(15),
        "broker 3 out of the ISR",
        || async {
            let isr = isr(&connector, &brokers[0]).await;
            !isr.contains(&3) && isr.len() == 2
        },
    )
    .await;
}

/// `CONTROLLER:SSL`: the raft gRPC between nodes is mutual TLS with the same certificates.
fn with_raft_tls(configs: Vec<BrokerConfig>) -> Vec<BrokerConfig> {
    configs
        .into_iter()
        .map(|c| {
            let mut raw = c.raw.clone();
            raw.insert(
                "listener.security.protocol.map".into(),
                "SECURE:SASL_SSL,CONTROLLER:SSL".into(),
            );
            let mut out = BrokerConfig::from_raw(raw).unwrap();
            out.bootstrap_scram = c.bootstrap_scram;
            assert!(out.quorum.tls.is_some());
            out
        })
        .collect()
}

#[tokio::test]
async fn the_metadata_quorum_runs_mutual_tls_and_refuses_a_foreign_certificate() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let pki = tempfile::tempdir().unwrap();
    let configs = with_raft_tls(configs(&dirs, pki.path(), &[2]));
    let connector = Connector::from_config(&configs[0]).unwrap();
    let rogue = tokio::spawn(Broker::start(configs[2].clone()));
    let (one, two) = tokio::join!(
        Broker::start(configs[0].clone()),
        Broker::start(configs[1].clone()),
    );
    // Brokers 1 and 2 form the quorum over TLS; broker 3's certificate is refused, so it
    // hears no leader and never registers (it would give up starting after two minutes).
    let (one, _two) = (one.unwrap(), two.unwrap());
    let registered = || async {
        let md: MetadataResponse = request(
            &connector,
            &one,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
        let mut ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort_unstable();
        ids
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until && !rogue.is_finished() {
        let ids = registered().await;
        assert_eq!(ids, [1, 2], "a node with a foreign certificate joined");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if rogue.is_finished() {
        assert!(rogue.await.unwrap().is_err(), "the foreign node started");
    } else {
        rogue.abort();
    }
}
