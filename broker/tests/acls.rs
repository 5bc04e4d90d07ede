//! Authorization end to end: a broker with Kafka's StandardAuthorizer, a super user (admin)
//! and a user without ACLs (alice), both logging in with SCRAM; ACLs created and deleted
//! through the admin APIs take effect at once, on every broker of a cluster.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{cluster_configs, eventually, start_all};
use common::sasl::scram_login;
use common::{batch, call, produce, produce_error, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_auth::ScramMechanism;
use spate_broker::config::BrokerConfig;
use spate_broker::security::scram_bootstrap::BootstrapScram;
use spate_broker::Broker;
use tokio::net::TcpStream;

const SECURED: [(&str, &str); 6] = [
    ("listeners", "PLAINTEXT://127.0.0.1:0,SASL://127.0.0.1:0"),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT",
    ),
    ("inter.broker.listener.name", "PLAINTEXT"),
    (
        "authorizer.class.name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ),
    // The inter-broker listener is PLAINTEXT: its principal must be a super user.
    ("super.users", "User:admin;User:ANONYMOUS"),
    ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
];

fn users() -> Vec<BootstrapScram> {
    ["admin", "alice"]
        .iter()
        .map(|u| {
            BootstrapScram::parse(&format!("SCRAM-SHA-512=[name={u},password={u}-secret]")).unwrap()
        })
        .collect()
}

fn sasl_addr(b: &Broker) -> SocketAddr {
    b.listeners.iter().find(|(n, _)| n == "SASL").unwrap().1
}

async fn secured_broker(dir: &std::path::Path) -> Broker {
    let cli: Vec<(String, String)> = [
        ("log.dirs", dir.display().to_string()),
        ("http.listeners", String::new()),
        ("offsets.topic.num.partitions", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(SECURED.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    .collect();
    let mut config = BrokerConfig::load(None, vec![], cli).unwrap();
    config.bootstrap_scram = users();
    Broker::start(config).await.unwrap()
}

async fn login(addr: SocketAddr, user: &str) -> TcpStream {
    scram_login(
        addr,
        ScramMechanism::Sha512,
        user,
        &format!("{user}-secret"),
    )
    .await
    .unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn acl(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

// Kafka's codes: resource TOPIC 2, GROUP 3, CLUSTER 4; pattern LITERAL 3, PREFIXED 4;
// operation ALL 2, READ 3, WRITE 4, CREATE 5, DESCRIBE 8; permission DENY 2, ALLOW 3.
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

async fn create_acls(
    conn: &mut TcpStream,
    acls: Vec<create_acls_request::AclCreation>,
) -> Vec<i16> {
    let r: CreateAclsResponse = call(
        conn,
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(acls),
    )
    .await;
    r.results.iter().map(|r| r.error_code).collect()
}

/// DescribeAcls for every ACL (ANY filters).
fn all_acls() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

async fn create_topic(conn: &mut TcpStream, name: &str) -> i16 {
    let r: CreateTopicsResponse = call(
        conn,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
    )
    .await;
    r.topics[0].error_code
}

async fn metadata(conn: &mut TcpStream, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|t| {
            t.iter()
                .map(|n| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(s(n))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(true);
    call(conn, ApiKey::Metadata, 12, &req).await
}

async fn produce_code(conn: &mut TcpStream, topic: &str) -> i16 {
    let r: ProduceResponse = call(conn, ApiKey::Produce, 9, &produce(topic, batch(&["v"]))).await;
    produce_error(&r)
}

#[tokio::test]
async fn a_user_without_acls_sees_and_does_nothing_until_granted() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured_broker(dir.path()).await;
    let addr = sasl_addr(&b);
    let mut admin = login(addr, "admin").await;
    let mut alice = login(addr, "alice").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);

    // Nothing listed, a named topic refused without its id, no produce, no create.
    assert!(metadata(&mut alice, None).await.topics.is_empty());
    let named = metadata(&mut alice, Some(&["orders"])).await;
    assert_eq!(named.topics[0].error_code, 29);
    assert!(named.topics[0].topic_id.is_nil());
    assert_eq!(produce_code(&mut alice, "orders").await, 29);
    assert_eq!(create_topic(&mut alice, "mine").await, 29);
    let acls: DescribeAclsResponse = call(&mut alice, ApiKey::DescribeAcls, 3, &all_acls()).await;
    assert_eq!(acls.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");
    let quorum: DescribeQuorumResponse = call(
        &mut alice,
        ApiKey::DescribeQuorum,
        2,
        &DescribeQuorumRequest::default(),
    )
    .await;
    assert_eq!(quorum.error_code, 31);

    // WRITE on a prefix: alice produces, sees the topic (WRITE implies DESCRIBE), and its
    // authorized operations say so.
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(TOPIC, "ord", PREFIXED, "User:alice", WRITE, ALLOW)]
        )
        .await,
        [0]
    );
    assert_eq!(produce_code(&mut alice, "orders").await, 0);
    let listed = metadata(&mut alice, None).await;
    assert_eq!(listed.topics.len(), 1);
    let ops = listed.topics[0].topic_authorized_operations;
    assert_eq!(ops, (1 << WRITE) | (1 << DESCRIBE));

    // A DENY wins over the ALLOW.
    create_acls(
        &mut admin,
        vec![acl(TOPIC, "orders", LITERAL, "User:*", WRITE, DENY)],
    )
    .await;
    assert_eq!(produce_code(&mut alice, "orders").await, 29);

    // CREATE on the cluster lets alice create any topic.
    create_acls(
        &mut admin,
        vec![acl(
            4,
            "kafka-cluster",
            LITERAL,
            "User:alice",
            CREATE,
            ALLOW,
        )],
    )
    .await;
    assert_eq!(create_topic(&mut alice, "mine").await, 0);

    // Deleting alice's ACLs takes everything back.
    let deleted: DeleteAclsResponse = call(
        &mut admin,
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_resource_name_filter(None)
                .with_host_filter(None)
                .with_principal_filter(Some(s("User:alice")))
                .with_operation(1)
                .with_permission_type(1),
        ]),
    )
    .await;
    assert_eq!(
        deleted.filter_results[0].matching_acls.len(),
        2,
        "{deleted:?}"
    );
    assert!(metadata(&mut alice, None).await.topics.is_empty());
    let described: DescribeAclsResponse =
        call(&mut admin, ApiKey::DescribeAcls, 3, &all_acls()).await;
    assert_eq!(described.error_code, 0);
    assert_eq!(
        described.resources.len(),
        1,
        "only the DENY on orders is left"
    );
}

#[tokio::test]
async fn invalid_acls_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured_broker(dir.path()).await;
    let mut admin = login(sasl_addr(&b), "admin").await;
    let codes = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "t", LITERAL, "User:bob", 3, ALLOW),
            acl(1, "t", LITERAL, "User:bob", 3, ALLOW),
            acl(TOPIC, "t", 2, "User:bob", 3, ALLOW),
            acl(4, "not-the-cluster", LITERAL, "User:bob", 7, ALLOW),
            acl(TOPIC, "t", LITERAL, "bob", 3, ALLOW),
            acl(TOPIC, "t", LITERAL, "User:bob", 0, ALLOW),
        ],
    )
    .await;
    assert_eq!(codes, [0, 42, 42, 42, 42, 42]);
}

#[tokio::test]
async fn without_an_authorizer_acl_apis_say_security_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(b.local_addr).await.unwrap();
    let r: DescribeAclsResponse = call(&mut conn, ApiKey::DescribeAcls, 3, &all_acls()).await;
    assert_eq!(r.error_code, 54, "SECURITY_DISABLED");
    let r = create_acls(
        &mut conn,
        vec![acl(TOPIC, "t", LITERAL, "User:a", 3, ALLOW)],
    )
    .await;
    assert_eq!(r, [54]);
}

#[tokio::test]
async fn acls_created_on_one_broker_apply_on_every_broker_and_survive_restarts() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let extra: Vec<(&str, String)> = SECURED.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let mut configs = cluster_configs(&dirs, &extra);
    configs[0].bootstrap_scram = users();
    let brokers = start_all(&configs).await;
    let sasl = |b: &[Option<Broker>], i: usize| sasl_addr(b[i].as_ref().unwrap());
    eventually(
        Duration::from_secs(5),
        "alice can log in on broker 3",
        || async {
            scram_login(
                sasl(&brokers, 2),
                ScramMechanism::Sha512,
                "alice",
                "alice-secret",
            )
            .await
            .is_ok()
        },
    )
    .await;
    let mut admin = login(sasl(&brokers, 0), "admin").await;
    assert_eq!(create_topic(&mut admin, "shared").await, 0);
    let mut alice = login(sasl(&brokers, 2), "alice").await;
    let named = metadata(&mut alice, Some(&["shared"])).await;
    assert_eq!(named.topics[0].error_code, 29);

    create_acls(
        &mut admin,
        vec![acl(TOPIC, "shared", LITERAL, "User:alice", DESCRIBE, ALLOW)],
    )
    .await;
    let mut alice = login(sasl(&brokers, 2), "alice").await;
    let started = std::time::Instant::now();
    let mut seen = false;
    while started.elapsed() < Duration::from_secs(1) {
        if metadata(&mut alice, Some(&["shared"])).await.topics[0].error_code == 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the ACL applied on broker 3 within a second");

    for b in brokers.into_iter().flatten() {
        b.shutdown().await;
    }
    let brokers = start_all(&configs).await;
    for i in 0..3 {
        eventually(
            Duration::from_secs(10),
            "the ACL after a restart",
            || async {
                let Ok(mut alice) = scram_login(
                    sasl(&brokers, i),
                    ScramMechanism::Sha512,
                    "alice",
                    "alice-secret",
                )
                .await
                else {
                    return false;
                };
                metadata(&mut alice, Some(&["shared"])).await.topics[0].error_code == 0
            },
        )
        .await;
    }
}
