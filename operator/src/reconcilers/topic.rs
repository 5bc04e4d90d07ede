//! The Topic reconciler: makes the Kafka topic match its resource.
//!
//! Every pass (and every `resync` while nothing changes) it reads the topic from the
//! cluster, creates it or raises its partition count, sets config overrides to exactly
//! `spec.config`, and writes what it saw to `status`. Problems that retrying soon will not fix
//! (cluster missing or unreachable, spec refused by the brokers, a second resource claiming
//! the same topic) are reported as `Ready=False` with a reason, not as reconcile errors. A
//! finalizer deletes the topic with the resource (`deletionPolicy: Delete`) or leaves it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::ResourceExt;

use super::{apply_status, Context};
use crate::crd::conditions::{self, READY};
use crate::crd::topic::DeletionPolicy;
use crate::crd::{Cluster, Topic};
use crate::kafka::{codes, KafkaAdmin, NewTopic, TopicInfo};
use crate::{Error, Result};

/// Finalizer that deletes (or releases) the Kafka topic.
pub const FINALIZER: &str = "spate.dev/topic";

pub use super::problem::Problem;

/// What the cluster reported after the pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    topic_id: String,
    partitions: i32,
    replication_factor: i32,
    under_replicated: i32,
    /// Changes made in this pass, for the condition message.
    changes: Vec<String>,
}

/// Controller entry point.
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile("Topic");
    let ns = topic
        .namespace()
        .ok_or_else(|| Error::Invalid("Topic must be namespaced".into()))?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(&t, &api, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(topic: &Topic, api: &Api<Topic>, ctx: &Context) -> Result<Action> {
    let result = sync(topic, ctx).await?;
    let mut status = topic.status.clone().unwrap_or_default();
    status.observed_generation = topic.metadata.generation;
    let now = Timestamp::now();
    let action = match &result {
        Ok(seen) => {
            status.topic_id = Some(seen.topic_id.clone());
            status.partitions = Some(seen.partitions);
            status.replication_factor = Some(seen.replication_factor);
            status.under_replicated_partitions = Some(seen.under_replicated);
            let (ok, reason, message) = if seen.replication_factor != topic.spec.replication_factor
            {
                (
                    false,
                    "ReplicationFactorMismatch",
                    format!(
                        "topic has replication factor {} but spec asks for {}; changing it is not supported yet",
                        seen.replication_factor, topic.spec.replication_factor
                    ),
                )
            } else if seen.changes.is_empty() {
                (true, "Synced", "topic matches spec".to_string())
            } else {
                (true, "Synced", seen.changes.join("; "))
            };
            if !ok {
                warn_problem(topic, reason, &message);
            }
            conditions::set(
                &mut status.conditions,
                READY,
                ok,
                reason,
                message,
                topic.metadata.generation,
                now,
            );
            Action::requeue(ctx.resync)
        }
        Err(problem) => {
            warn_problem(topic, problem.reason, &problem.message);
            conditions::set(
                &mut status.conditions,
                READY,
                false,
                problem.reason,
                problem.message.clone(),
                topic.metadata.generation,
                now,
            );
            Action::requeue(problem.retry)
        }
    };
    apply_status(api, topic, &status).await?;
    Ok(action)
}

/// Logs why the topic does not match its spec (the `Ready=False` reason and message).
fn warn_problem(topic: &Topic, reason: &str, message: &str) {
    let (kind, namespace, name) = super::log_identity(topic);
    tracing::warn!(%kind, namespace, name, reason, topic = %topic.topic_name(),
        cluster = %topic.spec.cluster_ref, "{message}");
}

/// Finds the topic's cluster and opens an admin session to it.
async fn connect(
    topic: &Topic,
    ctx: &Context,
) -> Result<Result<(Cluster, Arc<dyn KafkaAdmin>), Problem>> {
    let ns = topic.namespace().unwrap_or_default();
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&topic.spec.cluster_ref).await? else {
        return Ok(Err(Problem::new(
            "ClusterNotFound",
            format!("Cluster {ns}/{} does not exist", topic.spec.cluster_ref),
        )));
    };
    match super::access::cluster_admin(ctx, &cluster).await {
        Ok(admin) => Ok(Ok((cluster, admin))),
        Err(e) => Ok(Err(Problem::from_kafka("ClusterUnreachable", &e))),
    }
}

/// The older resource that already claims this topic on this cluster, if any.
fn claimed_by_other(topic: &Topic, ctx: &Context) -> Option<String> {
    let store = ctx.topics.as_ref()?;
    let key = |t: &Topic| {
        (
            t.metadata.creation_timestamp.clone().map(|ts| ts.0),
            t.name_any(),
        )
    };
    store
        .state()
        .into_iter()
        .filter(|o| {
            o.namespace() == topic.namespace()
                && o.name_any() != topic.name_any()
                && o.spec.cluster_ref == topic.spec.cluster_ref
                && o.topic_name() == topic.topic_name()
                && o.metadata.deletion_timestamp.is_none()
        })
        .filter(|o| key(o) < key(topic))
        .map(|o| o.name_any())
        .min()
}

/// One pass: `Err` for Kubernetes failures, `Ok(Err(problem))` for conditions to report.
async fn sync(topic: &Topic, ctx: &Context) -> Result<Result<Observed, Problem>> {
    let name = topic.topic_name();
    if let Some(other) = claimed_by_other(topic, ctx) {
        return Ok(Err(Problem::new(
            "DuplicateTopic",
            format!("Topic resource {other} already manages Kafka topic {name}"),
        )));
    }
    let admin = match connect(topic, ctx).await? {
        Ok((_, admin)) => admin,
        Err(p) => return Ok(Err(p)),
    };
    Ok(sync_with(topic, ctx, admin.as_ref(), &name).await)
}

async fn sync_with(
    topic: &Topic,
    ctx: &Context,
    admin: &dyn KafkaAdmin,
    name: &str,
) -> Result<Observed, Problem> {
    let md = admin
        .metadata(Some(vec![name.to_string()]))
        .await
        .map_err(|e| Problem::from_kafka("MetadataFailed", &e))?;
    let owned = topic
        .status
        .as_ref()
        .and_then(|s| s.topic_id.clone())
        .is_some();
    let mut changes = Vec::new();
    match md.topic(name) {
        None => create(topic, ctx, admin, name, &mut changes).await?,
        Some(existing) => {
            if !owned && !topic.spec.adopt {
                return Err(not_adopted(name));
            }
            grow_partitions(topic, admin, name, existing, &mut changes).await?;
            sync_config(topic, admin, name, &mut changes).await?;
        }
    }
    observe(admin, name, changes).await
}

/// Creates the topic. One created meanwhile by someone else is adopted if the spec allows.
async fn create(
    topic: &Topic,
    ctx: &Context,
    admin: &dyn KafkaAdmin,
    name: &str,
    changes: &mut Vec<String>,
) -> Result<(), Problem> {
    let spec = &topic.spec;
    let rf = i16::try_from(spec.replication_factor)
        .map_err(|_| Problem::new("InvalidSpec", "replicationFactor too large"))?;
    let new = NewTopic {
        name: name.to_string(),
        partitions: spec.partitions,
        replication_factor: rf,
        configs: spec.config.clone(),
    };
    match admin.create_topic(&new).await {
        Ok(_) => {
            changes.push(format!("created topic {name}"));
            ctx.event(
                topic,
                EventType::Normal,
                "TopicCreated",
                format!(
                    "Created topic {name} with {} partitions, replication factor {}",
                    spec.partitions, spec.replication_factor
                ),
            )
            .await;
        }
        Err(e) if e.code() == Some(codes::TOPIC_ALREADY_EXISTS) && spec.adopt => {
            decision!(
                topic,
                "TopicAdopted",
                topic = name,
                "the topic already existed (created concurrently); adopting it"
            );
        }
        Err(e) if e.code() == Some(codes::TOPIC_ALREADY_EXISTS) => {
            return Err(not_adopted(name));
        }
        Err(e) => {
            ctx.event(topic, EventType::Warning, "CreateFailed", e.to_string())
                .await;
            return Err(Problem::from_kafka("CreateFailed", &e));
        }
    }
    Ok(())
}

/// Raises the partition count to the spec's; Kafka cannot lower it, so that is refused.
async fn grow_partitions(
    topic: &Topic,
    admin: &dyn KafkaAdmin,
    name: &str,
    existing: &TopicInfo,
    changes: &mut Vec<String>,
) -> Result<(), Problem> {
    let want = topic.spec.partitions;
    let current = i32::try_from(existing.partitions.len()).unwrap_or(i32::MAX);
    if current > want {
        return Err(Problem::new(
            "PartitionsDecreaseRefused",
            format!("topic has {current} partitions; Kafka cannot reduce them to {want}"),
        ));
    }
    if current < want {
        admin
            .create_partitions(name, want)
            .await
            .map_err(|e| Problem::from_kafka("PartitionsRefused", &e))?;
        decision!(
            topic,
            "PartitionsAdded",
            topic = name,
            from = current,
            to = want,
            "added partitions"
        );
        changes.push(format!("partitions {current} -> {want}"));
    }
    Ok(())
}

/// Makes the topic's config overrides equal `spec.config`.
async fn sync_config(
    topic: &Topic,
    admin: &dyn KafkaAdmin,
    name: &str,
    changes: &mut Vec<String>,
) -> Result<(), Problem> {
    let configs = admin
        .describe_topic_configs(name)
        .await
        .map_err(|e| Problem::from_kafka("DescribeConfigsFailed", &e))?;
    let (set, delete) = config_diff(&topic.spec.config, &configs);
    if set.is_empty() && delete.is_empty() {
        return Ok(());
    }
    admin
        .alter_topic_configs(name, &set, &delete)
        .await
        .map_err(|e| Problem::from_kafka("ConfigRefused", &e))?;
    decision!(
        topic,
        "ConfigAltered",
        topic = name,
        set = ?set,
        reset = ?delete,
        "made the topic's config overrides equal spec.config",
    );
    changes.push(format!(
        "config set [{}] reset [{}]",
        set.keys().cloned().collect::<Vec<_>>().join(", "),
        delete.join(", ")
    ));
    Ok(())
}

/// The topic as the cluster reports it after this pass's `changes`.
async fn observe(
    admin: &dyn KafkaAdmin,
    name: &str,
    changes: Vec<String>,
) -> Result<Observed, Problem> {
    let md = admin
        .metadata(Some(vec![name.to_string()]))
        .await
        .map_err(|e| Problem::from_kafka("MetadataFailed", &e))?;
    let t = md.topic(name).ok_or_else(|| {
        Problem::new(
            "TopicMissing",
            format!("topic {name} not in metadata after creation"),
        )
    })?;
    Ok(Observed {
        topic_id: t.id.clone(),
        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
        replication_factor: t
            .partitions
            .first()
            .map(|p| i32::try_from(p.replicas.len()).unwrap_or(0))
            .unwrap_or(0),
        under_replicated: i32::try_from(md.under_replicated().len()).unwrap_or(i32::MAX),
        changes,
    })
}

fn not_adopted(name: &str) -> Problem {
    Problem::new(
        "TopicExists",
        format!("topic {name} already exists on the cluster and was not created by this resource; set spec.adopt: true to manage it"),
    )
}

/// Config changes that make the topic's overrides equal `desired`: values to set and
/// overrides to delete (reset to the broker default).
pub fn config_diff(
    desired: &BTreeMap<String, String>,
    current: &BTreeMap<String, crate::kafka::ConfigEntry>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = desired
        .iter()
        .filter(|(k, v)| {
            current
                .get(*k)
                .is_none_or(|c| !c.is_topic_override || c.value.as_deref() != Some(v.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete = current
        .iter()
        .filter(|(k, c)| c.is_topic_override && !desired.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    (set, delete)
}

async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action> {
    let name = topic.topic_name();
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            topic,
            EventType::Normal,
            "TopicRetained",
            format!("Kept Kafka topic {name} (deletionPolicy Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let owned = topic
        .status
        .as_ref()
        .and_then(|s| s.topic_id.clone())
        .is_some();
    if !owned && !topic.spec.adopt {
        // Never created or adopted by this resource (a duplicate, or an existing topic
        // left alone): deleting it would destroy someone else's data.
        decision!(
            topic,
            "TopicKept",
            topic = %name,
            "not deleting the Kafka topic: this resource never created or adopted it",
        );
        return Ok(Action::await_change());
    }
    let admin = match connect(topic, ctx).await? {
        Ok((cluster, admin)) if cluster.metadata.deletion_timestamp.is_none() => admin,
        // The cluster (and its data) is gone or going: nothing left to delete.
        Ok(_) => {
            decision!(
                topic,
                "ClusterDeleting",
                topic = %name,
                "not deleting the Kafka topic: its Cluster is being deleted",
            );
            return Ok(Action::await_change());
        }
        Err(p) if p.reason == "ClusterNotFound" => {
            decision!(
                topic,
                "ClusterNotFound",
                topic = %name,
                "not deleting the Kafka topic: its Cluster no longer exists",
            );
            return Ok(Action::await_change());
        }
        Err(p) => {
            return Err(Error::Invalid(format!(
                "cannot delete topic {name}: {}",
                p.message
            )))
        }
    };
    admin.delete_topic(&name).await?;
    ctx.event(
        topic,
        EventType::Normal,
        "TopicDeleted",
        format!("Deleted Kafka topic {name}"),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kafka::ConfigEntry;

    fn entry(v: &str, over: bool) -> ConfigEntry {
        ConfigEntry {
            value: Some(v.into()),
            is_topic_override: over,
        }
    }

    #[test]
    fn config_diff_sets_changed_values_and_resets_stray_overrides() {
        let desired = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("cleanup.policy".to_string(), "delete".to_string()),
        ]);
        let current = BTreeMap::from([
            ("retention.ms".to_string(), entry("604800000", false)),
            ("cleanup.policy".to_string(), entry("delete", true)),
            ("segment.bytes".to_string(), entry("1024", true)),
            ("flush.ms".to_string(), entry("1000", false)),
        ]);
        let (set, delete) = config_diff(&desired, &current);
        assert_eq!(
            set,
            BTreeMap::from([("retention.ms".to_string(), "1000".to_string())])
        );
        assert_eq!(delete, vec!["segment.bytes".to_string()]);
    }

    #[test]
    fn default_value_equal_to_desired_is_still_pinned_as_override() {
        let desired = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]);
        let current = BTreeMap::from([("cleanup.policy".to_string(), entry("delete", false))]);
        let (set, _) = config_diff(&desired, &current);
        assert_eq!(
            set.len(),
            1,
            "so a broker default change does not alter the topic"
        );
    }

    // ---- Scenarios: the reconciler against a mock API server and an in-memory cluster ----

    use crate::reconcilers::fixtures::{
        cluster_json, context, default_reply, finish, merge, not_found, FakeKafka, Journal, Logs,
    };
    use serde_json::{json, Value};

    fn topic_json(extra: Value) -> Value {
        let mut t = json!({
            "apiVersion": "spate.dev/v1alpha1",
            "kind": "Topic",
            "metadata": {"name": "orders", "namespace": "default", "uid": "t-uid",
                         "generation": 2, "finalizers": [FINALIZER]},
            "spec": {"clusterRef": "spate", "partitions": 3, "replicationFactor": 1,
                     "config": {"retention.ms": "3600000"}}
        });
        merge(&mut t, extra);
        t
    }

    /// Answers like an API server holding `cluster_json()` and the topic.
    fn api(topic: Value) -> impl FnMut(&crate::reconcilers::fixtures::ApiCall) -> (u16, Value) {
        move |call| {
            if call.method == "GET"
                && call
                    .path
                    .starts_with("/apis/spate.dev/v1alpha1/namespaces/default/clusters/spate")
            {
                (200, cluster_json())
            } else if call.method == "GET" {
                not_found()
            } else {
                default_reply(call, &topic)
            }
        }
    }

    async fn run(
        topic: Value,
        kafka: FakeKafka,
        journal: &Journal,
    ) -> (Result<Action>, Vec<crate::reconcilers::fixtures::ApiCall>) {
        let (ctx, server) = context(kafka, journal);
        let server = server.run(api(topic.clone()));
        let obj: Topic = serde_json::from_value(topic).expect("topic parses");
        let result = reconcile(Arc::new(obj), ctx).await;
        (result, finish(server).await)
    }

    fn status_patch(calls: &[crate::reconcilers::fixtures::ApiCall]) -> Value {
        calls
            .iter()
            .find(|c| {
                c.method == "PATCH"
                    && c.path.starts_with(
                        "/apis/spate.dev/v1alpha1/namespaces/default/topics/orders/status?",
                    )
            })
            .map(|c| c.body.clone())
            .expect("status was patched")
    }

    fn ready(status_body: &Value) -> (String, String) {
        let c = status_body["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .expect("Ready condition");
        (
            c["status"].as_str().unwrap_or("").into(),
            c["reason"].as_str().unwrap_or("").into(),
        )
    }

    #[tokio::test]
    async fn new_topic_gets_its_finalizer_before_anything_else() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone());
        let mut t = topic_json(json!({}));
        t["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("finalizers");
        let (result, calls) = run(t, kafka, &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].method, "PATCH");
        assert!(calls[0]
            .path
            .starts_with("/apis/spate.dev/v1alpha1/namespaces/default/topics/orders?"));
        let ops = calls[0].body.as_array().expect("json patch");
        assert!(ops.iter().any(|op| op["op"] == "add"
            && op["path"] == "/metadata/finalizers"
            && op["value"] == json!([FINALIZER])));
        assert!(
            journal.kafka().is_empty(),
            "no Kafka call before the finalizer is in place"
        );
    }

    #[tokio::test]
    async fn topic_created_sends_create_topics_and_reports_ready() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone());
        let (result, calls) = run(topic_json(json!({})), kafka, &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            journal.kafka(),
            vec!["CreateTopics orders partitions=3 rf=1 config=[retention.ms=3600000]".to_string()]
        );
        let event = calls
            .iter()
            .find(|c| c.method == "POST" && c.path.contains("/events"))
            .expect("event");
        assert_eq!(event.body["reason"], "TopicCreated");
        let body = status_patch(&calls);
        assert_eq!(ready(&body), ("True".into(), "Synced".into()));
        assert_eq!(body["status"]["topicId"], "id-orders");
        assert_eq!(body["status"]["partitions"], 3);
        assert_eq!(body["status"]["observedGeneration"], 2);
        assert_eq!(body["apiVersion"], "spate.dev/v1alpha1");
        let patch = calls
            .iter()
            .find(|c| c.path.contains("/status?"))
            .expect("status call");
        assert!(
            patch.path.contains("fieldManager=spate-operator") && patch.path.contains("force=true"),
            "{}",
            patch.path
        );
    }

    #[tokio::test]
    async fn drift_is_corrected_partitions_grow_and_stray_config_is_reset() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 2, 1);
        kafka.state.lock().expect("lock").configs.insert(
            "orders".into(),
            [("segment.bytes".to_string(), "1024".to_string())].into(),
        );
        let t = topic_json(json!({"status": {"topicId": "id-orders"}}));
        let (result, calls) = run(t, kafka, &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            journal.kafka(),
            vec![
                "CreatePartitions orders total=3".to_string(),
                "IncrementalAlterConfigs orders set=[retention.ms=3600000] delete=[segment.bytes]"
                    .to_string(),
            ]
        );
        let body = status_patch(&calls);
        assert_eq!(ready(&body).0, "True");
        assert_eq!(body["status"]["partitions"], 3);
    }

    #[tokio::test]
    async fn topic_decisions_are_logged_with_the_kafka_topic() {
        let (logs, _guard) = Logs::capture();
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 2, 1);
        kafka.state.lock().expect("lock").configs.insert(
            "orders".into(),
            [("segment.bytes".to_string(), "1024".to_string())].into(),
        );
        let t = topic_json(json!({"status": {"topicId": "id-orders"}}));
        let (result, _) = run(t, kafka.clone(), &journal).await;
        assert!(result.is_ok(), "{result:?}");
        let added = logs.lines_with("reason=\"PartitionsAdded\"");
        assert_eq!(added.len(), 1, "{added:?}");
        for want in [
            "kind=Topic",
            "namespace=\"default\"",
            "topic=\"orders\"",
            "from=2",
            "to=3",
        ] {
            assert!(added[0].contains(want), "{want} in {}", added[0]);
        }
        let altered = logs.lines_with("reason=\"ConfigAltered\"");
        assert_eq!(altered.len(), 1, "{altered:?}");
        assert!(
            altered[0].contains("reset=[\"segment.bytes\"]"),
            "{}",
            altered[0]
        );

        // A refusal is a warning with the condition's reason.
        let (_, _) = run(topic_json(json!({})), kafka.clone(), &journal).await;
        let refused = logs.lines_with("reason=\"TopicExists\"");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("WARN"), "{}", refused[0]);

        let (_, _) = run(deleting("Delete"), kafka, &journal).await;
        assert_eq!(logs.lines_with("reason=\"TopicDeleted\"").len(), 1);
    }

    #[tokio::test]
    async fn existing_topic_is_not_taken_over_without_adopt() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 3, 1);
        let (result, calls) = run(topic_json(json!({})), kafka, &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            journal.kafka().is_empty(),
            "nothing altered: {:?}",
            journal.kafka()
        );
        assert_eq!(
            ready(&status_patch(&calls)),
            ("False".into(), "TopicExists".into())
        );
    }

    #[tokio::test]
    async fn unreachable_cluster_is_reported_in_a_condition() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone());
        kafka.state.lock().expect("lock").reachable = false;
        let (result, calls) = run(topic_json(json!({})), kafka, &journal).await;
        let action = result.expect("a condition, not a reconcile error");
        assert_eq!(action, Action::requeue(Duration::from_secs(10)));
        let body = status_patch(&calls);
        assert_eq!(ready(&body), ("False".into(), "ClusterUnreachable".into()));
        let msg = body["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or("");
        assert!(msg.contains("spate-bootstrap.default.svc:9092"), "{msg}");
    }

    #[tokio::test]
    async fn missing_cluster_is_reported_in_a_condition() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone());
        let t = topic_json(json!({"spec": {"clusterRef": "nope"}}));
        let (result, calls) = run(t, kafka, &journal).await;
        assert!(result.is_ok());
        assert_eq!(
            ready(&status_patch(&calls)),
            ("False".into(), "ClusterNotFound".into())
        );
    }

    fn deleting(policy: &str) -> Value {
        topic_json(json!({
            "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"deletionPolicy": policy},
            "status": {"topicId": "id-orders"}
        }))
    }

    fn finalizer_removed(calls: &[crate::reconcilers::fixtures::ApiCall]) -> bool {
        calls.iter().any(|c| {
            c.method == "PATCH"
                && c.path
                    .starts_with("/apis/spate.dev/v1alpha1/namespaces/default/topics/orders?")
                && c.body.as_array().is_some_and(|ops| {
                    ops.iter()
                        .any(|op| op["op"] == "remove" && op["path"] == "/metadata/finalizers/0")
                })
        })
    }

    #[tokio::test]
    async fn deleted_topic_with_delete_policy_is_deleted_then_finalizer_removed() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 3, 1);
        let (result, calls) = run(deleting("Delete"), kafka.clone(), &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(journal.kafka(), vec!["DeleteTopics orders".to_string()]);
        assert!(finalizer_removed(&calls));
        let deleted = journal.position("kafka DeleteTopics").expect("deleted");
        let released = journal
            .entries()
            .iter()
            .rposition(|e| {
                e.starts_with(
                    "k8s PATCH /apis/spate.dev/v1alpha1/namespaces/default/topics/orders?",
                )
            })
            .expect("released");
        assert!(
            deleted < released,
            "topic deleted before the finalizer goes: {:?}",
            journal.entries()
        );
        assert!(kafka.state.lock().expect("lock").topics.is_empty());
    }

    #[tokio::test]
    async fn deleted_topic_with_retain_policy_only_removes_finalizer() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 3, 1);
        let (result, calls) = run(deleting("Retain"), kafka.clone(), &journal).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(journal.kafka().is_empty(), "{:?}", journal.kafka());
        assert!(finalizer_removed(&calls));
        assert!(calls
            .iter()
            .any(|c| c.method == "POST" && c.body["reason"] == "TopicRetained"));
        assert!(kafka
            .state
            .lock()
            .expect("lock")
            .topics
            .contains_key("orders"));
    }

    #[tokio::test]
    async fn deleting_a_resource_that_never_owned_the_topic_keeps_the_topic() {
        let journal = Journal::default();
        let kafka = FakeKafka::new(1, journal.clone()).with_topic("orders", 3, 1);
        let mut t = deleting("Delete");
        t.as_object_mut().expect("obj").remove("status");
        let (result, calls) = run(t, kafka, &journal).await;
        assert!(result.is_ok());
        assert!(journal.kafka().is_empty());
        assert!(finalizer_removed(&calls));
    }
}
