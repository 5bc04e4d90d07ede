//! Scenarios: the reconciler against a mock API server and an in-memory cluster.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::{reconcile, PROGRESS_REQUEUE};
use crate::builders::external::{self, ExternalEndpoints};
use crate::builders::{pods, pvc, services, test_support};
use crate::crd::cluster::{ExternalType, ReclaimPolicy};
use crate::crd::conditions::{DEGRADED, READY, RECONCILING};
use crate::crd::{Cluster, ClusterStatus};
use crate::plan;
use crate::reconcilers::fixtures::{
    context, default_reply, finish, not_found, ApiCall, FakeKafka, Journal, Logs,
};
use crate::Result;

/// Broker pods as the builder makes them for `ids`, marked ready.
fn ready_pods(c: &Cluster, ids: &[i32]) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            let pod = pods::build(c, *id, ids, &ExternalEndpoints::new(), None);
            let mut pod = serde_json::to_value(pod).expect("pod json");
            pod["status"] = json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}]});
            pod
        })
        .collect()
}

fn claims(c: &Cluster, ids: &[i32]) -> Vec<Value> {
    ids.iter()
        .map(|id| serde_json::to_value(pvc::build(c, *id)).expect("pvc json"))
        .collect()
}

fn list(items: Vec<Value>) -> Value {
    json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
}

async fn run(
    c: Cluster,
    pods: Vec<Value>,
    pvcs: Vec<Value>,
    kafka: FakeKafka,
    journal: &Journal,
) -> (Result<Action>, Vec<ApiCall>) {
    run_with(c, pods, pvcs, kafka, journal, |_| None).await
}

/// [`run`], with `answer` answering requests first (`None`: the default).
async fn run_with(
    c: Cluster,
    pods: Vec<Value>,
    pvcs: Vec<Value>,
    kafka: FakeKafka,
    journal: &Journal,
    answer: impl Fn(&ApiCall) -> Option<(u16, Value)> + Send + 'static,
) -> (Result<Action>, Vec<ApiCall>) {
    let (ctx, server) = context(kafka, journal);
    let echo = serde_json::to_value(&c).expect("cluster json");
    let server = server.run(move |call| {
        if let Some(reply) = answer(call) {
            reply
        } else if call.method == "GET" && call.path.starts_with("/api/v1/namespaces/kafka/pods?") {
            (200, list(pods.clone()))
        } else if call.method == "GET"
            && call
                .path
                .starts_with("/api/v1/namespaces/kafka/persistentvolumeclaims?")
        {
            (200, list(pvcs.clone()))
        } else if call.method == "PATCH" && call.path.contains("/clusters/") {
            (200, echo.clone())
        } else {
            default_reply(call, &echo)
        }
    });
    let result = reconcile(Arc::new(c), ctx).await;
    (result, finish(server).await)
}

fn status(calls: &[ApiCall]) -> Value {
    calls
        .iter()
        .find(|c| {
            c.method == "PATCH"
                && c.path
                    .starts_with("/apis/spate.dev/v1alpha1/namespaces/kafka/clusters/spate/status?")
        })
        .map(|c| c.body["status"].clone())
        .expect("status patched")
}

fn condition(status: &Value, type_: &str) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap_or("").into(),
        c["reason"].as_str().unwrap_or("").into(),
        c["message"].as_str().unwrap_or("").into(),
    )
}

fn deletes(calls: &[ApiCall]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path.clone())
        .collect()
}

fn events(calls: &[ApiCall]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.contains("/events"))
        .map(|c| c.body["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn new_cluster_applies_objects_and_creates_brokers() {
    let journal = Journal::default();
    let c = test_support::cluster(3);
    let (result, calls) = run(
        c,
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
    )
    .await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(PROGRESS_REQUEUE)
    );
    let applied: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.contains("fieldManager=spate-operator"))
        .map(|c| c.path.split('?').next().unwrap_or(""))
        .collect();
    for path in [
        "/api/v1/namespaces/kafka/serviceaccounts/spate-broker",
        "/api/v1/namespaces/kafka/configmaps/spate-config",
        "/api/v1/namespaces/kafka/services/spate-brokers",
        "/api/v1/namespaces/kafka/services/spate-bootstrap",
        "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/spate-brokers",
        "/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-0",
        "/api/v1/namespaces/kafka/pods/spate-2",
    ] {
        assert!(applied.contains(&path), "{path} not applied: {applied:?}");
    }
    let pod = calls
        .iter()
        .find(|c| c.path.starts_with("/api/v1/namespaces/kafka/pods/spate-1?"))
        .expect("pod applied");
    assert_eq!(pod.body["kind"], "Pod");
    assert_eq!(
        pod.body["metadata"]["ownerReferences"][0]["kind"],
        "Cluster"
    );
    assert_eq!(events(&calls), vec!["BrokersCreated".to_string()]);
    let s = status(&calls);
    assert_eq!(condition(&s, RECONCILING).1, "Creating");
    assert_eq!(condition(&s, READY).0, "False");
    assert!(
        journal.kafka().is_empty(),
        "no Kafka call before a broker exists"
    );
}

#[tokio::test]
async fn scale_down_below_replication_factor_is_refused_with_a_condition() {
    let journal = Journal::default();
    let three = test_support::cluster(3);
    let mut c = three.clone();
    c.spec.replicas = 2;
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    let (result, calls) = run(
        c,
        ready_pods(&three, &[0, 1, 2]),
        claims(&three, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let s = status(&calls);
    let (ready, reason, message) = condition(&s, READY);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ScaleDownRefused")
    );
    assert!(
        message.contains("orders (replication factor 3)"),
        "{message}"
    );
    assert!(
        deletes(&calls).is_empty(),
        "no broker removed: {:?}",
        deletes(&calls)
    );
    assert!(!journal
        .kafka()
        .iter()
        .any(|k| k.starts_with("AlterPartitionReassignments")));
    assert!(events(&calls).contains(&"ScaleDownRefused".to_string()));
    let warning = calls
        .iter()
        .find(|c| c.body["reason"] == "ScaleDownRefused")
        .expect("event");
    assert_eq!(warning.body["type"], "Warning");
    assert_eq!(
        phases(&s),
        ["Ready", "Ready", "Ready"],
        "brokers kept, and serving rather than draining"
    );
}

fn phases(status: &Value) -> Vec<String> {
    status["brokers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["phase"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn scale_down_drains_the_chosen_broker_then_removes_it() {
    let journal = Journal::default();
    let mut four = test_support::cluster(4);
    four.spec.metadata_voters = Some(1);
    let mut c = four.clone();
    c.spec.replicas = 3;
    c.spec.remove_brokers = vec![2];
    c.spec.storage.reclaim_policy = ReclaimPolicy::Delete;
    let kafka = FakeKafka::new(4, journal.clone()).with_topic("orders", 8, 2);

    // Pass 1: replicas move off broker 2; nothing is deleted yet.
    let (result, calls) = run(
        c.clone(),
        ready_pods(&four, &[0, 1, 2, 3]),
        claims(&four, &[0, 1, 2, 3]),
        kafka.clone(),
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(deletes(&calls).is_empty());
    assert!(events(&calls).contains(&"DrainStarted".to_string()));
    assert_eq!(condition(&status(&calls), RECONCILING).1, "Draining");
    assert_eq!(
        phases(&status(&calls)),
        ["Ready", "Ready", "Draining", "Ready"]
    );
    let after = kafka.state.lock().expect("lock").topics["orders"].clone();
    assert!(after
        .partitions
        .iter()
        .all(|p| !p.replicas.contains(&2) && p.replicas.len() == 2));

    // Pass 2: broker 2 is empty, so its pod and claim go.
    let (result, calls) = run(
        c,
        ready_pods(&four, &[0, 1, 2, 3]),
        claims(&four, &[0, 1, 2, 3]),
        kafka,
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let d = deletes(&calls);
    assert!(
        d.iter()
            .any(|p| p.starts_with("/api/v1/namespaces/kafka/pods/spate-2?")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|p| p
                .starts_with("/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-2?")),
        "{d:?}"
    );
    assert_eq!(d.len(), 2, "only broker 2 removed: {d:?}");
    assert!(events(&calls).contains(&"DrainFinished".to_string()));
}

#[tokio::test]
async fn removing_a_metadata_voter_is_refused() {
    let journal = Journal::default();
    let three = test_support::cluster(3);
    let mut c = three.clone();
    c.spec.replicas = 2;
    c.spec.metadata_voters = Some(1);
    c.spec.remove_brokers = vec![0];
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 1);
    let (_, calls) = run(
        c,
        ready_pods(&three, &[0, 1, 2]),
        claims(&three, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    let (_, reason, message) = condition(&status(&calls), READY);
    assert_eq!(reason, "ScaleDownRefused");
    assert!(message.contains("metadata quorum"), "{message}");
    assert!(deletes(&calls).is_empty());
}

#[tokio::test]
async fn config_change_restarts_one_broker_when_isr_allows() {
    let journal = Journal::default();
    let old = test_support::cluster(3);
    let mut c = old.clone();
    c.spec.config.insert("log.retention.ms".into(), "1".into());
    c.status = Some(ClusterStatus {
        balanced_brokers: vec![0, 1, 2],
        ..ClusterStatus::default()
    });
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    let (_, calls) = run(
        c,
        ready_pods(&old, &[0, 1, 2]),
        claims(&old, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert_eq!(
        deletes(&calls).len(),
        1,
        "one broker at a time: {:?}",
        deletes(&calls)
    );
    assert!(deletes(&calls)[0].starts_with("/api/v1/namespaces/kafka/pods/spate-0?"));
    assert!(events(&calls).contains(&"BrokerRestarting".to_string()));
    assert_eq!(condition(&status(&calls), RECONCILING).1, "Rolling");
}

/// A 3-broker Cluster with a config change to roll (min.insync.replicas=2) while
/// `orders-0` has broker 2 out of its ISR: restarting broker 0 or 1 would take it below
/// min.insync.replicas. Returns (the cluster as running, the changed one, its Kafka).
fn roll_blocked_by_min_isr(journal: &Journal) -> (Cluster, Cluster, FakeKafka) {
    let old = test_support::cluster(3);
    let mut c = old.clone();
    c.spec
        .config
        .insert("min.insync.replicas".into(), "2".into());
    c.status = Some(ClusterStatus {
        balanced_brokers: vec![0, 1, 2],
        ..ClusterStatus::default()
    });
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 1, 3);
    kafka
        .state
        .lock()
        .expect("lock")
        .topics
        .get_mut("orders")
        .expect("topic")
        .partitions[0]
        .isr = vec![0, 1];
    (old, c, kafka)
}

#[tokio::test]
async fn restart_waits_while_it_would_drop_a_partition_below_min_isr() {
    let journal = Journal::default();
    let (old, c, kafka) = roll_blocked_by_min_isr(&journal);
    let (_, calls) = run(
        c,
        ready_pods(&old, &[0, 1, 2]),
        claims(&old, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert!(deletes(&calls).is_empty(), "{:?}", deletes(&calls));
    let s = status(&calls);
    let (_, reason, message) = condition(&s, RECONCILING);
    assert_eq!(reason, "RollBlocked");
    assert!(message.contains("orders-0"), "{message}");
    assert_eq!(condition(&s, DEGRADED).1, "UnderReplicated");
    assert_eq!(s["underReplicatedPartitions"], 1);
}

#[tokio::test]
async fn scale_up_rebalances_partitions_onto_new_brokers() {
    let journal = Journal::default();
    let c = {
        let mut c = test_support::cluster(4);
        c.status = Some(ClusterStatus {
            balanced_brokers: vec![0, 1, 2],
            ..ClusterStatus::default()
        });
        c
    };
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 6, 2);
    kafka.state.lock().expect("lock").brokers.push(3);
    let (_, calls) = run(
        c.clone(),
        ready_pods(&c, &[0, 1, 2, 3]),
        claims(&c, &[0, 1, 2, 3]),
        kafka.clone(),
        &journal,
    )
    .await;
    assert!(
        journal
            .kafka()
            .iter()
            .any(|k| k.starts_with("AlterPartitionReassignments")),
        "{:?}",
        journal.kafka()
    );
    let counts = plan::reassign::replica_counts(
        &kafka.state.lock().expect("lock").topics["orders"]
            .partitions
            .iter()
            .map(|p| (("orders".to_string(), p.partition), p.replicas.clone()))
            .collect(),
    );
    assert_eq!(
        counts.get(&3),
        Some(&3),
        "broker 3 got its share: {counts:?}"
    );
    assert_eq!(condition(&status(&calls), RECONCILING).1, "Rebalancing");
}

#[tokio::test]
async fn returned_broker_gets_its_leadership_back() {
    let journal = Journal::default();
    let mut c = test_support::cluster(3);
    c.status = Some(ClusterStatus {
        balanced_brokers: vec![0, 1, 2],
        ..ClusterStatus::default()
    });
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    kafka
        .state
        .lock()
        .expect("lock")
        .topics
        .get_mut("orders")
        .expect("topic")
        .partitions[0]
        .leader = 1;
    let (_, calls) = run(
        c.clone(),
        ready_pods(&c, &[0, 1, 2]),
        claims(&c, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert_eq!(
        journal.kafka().last().map(String::as_str),
        Some("ElectLeaders 1")
    );
    assert!(events(&calls).contains(&"LeadersRebalanced".to_string()));
    let s = status(&calls);
    assert_eq!(condition(&s, READY).0, "True");
    assert_eq!(condition(&s, DEGRADED).0, "False");
}

#[tokio::test]
async fn unreachable_cluster_is_reported_and_retried_soon() {
    let journal = Journal::default();
    let c = test_support::cluster(1);
    let kafka = FakeKafka::new(1, journal.clone());
    kafka.state.lock().expect("lock").reachable = false;
    let (result, calls) = run(
        c.clone(),
        ready_pods(&c, &[0]),
        claims(&c, &[0]),
        kafka,
        &journal,
    )
    .await;
    assert_eq!(result.expect("ok"), Action::requeue(PROGRESS_REQUEUE));
    assert_eq!(condition(&status(&calls), READY).1, "ClusterUnreachable");
}

#[tokio::test]
async fn kafka_request_failing_mid_pass_is_reported_in_status() {
    let journal = Journal::default();
    let c = test_support::cluster(3);
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    kafka
        .state
        .lock()
        .expect("lock")
        .failing
        .push("ListPartitionReassignments");
    let (result, calls) = run(
        c.clone(),
        ready_pods(&c, &[0, 1, 2]),
        claims(&c, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert_eq!(
        result.expect("a condition, not a reconcile error"),
        Action::requeue(PROGRESS_REQUEUE)
    );
    let s = status(&calls);
    let (ready, reason, message) = condition(&s, READY);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "KafkaRequestFailed")
    );
    assert!(message.contains("ListPartitionReassignments"), "{message}");
    assert_eq!(
        s["underReplicatedPartitions"], 0,
        "what Metadata said before the failure is kept"
    );
}

#[tokio::test]
async fn disabled_disruption_budget_is_deleted() {
    const PDB: &str = "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/spate-brokers?";
    let journal = Journal::default();
    let mut c = test_support::cluster(3);
    c.spec.disruption_budget.enabled = false;
    let (result, calls) = run(
        c.clone(),
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(deletes(&calls), [PDB.to_string()]);
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "PATCH" && c.path.starts_with(PDB)),
        "not applied"
    );

    // Already gone, as on every later pass: nothing to do.
    let (result, _) = run_with(
        c,
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
        |call| (call.method == "DELETE" && call.path.starts_with(PDB)).then(not_found),
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn removed_brokers_claim_is_retained_under_the_operators_field_manager() {
    let journal = Journal::default();
    let four = test_support::cluster(4);
    let mut c = four.clone();
    c.spec.replicas = 3;
    assert_eq!(c.spec.storage.reclaim_policy, ReclaimPolicy::Retain);
    // No topics: broker 3 is empty at once and goes in this pass.
    let (result, calls) = run(
        c,
        ready_pods(&four, &[0, 1, 2, 3]),
        claims(&four, &[0, 1, 2, 3]),
        FakeKafka::new(4, journal.clone()),
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let d = deletes(&calls);
    assert_eq!(d.len(), 1, "the pod only: {d:?}");
    assert!(d[0].starts_with("/api/v1/namespaces/kafka/pods/spate-3?"));
    let relabel = calls
        .iter()
        .find(|c| {
            c.method == "PATCH"
                && c.path
                    .starts_with("/api/v1/namespaces/kafka/persistentvolumeclaims/data-spate-3?")
        })
        .expect("claim relabelled");
    assert!(
        relabel.path.contains("fieldManager=spate-operator"),
        "{}",
        relabel.path
    );
    assert_eq!(
        relabel.body["metadata"]["labels"]["spate.dev/retained"],
        "true"
    );
}

#[tokio::test]
async fn decisions_are_logged_with_the_cluster_and_its_brokers() {
    let (logs, _guard) = Logs::capture();
    // A refused scale-down publishes an Event; its log line comes from `Context::event`.
    let journal = Journal::default();
    let three = test_support::cluster(3);
    let mut c = three.clone();
    c.spec.replicas = 2;
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    let (result, _) = run(
        c,
        ready_pods(&three, &[0, 1, 2]),
        claims(&three, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let refused = logs.lines_with("reason=\"ScaleDownRefused\"");
    assert_eq!(refused.len(), 1, "{refused:?}");
    for want in [
        "WARN",
        "kind=Cluster",
        "namespace=\"kafka\"",
        "name=\"spate\"",
        "refusing to remove brokers [2]",
    ] {
        assert!(refused[0].contains(want), "{want} in {}", refused[0]);
    }

    // A blocked roll publishes none; `decision!` logs it.
    let journal = Journal::default();
    let (old, c, kafka) = roll_blocked_by_min_isr(&journal);
    let (result, _) = run(
        c,
        ready_pods(&old, &[0, 1, 2]),
        claims(&old, &[0, 1, 2]),
        kafka,
        &journal,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let blocked = logs.lines_with("reason=\"RollBlocked\"");
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    for want in ["INFO", "name=\"spate\"", "broker=0", "partitions=orders-0"] {
        assert!(blocked[0].contains(want), "{want} in {}", blocked[0]);
    }
}

// ---- The external listener ----

/// Answers applies of external Services as the API server would once it allocated node
/// ports (`31000` for the bootstrap, `31001 + id` per broker) or, with `ingress`, once
/// the load balancers got addresses (`203.0.113.<id + 10>`, the bootstrap `.1`).
fn external_services(ingress: bool) -> impl Fn(&ApiCall) -> Option<(u16, Value)> {
    move |call| {
        if call.method != "PATCH" || !call.path.starts_with("/api/v1/namespaces/kafka/services/") {
            return None;
        }
        let name = call.body["metadata"]["name"].as_str().unwrap_or("");
        let id = if name == "spate-external-bootstrap" {
            -1
        } else {
            name.strip_prefix("spate-")?
                .strip_suffix("-external")?
                .parse::<i32>()
                .ok()?
        };
        let mut svc = call.body.clone();
        if svc["spec"]["type"] == "NodePort" {
            svc["spec"]["ports"][0]["nodePort"] = json!(31001 + id);
        } else if ingress {
            let ip = format!("203.0.113.{}", if id < 0 { 1 } else { id + 10 });
            svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        }
        Some((200, svc))
    }
}

fn properties(calls: &[ApiCall], id: i32) -> String {
    calls
        .iter()
        .find(|c| {
            c.method == "PATCH"
                && c.path
                    .starts_with("/api/v1/namespaces/kafka/configmaps/spate-config?")
        })
        .and_then(|c| c.body["data"][format!("broker-{id}.properties")].as_str())
        .unwrap_or_else(|| panic!("no properties for broker {id}"))
        .to_string()
}

/// Ready pods of `c` built with `endpoints`, on nodes `10.0.0.<id>`.
fn ready_pods_on_nodes(c: &Cluster, ids: &[i32], endpoints: &ExternalEndpoints) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            let pod = pods::build(c, *id, ids, endpoints, None);
            let mut pod = serde_json::to_value(pod).expect("pod json");
            pod["status"] = json!({"phase": "Running", "hostIP": format!("10.0.0.{id}"),
                "conditions": [{"type": "Ready", "status": "True"}]});
            pod
        })
        .collect()
}

fn listeners(status: &Value) -> Vec<(String, String)> {
    status["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").into(),
                l["bootstrapServers"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn balanced(mut c: Cluster, ids: &[i32]) -> Cluster {
    c.status = Some(ClusterStatus {
        balanced_brokers: ids.to_vec(),
        ..ClusterStatus::default()
    });
    c
}

#[tokio::test]
async fn node_ports_are_allocated_before_the_config_that_advertises_them() {
    let journal = Journal::default();
    let c = test_support::with_external(test_support::cluster(3), ExternalType::NodePort);
    let (result, calls) = run_with(
        c,
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
        external_services(false),
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    let service = journal
        .position("k8s PATCH /api/v1/namespaces/kafka/services/spate-2-external?")
        .expect("external Service applied");
    let config = journal
        .position("k8s PATCH /api/v1/namespaces/kafka/configmaps/spate-config?")
        .expect("ConfigMap applied");
    assert!(service < config, "{:?}", journal.entries());
    for id in 0..3 {
        let props = properties(&calls, id);
        let advertised = format!(
            "advertised.listeners=PLAINTEXT://spate-{id}.spate-brokers.kafka.svc:9092,EXTERNAL://${{env:SPATE_NODE_IP}}:{}\n",
            31001 + id
        );
        assert!(props.contains(&advertised), "{props}");
    }
    let pod = calls
        .iter()
        .find(|c| c.path.starts_with("/api/v1/namespaces/kafka/pods/spate-0?"))
        .expect("pod applied");
    let env = &pod.body["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["name"], "SPATE_NODE_IP");
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    let svc = calls
        .iter()
        .find(|c| {
            c.path
                .starts_with("/api/v1/namespaces/kafka/services/spate-1-external?")
        })
        .expect("service applied");
    assert_eq!(svc.body["spec"]["ports"][0]["targetPort"], "external");
    assert_eq!(svc.body["spec"]["selector"]["spate.dev/broker-id"], "1");
}

#[tokio::test]
async fn node_port_cluster_reports_its_external_bootstrap_and_stays_put() {
    let journal = Journal::default();
    let c = balanced(
        test_support::with_external(test_support::cluster(3), ExternalType::NodePort),
        &[0, 1, 2],
    );
    // The pods already run with the node ports the Services keep.
    let endpoints: ExternalEndpoints = (0..3)
        .map(|id| {
            let host = "${env:SPATE_NODE_IP}".to_string();
            (
                id,
                external::ExternalEndpoint {
                    host,
                    port: 31001 + id,
                },
            )
        })
        .collect();
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    let (result, calls) = run_with(
        c.clone(),
        ready_pods_on_nodes(&c, &[0, 1, 2], &endpoints),
        claims(&c, &[0, 1, 2]),
        kafka,
        &journal,
        external_services(false),
    )
    .await;
    assert_eq!(
        result.expect("ok"),
        Action::requeue(Duration::from_secs(60))
    );
    assert!(deletes(&calls).is_empty(), "{:?}", deletes(&calls));
    let s = status(&calls);
    assert_eq!(condition(&s, RECONCILING).1, "Idle");
    assert_eq!(
        listeners(&s),
        [
            ("internal".into(), "spate-bootstrap.kafka.svc:9092".into()),
            (
                "external".into(),
                "10.0.0.0:31000,10.0.0.1:31000,10.0.0.2:31000".into()
            ),
        ]
    );
}

/// A balanced 3-broker Cluster with a LoadBalancer listener, its pods started while the
/// load balancers had no address, reconciled once with (`assigned`) or without addresses.
async fn reconcile_load_balancer(assigned: bool) -> (Result<Action>, Vec<ApiCall>) {
    let journal = Journal::default();
    let c = balanced(
        test_support::with_external(test_support::cluster(3), ExternalType::LoadBalancer),
        &[0, 1, 2],
    );
    let kafka = FakeKafka::new(3, journal.clone()).with_topic("orders", 3, 3);
    run_with(
        c.clone(),
        ready_pods_on_nodes(&c, &[0, 1, 2], &ExternalEndpoints::new()),
        claims(&c, &[0, 1, 2]),
        kafka,
        &journal,
        external_services(assigned),
    )
    .await
}

#[tokio::test]
async fn load_balancer_without_an_address_is_waited_for_without_external_config() {
    let (result, calls) = reconcile_load_balancer(false).await;
    assert_eq!(result.expect("ok"), Action::requeue(PROGRESS_REQUEUE));
    for id in 0..3 {
        let props = properties(&calls, id);
        assert!(!props.contains("EXTERNAL"), "{props}");
        assert!(props.contains("\nlisteners=0.0.0.0:9092\n"), "{props}");
    }
    assert!(deletes(&calls).is_empty(), "nothing to roll yet");
    let s = status(&calls);
    let (reconciling, reason, message) = condition(&s, RECONCILING);
    assert_eq!(
        (reconciling.as_str(), reason.as_str()),
        ("True", "WaitingForExternalAddress")
    );
    assert!(message.contains("spate-0-external"), "{message}");
    assert_eq!(
        condition(&s, READY).0,
        "True",
        "in-cluster clients are served"
    );
    assert_eq!(listeners(&s).len(), 1, "no external bootstrap yet");
}

#[tokio::test]
async fn load_balancer_address_is_advertised_and_rolls_the_brokers() {
    let (_, calls) = reconcile_load_balancer(true).await;
    for id in 0..3 {
        let props = properties(&calls, id);
        let advertised = format!(
            "advertised.listeners=PLAINTEXT://spate-{id}.spate-brokers.kafka.svc:9092,EXTERNAL://203.0.113.{}:19092\n",
            id + 10
        );
        assert!(props.contains(&advertised), "{props}");
        assert!(props.contains("inter.broker.listener.name=PLAINTEXT\n"));
    }
    assert_eq!(deletes(&calls).len(), 1, "one broker at a time");
    assert!(deletes(&calls)[0].starts_with("/api/v1/namespaces/kafka/pods/spate-"));
    let s = status(&calls);
    assert_eq!(condition(&s, RECONCILING).1, "Rolling");
    assert!(listeners(&s).contains(&("external".into(), "203.0.113.1:19092".into())));
}

#[tokio::test]
async fn external_services_no_longer_wanted_are_deleted() {
    let journal = Journal::default();
    let with = test_support::with_external(test_support::cluster(2), ExternalType::NodePort);
    // Broker 2 was removed; its Service and the others are what a list returns.
    let stale: Vec<Value> = services::external(&with, &[0, 1, 2])
        .into_iter()
        .map(|s| serde_json::to_value(s).expect("service json"))
        .collect();
    let listed = stale.clone();
    let answer = move |call: &ApiCall| {
        (call.method == "GET" && call.path.contains("spate.dev%2Flistener%3Dexternal"))
            .then(|| (200, list(listed.clone())))
            .or_else(|| external_services(false)(call))
    };
    let (_, calls) = run_with(
        with.clone(),
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
        answer.clone(),
    )
    .await;
    let d = deletes(&calls);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("/api/v1/namespaces/kafka/services/spate-2-external?"));

    // The listener removed from the spec: every external Service goes, and the
    // brokers' config is the single-listener one again.
    let (_, calls) = run_with(
        test_support::cluster(2),
        vec![],
        vec![],
        FakeKafka::new(0, journal.clone()),
        &journal,
        answer,
    )
    .await;
    assert_eq!(deletes(&calls).len(), 4, "{:?}", deletes(&calls));
    assert!(!properties(&calls, 0).contains("EXTERNAL"));
}
