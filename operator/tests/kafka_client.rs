//! The admin client on the wire: against a fake broker that speaks the protocol over a local
//! TcpListener (every API, including the reassignment APIs the broker does not have yet), and
//! against the real `spate-broker` binary when it has been built (`target/debug/spate-broker`,
//! or the binary `SPATE_BROKER_BIN` names).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, StrBytes,
};
use spate_operator::kafka::{
    AclBinding, AclFilter, AdminClient, KafkaAdmin, KafkaError, NewTopic, QuotaValues,
    Reassignment, ScramMechanism, ScramUpsert,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake broker saw: `(api key, version)` per request, plus reassignments.
#[derive(Default)]
struct Seen {
    requests: Vec<(i16, i16)>,
    reassignments: Vec<(String, i32, Option<Vec<i32>>)>,
    elections: Vec<(String, i32)>,
}

/// Supported ranges the fake advertises (deliberately below our maxima for some APIs, so
/// negotiation is exercised).
fn ranges() -> Vec<(ApiKey, i16, i16)> {
    vec![
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::CreateTopics, 2, 5),
        (ApiKey::AlterPartitionReassignments, 0, 0),
        (ApiKey::ListPartitionReassignments, 0, 0),
        (ApiKey::ElectLeaders, 0, 2),
    ]
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut body = vec![0u8; size as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(body);
        let header = decode_request_header_from_buffer(&mut buf).expect("header");
        let (key, version) = (header.request_api_key, header.request_api_version);
        seen.lock()
            .expect("seen lock")
            .requests
            .push((key, version));
        let mut out = BytesMut::new();
        let api = ApiKey::try_from(key).expect("known key");
        let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
        macro_rules! reply {
            ($resp:expr, $ty:ty) => {{
                let hv = if api == ApiKey::ApiVersions {
                    0
                } else {
                    <$ty>::header_version(version)
                };
                response_header.encode(&mut out, hv).expect("encode header");
                $resp.encode(&mut out, version).expect("encode body");
            }};
        }
        match api {
            ApiKey::ApiVersions => {
                let resp = ApiVersionsResponse::default().with_api_keys(
                    ranges()
                        .into_iter()
                        .map(|(k, min, max)| {
                            ApiVersion::default()
                                .with_api_key(k as i16)
                                .with_min_version(min)
                                .with_max_version(max)
                        })
                        .collect(),
                );
                reply!(resp, ApiVersionsResponse)
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut buf, version).expect("decode");
                let t = &req.topics[0];
                let code = if t.name.0.as_str() == "exists" { 36 } else { 0 };
                let resp = CreateTopicsResponse::default().with_topics(vec![
                    CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code)
                        .with_num_partitions(t.num_partitions)
                        .with_replication_factor(t.replication_factor),
                ]);
                reply!(resp, CreateTopicsResponse)
            }
            ApiKey::Metadata => {
                let _ = MetadataRequest::decode(&mut buf, version).expect("decode");
                let broker = |id: i32| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(format!("b{id}")))
                        .with_port(9092)
                };
                let part = |p: i32, leader: i32, replicas: &[i32], isr: &[i32]| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(leader))
                        .with_replica_nodes(replicas.iter().map(|b| BrokerId(*b)).collect())
                        .with_isr_nodes(isr.iter().map(|b| BrokerId(*b)).collect())
                };
                let resp = MetadataResponse::default()
                    .with_brokers(vec![broker(1), broker(2), broker(3)])
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))
                        .with_partitions(vec![
                            part(1, 2, &[2, 3], &[2]),
                            part(0, 2, &[1, 2], &[1, 2]),
                        ])]);
                reply!(resp, MetadataResponse)
            }
            ApiKey::AlterPartitionReassignments => {
                let req =
                    AlterPartitionReassignmentsRequest::decode(&mut buf, version).expect("decode");
                for t in &req.topics {
                    for p in &t.partitions {
                        seen.lock().expect("seen lock").reassignments.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                        ));
                    }
                }
                reply!(
                    AlterPartitionReassignmentsResponse::default(),
                    AlterPartitionReassignmentsResponse
                )
            }
            ApiKey::ListPartitionReassignments => {
                let resp = ListPartitionReassignmentsResponse::default().with_topics(vec![
                    OngoingTopicReassignment::default()
                        .with_name(TopicName(StrBytes::from_static_str("orders")))
                        .with_partitions(vec![OngoingPartitionReassignment::default()
                            .with_partition_index(0)
                            .with_replicas(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                            .with_adding_replicas(vec![BrokerId(3)])
                            .with_removing_replicas(vec![BrokerId(1)])]),
                ]);
                reply!(resp, ListPartitionReassignmentsResponse)
            }
            ApiKey::ElectLeaders => {
                let req = ElectLeadersRequest::decode(&mut buf, version).expect("decode");
                assert_eq!(req.election_type, 0, "preferred election");
                for t in req.topic_partitions.iter().flatten() {
                    for p in &t.partitions {
                        seen.lock()
                            .expect("seen lock")
                            .elections
                            .push((t.topic.0.to_string(), *p));
                    }
                }
                reply!(ElectLeadersResponse::default(), ElectLeadersResponse)
            }
            other => panic!("fake broker got unexpected {other:?}"),
        }
        let mut frame = BytesMut::new();
        frame.put_i32(out.len() as i32);
        frame.extend_from_slice(&out);
        if stream.write_all(&frame).await.is_err() {
            return;
        }
        let _ = buf.remaining();
    }
}

async fn fake_broker() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, s.clone()));
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn negotiates_versions_and_creates_topics() {
    let (addr, seen) = fake_broker().await;
    let admin = AdminClient::connect(&addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    admin
        .create_topic(&NewTopic {
            name: "orders".into(),
            partitions: 6,
            replication_factor: 3,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        })
        .await
        .expect("create");
    let err = admin
        .create_topic(&NewTopic {
            name: "exists".into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        })
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Some(36), "{err}");
    let requests = seen.lock().expect("seen lock").requests.clone();
    assert_eq!(requests[0], (ApiKey::ApiVersions as i16, 3));
    assert_eq!(
        requests[1],
        (ApiKey::CreateTopics as i16, 5),
        "min(ours 7, broker 5)"
    );
}

#[tokio::test]
async fn metadata_reports_partitions_isr_and_health() {
    let (addr, _) = fake_broker().await;
    let admin = AdminClient::connect(&addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    let md = admin.metadata(None).await.expect("metadata");
    assert_eq!(md.brokers.len(), 3);
    let t = md.topic("orders").expect("topic");
    assert_eq!(t.partitions[0].partition, 0, "sorted by partition");
    assert_eq!(md.under_replicated(), vec![("orders".to_string(), 1)]);
    assert!(md.offline().is_empty());
}

#[tokio::test]
async fn reassignment_and_election_requests_round_trip() {
    let (addr, seen) = fake_broker().await;
    let admin = AdminClient::connect(&addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    admin
        .alter_partition_reassignments(&[
            Reassignment {
                topic: "orders".into(),
                partition: 0,
                replicas: Some(vec![3, 2]),
            },
            Reassignment {
                topic: "orders".into(),
                partition: 1,
                replicas: None,
            },
        ])
        .await
        .expect("alter");
    let ongoing = admin.list_partition_reassignments().await.expect("list");
    assert_eq!(ongoing[0].adding, vec![3]);
    assert_eq!(ongoing[0].removing, vec![1]);
    admin
        .elect_preferred_leaders(&[("orders".into(), 0), ("orders".into(), 1)])
        .await
        .expect("elect");
    let seen = seen.lock().expect("seen lock");
    assert_eq!(
        seen.reassignments,
        vec![
            ("orders".to_string(), 0, Some(vec![3, 2])),
            ("orders".to_string(), 1, None)
        ]
    );
    assert_eq!(seen.elections.len(), 2);
}

#[tokio::test]
async fn unsupported_api_is_reported_without_sending() {
    let (addr, _) = fake_broker().await;
    let admin = AdminClient::connect(&addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    let err = admin.delete_topic("x").await.expect_err("not advertised");
    assert!(
        matches!(err, KafkaError::Unsupported("DeleteTopics")),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_broker_is_an_io_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let err = AdminClient::connect(&addr, Duration::from_secs(2), None)
        .await
        .err()
        .expect("refused");
    assert!(err.is_unreachable(), "{err}");
}

/// Runs the real broker binary, if built, on free ports with a temporary data dir.
struct RealBroker {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn real_broker() -> Option<RealBroker> {
    real_broker_with(&[]).await
}

/// The real broker with extra `key=value` settings.
async fn real_broker_with(settings: &[&str]) -> Option<RealBroker> {
    let bin = std::env::var_os("SPATE_BROKER_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/spate-broker")
        });
    if !bin.exists() {
        eprintln!("skipping: {} not built", bin.display());
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = std::process::Command::new(bin)
        .arg("--listen")
        .arg(&addr)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--set")
        .arg(format!("http.listeners=127.0.0.1:{}", free_port()))
        .args(settings.iter().flat_map(|s| ["--set", s]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn broker");
    let broker = RealBroker {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..100 {
        if TcpStream::connect(&broker.addr).await.is_ok() {
            return Some(broker);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker did not start on {}", broker.addr);
}

#[tokio::test]
async fn topic_lifecycle_against_the_real_broker() {
    let Some(broker) = real_broker().await else {
        return;
    };
    let admin = AdminClient::connect(&broker.addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    let id = admin
        .create_topic(&NewTopic {
            name: "operator-test".into(),
            partitions: 2,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "60000".into())]),
        })
        .await
        .expect("create");
    let md = admin
        .metadata(Some(vec!["operator-test".into()]))
        .await
        .expect("metadata");
    let t = md.topic("operator-test").expect("topic listed");
    assert_eq!(t.id, id);
    assert_eq!(t.partitions.len(), 2);

    let configs = admin
        .describe_topic_configs("operator-test")
        .await
        .expect("describe");
    let retention = &configs["retention.ms"];
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert!(retention.is_topic_override);

    admin
        .alter_topic_configs(
            "operator-test",
            &BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            &["retention.ms".to_string()],
        )
        .await
        .expect("alter");
    let configs = admin
        .describe_topic_configs("operator-test")
        .await
        .expect("describe");
    assert!(configs["cleanup.policy"].is_topic_override);
    assert!(
        !configs["retention.ms"].is_topic_override,
        "override deleted"
    );

    admin
        .create_partitions("operator-test", 5)
        .await
        .expect("grow");
    let md = admin.metadata(None).await.expect("metadata");
    assert_eq!(
        md.topic("operator-test").map(|t| t.partitions.len()),
        Some(5)
    );
    assert!(md.under_replicated().is_empty());

    let brokers = admin.describe_cluster().await.expect("describe cluster");
    assert_eq!(brokers.len(), 1);

    admin.delete_topic("operator-test").await.expect("delete");
    admin
        .delete_topic("operator-test")
        .await
        .expect("deleting a missing topic is not an error");
    let md = admin.metadata(None).await.expect("metadata");
    assert!(md.topic("operator-test").is_none());
}

#[tokio::test]
async fn user_security_apis_against_the_real_broker() {
    use spate_auth::acl::{Operation, PatternType, Permission, ResourceType};
    let Some(broker) = real_broker_with(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:ANONYMOUS",
    ])
    .await
    else {
        return;
    };
    let admin = AdminClient::connect(&broker.addr, Duration::from_secs(5), None)
        .await
        .expect("connect");

    // SCRAM: none, one, the other deleted though missing, then none again.
    assert!(admin
        .describe_scram_credentials("alice")
        .await
        .expect("describe")
        .is_empty());
    admin
        .upsert_scram_credential(
            "alice",
            &ScramUpsert::new(ScramMechanism::Sha512, "secret", 4096),
        )
        .await
        .expect("upsert");
    assert_eq!(
        admin
            .describe_scram_credentials("alice")
            .await
            .expect("describe"),
        vec![ScramMechanism::Sha512]
    );
    admin
        .delete_scram_credential("alice", ScramMechanism::Sha256)
        .await
        .expect("deleting a missing credential is not an error");
    admin
        .delete_scram_credential("alice", ScramMechanism::Sha512)
        .await
        .expect("delete");
    assert!(admin
        .describe_scram_credentials("alice")
        .await
        .expect("describe")
        .is_empty());

    // ACLs: create two, find them by principal, delete one exactly.
    let read = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Read,
        permission: Permission::Allow,
    };
    let group = AclBinding {
        resource_type: ResourceType::Group,
        resource_name: "app-".into(),
        pattern_type: PatternType::Prefixed,
        ..read.clone()
    };
    admin
        .create_acls(&[read.clone(), group.clone()])
        .await
        .expect("create acls");
    let of_alice = AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: Some("User:alice".into()),
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };
    let mut found = admin.describe_acls(&of_alice).await.expect("describe acls");
    found.sort();
    let mut want = vec![read.clone(), group.clone()];
    want.sort();
    assert_eq!(found, want);
    let exact = AclFilter {
        resource_type: group.resource_type,
        resource_name: Some(group.resource_name.clone()),
        pattern_type: group.pattern_type,
        principal: Some(group.principal.clone()),
        host: Some(group.host.clone()),
        operation: group.operation,
        permission: group.permission,
    };
    assert_eq!(admin.delete_acls(&[exact]).await.expect("delete acls"), 1);
    assert_eq!(
        admin.describe_acls(&of_alice).await.expect("describe acls"),
        vec![read]
    );

    // Quotas of user=alice: set two, remove one.
    let set = QuotaValues::from([
        ("producer_byte_rate".to_string(), 1024.0),
        ("request_percentage".to_string(), 12.5),
    ]);
    admin
        .alter_user_quotas("alice", &set, &[])
        .await
        .expect("set quotas");
    assert_eq!(
        admin.describe_user_quotas("alice").await.expect("quotas"),
        set
    );
    admin
        .alter_user_quotas("alice", &QuotaValues::new(), &["request_percentage".into()])
        .await
        .expect("remove quota");
    assert_eq!(
        admin.describe_user_quotas("alice").await.expect("quotas"),
        QuotaValues::from([("producer_byte_rate".to_string(), 1024.0)])
    );
    assert!(admin
        .describe_user_quotas("bob")
        .await
        .expect("quotas")
        .is_empty());
}

#[tokio::test]
async fn acl_apis_without_an_authorizer_are_security_disabled() {
    use spate_auth::acl::{Operation, PatternType, Permission, ResourceType};
    let Some(broker) = real_broker().await else {
        return;
    };
    let admin = AdminClient::connect(&broker.addr, Duration::from_secs(5), None)
        .await
        .expect("connect");
    let any = AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: Some("User:alice".into()),
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };
    let err = admin.describe_acls(&any).await.expect_err("no authorizer");
    assert_eq!(err.code(), Some(54), "{err}");
}
