//! Test fixtures: a mock API server (tower-test) and an in-memory Kafka cluster.
//!
//! Both write to one [`Journal`], so a scenario can assert the order of Kubernetes requests
//! and Kafka admin calls (for example: DeleteTopics before the finalizer is removed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::Context;
use crate::kafka::{
    codes, AclBinding, AclFilter, BrokerInfo, ClusterMetadata, ConfigEntry, Connector, KafkaAdmin,
    KafkaError, NewTopic, OngoingReassignment, PartitionInfo, QuotaValues, Reassignment,
    ScramMechanism, ScramUpsert, Target, TopicInfo, TopicPartition,
};
use crate::metrics::Metrics;

/// One Kubernetes request as the mock API server saw it.
#[derive(Clone, Debug)]
pub struct ApiCall {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub body: Value,
}

/// Everything that happened, in order: `"k8s <METHOD> <path>"` and `"kafka <call>"`.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: String) {
        self.0.lock().expect("journal lock").push(entry);
    }

    /// The entries so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().expect("journal lock").clone()
    }

    /// The Kafka calls so far.
    pub fn kafka(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter_map(|e| e.strip_prefix("kafka ").map(str::to_string))
            .collect()
    }

    /// Index of the first entry starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.entries().iter().position(|e| e.starts_with(prefix))
    }
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The mock API server's end of the client.
pub struct ApiServer {
    handle: Handle,
    journal: Journal,
}

impl ApiServer {
    /// Answers every request with `respond` until the client is dropped; returns the calls.
    pub fn run<F>(self, mut respond: F) -> tokio::task::JoinHandle<Vec<ApiCall>>
    where
        F: FnMut(&ApiCall) -> (u16, Value) + Send + 'static,
    {
        let ApiServer {
            mut handle,
            journal,
        } = self;
        tokio::spawn(async move {
            let mut calls = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("request body");
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = ApiCall { method, path, body };
                journal.push(format!("k8s {} {}", call.method, call.path));
                let (code, reply) = respond(&call);
                calls.push(call);
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                        .expect("response"),
                );
            }
            calls
        })
    }
}

/// A `NotFound` Status, as the API server sends it.
pub fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Answers that fit most scenarios: events are accepted, applies and patches echo the body
/// (or `echo` for JSON patches, which need a whole object back), lists are empty.
pub fn default_reply(call: &ApiCall, echo: &Value) -> (u16, Value) {
    match call.method.as_str() {
        "POST" => (201, call.body.clone()),
        "PATCH" if call.body.is_array() => (200, echo.clone()),
        "PATCH" => {
            let mut obj = echo.clone();
            if let (Some(o), Some(b)) = (obj.as_object_mut(), call.body.as_object()) {
                for (k, v) in b {
                    o.insert(k.clone(), v.clone());
                }
            }
            if call.body.get("metadata").is_some() || obj.get("metadata").is_none() {
                (200, call.body.clone())
            } else {
                (200, obj)
            }
        }
        "DELETE" => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        "GET" if call.path.contains("?") && !call.path.contains("fieldSelector") => (
            200,
            json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}),
        ),
        _ => not_found(),
    }
}

/// Log lines written on this thread while the guard lives, filtered as the operator's binary
/// filters them ([`crate::DEFAULT_LOG_FILTER`]).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(crate::DEFAULT_LOG_FILTER)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The lines that mention `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("logs lock"))
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An in-memory Kafka cluster.
#[derive(Default)]
pub struct FakeState {
    pub reachable: bool,
    /// Admin APIs (`"ListPartitionReassignments"`, ...) that answer with an error.
    pub failing: Vec<&'static str>,
    pub brokers: Vec<i32>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
    pub ongoing: Vec<OngoingReassignment>,
    /// SCRAM credentials by user and mechanism, as AlterUserScramCredentials stored them.
    pub scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramUpsert>>,
    /// Every ACL of the cluster.
    pub acls: BTreeSet<AclBinding>,
    /// Client quotas of entities `user=<name>`.
    pub user_quotas: BTreeMap<String, QuotaValues>,
    /// No authorizer: the ACL APIs answer SECURITY_DISABLED.
    pub no_authorizer: bool,
}

/// The fake cluster, shared between the test and the reconciler.
#[derive(Clone)]
pub struct FakeKafka {
    pub state: Arc<Mutex<FakeState>>,
    journal: Journal,
}

impl FakeKafka {
    /// A reachable cluster with brokers `0..brokers` and no topics.
    pub fn new(brokers: i32, journal: Journal) -> Self {
        FakeKafka {
            state: Arc::new(Mutex::new(FakeState {
                reachable: true,
                brokers: (0..brokers).collect(),
                ..FakeState::default()
            })),
            journal,
        }
    }

    /// Adds topic `name` with `partitions` partitions of `rf` replicas, all in sync.
    pub fn with_topic(self, name: &str, partitions: i32, rf: i32) -> Self {
        {
            let mut s = self.state.lock().expect("lock");
            let n = i32::try_from(s.brokers.len()).expect("brokers");
            let info = TopicInfo {
                name: name.into(),
                id: format!("id-{name}"),
                partitions: (0..partitions)
                    .map(|p| {
                        let replicas: Vec<i32> = (0..rf).map(|r| (p + r) % n.max(1)).collect();
                        PartitionInfo {
                            partition: p,
                            leader: replicas[0],
                            isr: replicas.clone(),
                            replicas,
                        }
                    })
                    .collect(),
            };
            s.topics.insert(name.into(), info);
        }
        self
    }

    fn log(&self, call: String) {
        self.journal.push(format!("kafka {call}"));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake kafka lock")
    }

    /// SECURITY_DISABLED when the cluster has no authorizer.
    fn authorizer(&self, api: &'static str) -> Result<(), KafkaError> {
        if self.state().no_authorizer {
            return Err(KafkaError::Api {
                api,
                resource: String::new(),
                code: codes::SECURITY_DISABLED,
                message: "(SecurityDisabled): No Authorizer is configured.".into(),
            });
        }
        Ok(())
    }

    /// An error answer when `api` is listed in `failing` (NOT_CONTROLLER, code 41).
    fn answer(&self, api: &'static str) -> Result<(), KafkaError> {
        if self.state().failing.contains(&api) {
            return Err(KafkaError::Api {
                api,
                resource: String::new(),
                code: 41,
                message: "NOT_CONTROLLER".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for FakeKafka {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn KafkaAdmin>, KafkaError> {
        if !self.state().reachable {
            return Err(KafkaError::Io {
                addr: target.bootstrap.clone(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            });
        }
        Ok(Arc::new(self.clone()))
    }
}

#[async_trait]
impl KafkaAdmin for FakeKafka {
    async fn metadata(&self, topics: Option<Vec<String>>) -> Result<ClusterMetadata, KafkaError> {
        let s = self.state();
        Ok(ClusterMetadata {
            brokers: s
                .brokers
                .iter()
                .map(|id| BrokerInfo {
                    id: *id,
                    host: format!("b{id}"),
                    port: 9092,
                    rack: None,
                    fenced: false,
                })
                .collect(),
            topics: s
                .topics
                .values()
                .filter(|t| topics.as_ref().is_none_or(|names| names.contains(&t.name)))
                .cloned()
                .collect(),
        })
    }

    async fn describe_cluster(&self) -> Result<Vec<BrokerInfo>, KafkaError> {
        Ok(self.metadata(Some(vec![])).await?.brokers)
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<String, KafkaError> {
        let cfg: Vec<String> = topic
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.log(format!(
            "CreateTopics {} partitions={} rf={} config=[{}]",
            topic.name,
            topic.partitions,
            topic.replication_factor,
            cfg.join(",")
        ));
        if self.state().topics.contains_key(&topic.name) {
            return Err(KafkaError::Api {
                api: "CreateTopics",
                resource: topic.name.clone(),
                code: 36,
                message: String::new(),
            });
        }
        let fake = self.clone().with_topic(
            &topic.name,
            topic.partitions,
            i32::from(topic.replication_factor),
        );
        fake.state()
            .configs
            .insert(topic.name.clone(), topic.configs.clone());
        Ok(format!("id-{}", topic.name))
    }

    async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        self.log(format!("DeleteTopics {name}"));
        self.state().topics.remove(name);
        Ok(())
    }

    async fn create_partitions(&self, name: &str, total: i32) -> Result<(), KafkaError> {
        self.log(format!("CreatePartitions {name} total={total}"));
        let mut s = self.state();
        if let Some(t) = s.topics.get_mut(name) {
            let rf = t
                .partitions
                .first()
                .map(|p| p.replicas.clone())
                .unwrap_or_default();
            for p in i32::try_from(t.partitions.len()).unwrap_or(0)..total {
                t.partitions.push(PartitionInfo {
                    partition: p,
                    leader: rf[0],
                    replicas: rf.clone(),
                    isr: rf.clone(),
                });
            }
        }
        Ok(())
    }

    async fn describe_topic_configs(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigEntry>, KafkaError> {
        let s = self.state();
        let mut out: BTreeMap<String, ConfigEntry> = [("retention.ms", "604800000")]
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ConfigEntry {
                        value: Some(v.into()),
                        is_topic_override: false,
                    },
                )
            })
            .collect();
        for (k, v) in s.configs.get(name).into_iter().flatten() {
            out.insert(
                k.clone(),
                ConfigEntry {
                    value: Some(v.clone()),
                    is_topic_override: true,
                },
            );
        }
        Ok(out)
    }

    async fn alter_topic_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), KafkaError> {
        let sets: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.log(format!(
            "IncrementalAlterConfigs {name} set=[{}] delete=[{}]",
            sets.join(","),
            delete.join(",")
        ));
        let mut s = self.state();
        let c = s.configs.entry(name.into()).or_default();
        c.extend(set.clone());
        for k in delete {
            c.remove(k);
        }
        Ok(())
    }

    async fn alter_partition_reassignments(
        &self,
        moves: &[Reassignment],
    ) -> Result<(), KafkaError> {
        let desc: Vec<String> = moves
            .iter()
            .map(|m| format!("{}-{}->{:?}", m.topic, m.partition, m.replicas))
            .collect();
        self.log(format!("AlterPartitionReassignments {}", desc.join(" ")));
        self.answer("AlterPartitionReassignments")?;
        let mut s = self.state();
        for m in moves {
            if let (Some(t), Some(r)) = (s.topics.get_mut(&m.topic), &m.replicas) {
                if let Some(p) = t.partitions.iter_mut().find(|p| p.partition == m.partition) {
                    p.replicas = r.clone();
                    p.isr = r.clone();
                    p.leader = r[0];
                }
            }
        }
        Ok(())
    }

    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, KafkaError> {
        self.log("ListPartitionReassignments".into());
        self.answer("ListPartitionReassignments")?;
        Ok(self.state().ongoing.clone())
    }

    async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<(), KafkaError> {
        self.log(format!("ElectLeaders {}", partitions.len()));
        self.answer("ElectLeaders")?;
        Ok(())
    }

    async fn describe_scram_credentials(
        &self,
        user: &str,
    ) -> Result<Vec<ScramMechanism>, KafkaError> {
        Ok(self
            .state()
            .scram
            .get(user)
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default())
    }

    async fn upsert_scram_credential(
        &self,
        user: &str,
        credential: &ScramUpsert,
    ) -> Result<(), KafkaError> {
        self.log(format!(
            "AlterUserScramCredentials upsert {user} {} iterations={}",
            credential.mechanism.name(),
            credential.iterations
        ));
        self.answer("AlterUserScramCredentials")?;
        self.state()
            .scram
            .entry(user.into())
            .or_default()
            .insert(credential.mechanism, credential.clone());
        Ok(())
    }

    async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), KafkaError> {
        self.log(format!(
            "AlterUserScramCredentials delete {user} {}",
            mechanism.name()
        ));
        self.answer("AlterUserScramCredentials")?;
        let mut s = self.state();
        if let Some(c) = s.scram.get_mut(user) {
            c.remove(&mechanism);
            if c.is_empty() {
                s.scram.remove(user);
            }
        }
        Ok(())
    }

    async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, KafkaError> {
        self.authorizer("DescribeAcls")?;
        Ok(self
            .state()
            .acls
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect())
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), KafkaError> {
        let desc: Vec<String> = acls.iter().map(acl).collect();
        self.log(format!("CreateAcls {}", desc.join(", ")));
        self.authorizer("CreateAcls")?;
        self.state().acls.extend(acls.iter().cloned());
        Ok(())
    }

    async fn delete_acls(&self, filters: &[AclFilter]) -> Result<usize, KafkaError> {
        self.authorizer("DeleteAcls")?;
        let mut s = self.state();
        let gone: Vec<AclBinding> = s
            .acls
            .iter()
            .filter(|b| filters.iter().any(|f| f.matches(b)))
            .cloned()
            .collect();
        for b in &gone {
            s.acls.remove(b);
        }
        drop(s);
        let desc: Vec<String> = gone.iter().map(acl).collect();
        self.log(format!("DeleteAcls {}", desc.join(", ")));
        Ok(gone.len())
    }

    async fn describe_user_quotas(&self, user: &str) -> Result<QuotaValues, KafkaError> {
        Ok(self
            .state()
            .user_quotas
            .get(user)
            .cloned()
            .unwrap_or_default())
    }

    async fn alter_user_quotas(
        &self,
        user: &str,
        set: &QuotaValues,
        remove: &[String],
    ) -> Result<(), KafkaError> {
        let sets: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.log(format!(
            "AlterClientQuotas user={user} set=[{}] remove=[{}]",
            sets.join(","),
            remove.join(",")
        ));
        let mut s = self.state();
        let q = s.user_quotas.entry(user.into()).or_default();
        q.extend(set.clone());
        for k in remove {
            q.remove(k);
        }
        if q.is_empty() {
            s.user_quotas.remove(user);
        }
        Ok(())
    }
}

/// `Topic:orders:Literal User:alice Allow Read *`: one ACL in a journal entry.
pub fn acl(b: &AclBinding) -> String {
    format!(
        "{:?}:{}:{:?} {} {:?} {:?} {}",
        b.resource_type,
        b.resource_name,
        b.pattern_type,
        b.principal,
        b.permission,
        b.operation,
        b.host
    )
}

/// A context whose client talks to a mock API server and whose Kafka is `kafka`.
pub fn context(kafka: FakeKafka, journal: &Journal) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(client, Arc::new(kafka), Arc::new(Metrics::new()));
    (
        Arc::new(ctx),
        ApiServer {
            handle,
            journal: journal.clone(),
        },
    )
}

/// Waits for the mock server to finish (the context must have been dropped).
pub async fn finish(server: tokio::task::JoinHandle<Vec<ApiCall>>) -> Vec<ApiCall> {
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("mock API server finished (was the context dropped?)")
        .expect("mock API server task")
}

/// Merges `extra` into `base` (objects key by key; anything else replaced): a fixture with a
/// few fields changed.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A one-broker Cluster `spate` in `default`, as the API server returns it.
pub fn cluster_json() -> Value {
    json!({
        "apiVersion": "spate.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "spate", "namespace": "default", "uid": "c-uid"},
        "spec": {"replicas": 1, "storage": {"size": "1Gi"}},
        "status": {"bootstrapAddress": "spate-bootstrap.default.svc:9092"}
    })
}
