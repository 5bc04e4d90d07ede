//! Scenarios: the User reconciler against a mock API server and an in-memory cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};
use spate_auth::acl::{Operation, PatternType, Permission, ResourceType};
use spate_auth::ScramCredential;

use super::*;
use crate::kafka::{AclBinding, ScramUpsert};
use crate::reconcilers::fixtures::{
    cluster_json, context, default_reply, finish, merge, not_found, ApiCall, FakeKafka, Journal,
    Logs,
};

const USERS: &str = "/apis/spate.dev/v1alpha1/namespaces/default/users/alice";
const SECRETS: &str = "/api/v1/namespaces/default/secrets/";

fn user_json(extra: Value) -> Value {
    let mut u = json!({
        "apiVersion": "spate.dev/v1alpha1",
        "kind": "User",
        "metadata": {"name": "alice", "namespace": "default", "uid": "u-uid",
                     "generation": 1, "finalizers": [FINALIZER]},
        "spec": {
            "clusterRef": "spate",
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
                {"resource": {"type": "group", "name": "app-", "patternType": "prefix"}, "operations": ["Read"]}
            ]},
            "quotas": {"producerByteRate": 1048576, "requestPercentage": 50.0}
        }
    });
    merge(&mut u, extra);
    u
}

fn parse(user: &Value) -> User {
    serde_json::from_value(user.clone()).expect("user parses")
}

/// The Secret the operator would have written for `user` with `password`.
fn owned_secret(user: &Value, password: &str) -> Value {
    let u = parse(user);
    let data = secret::scram_data("alice", &secret::Password::from(password.to_string()));
    serde_json::to_value(secret::build(&u, data)).expect("secret json")
}

/// A Secret of someone else's, with `key: value`.
fn plain_secret(name: &str, key: &str, value: &str) -> Value {
    serde_json::to_value(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            k8s_openapi::ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
    .expect("secret json")
}

/// Answers like an API server holding the Cluster (unless `cluster` is false), `secrets`
/// and the user.
fn api(
    user: Value,
    cluster: bool,
    secrets: BTreeMap<String, Value>,
) -> impl FnMut(&ApiCall) -> (u16, Value) {
    move |call| {
        if call.method == "GET"
            && call
                .path
                .starts_with("/apis/spate.dev/v1alpha1/namespaces/default/clusters/spate")
        {
            if cluster {
                (200, cluster_json())
            } else {
                not_found()
            }
        } else if call.method == "GET" && call.path.starts_with(SECRETS) {
            let name = &call.path[SECRETS.len()..];
            secrets
                .get(name)
                .map(|s| (200, s.clone()))
                .unwrap_or_else(not_found)
        } else if call.method == "GET" {
            not_found()
        } else {
            default_reply(call, &user)
        }
    }
}

struct Run {
    result: Result<Action>,
    calls: Vec<ApiCall>,
}

impl Run {
    fn status(&self) -> Value {
        self.calls
            .iter()
            .find(|c| c.method == "PATCH" && c.path.starts_with(&format!("{USERS}/status?")))
            .map(|c| c.body["status"].clone())
            .expect("status was patched")
    }

    fn ready(&self) -> (String, String) {
        let status = self.status();
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .expect("Ready condition");
        (
            c["status"].as_str().unwrap_or("").into(),
            c["reason"].as_str().unwrap_or("").into(),
        )
    }

    /// `(reason, note)` of every Event.
    fn events(&self) -> Vec<(String, String)> {
        self.calls
            .iter()
            .filter(|c| c.method == "POST" && c.path.contains("/events"))
            .map(|c| {
                (
                    c.body["reason"].as_str().unwrap_or("").into(),
                    c.body["note"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    fn reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|(r, _)| r).collect()
    }

    /// The applied user Secret, if one was applied.
    fn secret(&self) -> Option<Secret> {
        self.calls
            .iter()
            .find(|c| c.method == "PATCH" && c.path.starts_with(&format!("{SECRETS}alice?")))
            .map(|c| serde_json::from_value(c.body.clone()).expect("secret body"))
    }

    fn finalizer_removed(&self) -> bool {
        self.calls.iter().any(|c| {
            c.method == "PATCH"
                && c.path.starts_with(&format!("{USERS}?"))
                && c.body.as_array().is_some_and(|ops| {
                    ops.iter()
                        .any(|op| op["op"] == "remove" && op["path"] == "/metadata/finalizers/0")
                })
        })
    }
}

async fn run_with(
    user: Value,
    kafka: FakeKafka,
    journal: &Journal,
    cluster: bool,
    secrets: BTreeMap<String, Value>,
) -> Run {
    let (ctx, server) = context(kafka, journal);
    let server = server.run(api(user.clone(), cluster, secrets));
    let result = reconcile(Arc::new(parse(&user)), ctx).await;
    Run {
        result,
        calls: finish(server).await,
    }
}

async fn run(user: Value, kafka: FakeKafka, journal: &Journal) -> Run {
    run_with(user, kafka, journal, true, BTreeMap::new()).await
}

fn data(secret: &Secret, key: &str) -> String {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("secret has {key}"));
    String::from_utf8(bytes.0.clone()).expect("utf-8")
}

/// Whether `credential` logs in with `password`.
fn logs_in(credential: &ScramUpsert, password: &str) -> bool {
    ScramCredential::from_salted_password(
        credential.mechanism,
        &credential.salted_password,
        credential.salt.clone(),
        credential.iterations,
    )
    .matches_password(credential.mechanism, password.as_bytes())
}

fn acl(rt: ResourceType, name: &str, pt: PatternType, op: Operation) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission: Permission::Allow,
    }
}

fn spec_acls() -> BTreeSet<AclBinding> {
    BTreeSet::from([
        acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Read,
        ),
        acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Describe,
        ),
        acl(
            ResourceType::Group,
            "app-",
            PatternType::Prefixed,
            Operation::Read,
        ),
    ])
}

#[tokio::test]
async fn new_user_gets_its_finalizer_before_anything_else() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let mut u = user_json(json!({}));
    u["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("finalizers");
    let run = run(u, kafka, &journal).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(run.calls.len(), 1);
    assert!(run.calls[0].path.starts_with(&format!("{USERS}?")));
    assert!(journal.kafka().is_empty());
}

#[tokio::test]
async fn created_scram_user_gets_secret_credential_acls_and_quotas() {
    let (logs, _guard) = Logs::capture();
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let run = run(user_json(json!({})), kafka.clone(), &journal).await;
    assert_eq!(
        run.result.as_ref().ok(),
        Some(&Action::requeue(Duration::from_secs(60)))
    );

    // The Secret: generated password, login config, labels, owner.
    let secret = run.secret().expect("secret applied");
    let password = data(&secret, KEY_PASSWORD);
    assert_eq!(password.len(), 32);
    assert_eq!(data(&secret, KEY_USERNAME), "alice");
    assert_eq!(
        data(&secret, KEY_JAAS),
        format!("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"{password}\";")
    );
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["spate.dev/cluster"], "spate");
    assert_eq!(labels["spate.dev/kind"], "user");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "spate-operator");
    let owner = &secret.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        ("u-uid", Some(true))
    );

    // The cluster: credential for that password, ACLs and quotas of the spec.
    let state = kafka.state.lock().expect("lock");
    let creds = &state.scram["alice"];
    assert_eq!(creds.len(), 1);
    let cred = &creds[&ScramMechanism::Sha512];
    assert_eq!(cred.iterations, 4096);
    assert!(
        logs_in(cred, &password),
        "the credential matches the Secret"
    );
    assert_eq!(state.acls, spec_acls());
    assert_eq!(
        state.user_quotas["alice"],
        BTreeMap::from([
            ("producer_byte_rate".to_string(), 1_048_576.0),
            ("request_percentage".to_string(), 50.0),
        ])
    );
    drop(state);
    // The Secret is written before the credential that needs it.
    let applied = journal
        .position(&format!("k8s PATCH {SECRETS}alice?"))
        .expect("secret");
    let upserted = journal
        .position("kafka AlterUserScramCredentials upsert alice SCRAM-SHA-512")
        .expect("credential");
    assert!(applied < upserted, "{:?}", journal.entries());

    let status = run.status();
    assert_eq!(run.ready(), ("True".into(), "Ready".into()));
    assert_eq!(status["username"], "alice");
    assert_eq!(status["secret"], "alice");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        run.reasons(),
        vec![
            "SecretCreated",
            "CredentialCreated",
            "AclsChanged",
            "QuotasChanged"
        ]
    );
    assert!(run
        .events()
        .contains(&("AclsChanged".into(), "Added 3 ACLs of User:alice".into())));

    // The password is in the Secret only: not in status, Events or logs.
    assert!(!status.to_string().contains(&password));
    for (_, note) in run.events() {
        assert!(!note.contains(&password), "{note}");
    }
    assert!(logs.lines_with(&password).is_empty());
    assert!(!logs.lines_with("reason=\"AclsSynced\"").is_empty());
}

#[tokio::test]
async fn a_generated_password_is_kept_and_rewritten_every_pass() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let u = user_json(json!({}));
    let secrets = BTreeMap::from([("alice".to_string(), owned_secret(&u, "kept-password"))]);
    let first = run_with(u.clone(), kafka.clone(), &journal, true, secrets.clone()).await;
    assert!(first.result.is_ok(), "{:?}", first.result);
    let applied = first.secret().expect("secret applied again");
    assert_eq!(data(&applied, KEY_PASSWORD), "kept-password");
    assert!(!first.reasons().contains(&"SecretCreated".to_string()));
    let salt = {
        let state = kafka.state.lock().expect("lock");
        let cred = &state.scram["alice"][&ScramMechanism::Sha512];
        assert!(logs_in(cred, "kept-password"));
        cred.salt.clone()
    };

    // Nothing changed: the credential is written again (with a fresh salt), without Events.
    let second = run_with(u, kafka.clone(), &journal, true, secrets).await;
    assert!(second.result.is_ok());
    assert!(second.events().is_empty(), "{:?}", second.events());
    let state = kafka.state.lock().expect("lock");
    let cred = &state.scram["alice"][&ScramMechanism::Sha512];
    assert!(logs_in(cred, "kept-password"));
    assert_ne!(cred.salt, salt);
    let upserts = journal
        .kafka()
        .iter()
        .filter(|e| e.starts_with("AlterUserScramCredentials upsert"))
        .count();
    assert_eq!(upserts, 2);
}

#[tokio::test]
async fn drift_on_the_cluster_is_undone() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let stray = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        Operation::Write,
    );
    let others = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        Operation::Read,
    );
    let others = AclBinding {
        principal: "User:bob".into(),
        ..others
    };
    {
        let mut s = kafka.state.lock().expect("lock");
        // One spec ACL missing (Describe on orders), one added by hand, one of another user.
        s.acls = spec_acls()
            .into_iter()
            .filter(|b| b.operation != Operation::Describe)
            .collect();
        s.acls.insert(stray.clone());
        s.acls.insert(others.clone());
        // A quota changed, one added by hand; the credential deleted by hand.
        s.user_quotas.insert(
            "alice".into(),
            BTreeMap::from([
                ("producer_byte_rate".to_string(), 1.0),
                ("request_percentage".to_string(), 50.0),
                ("consumer_byte_rate".to_string(), 99.0),
            ]),
        );
    }
    // The last pass left this generation Ready.
    let u = user_json(json!({"status": {
        "observedGeneration": 1, "username": "alice", "secret": "alice",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }}));
    let secrets = BTreeMap::from([("alice".to_string(), owned_secret(&u, "kept-password"))]);
    let run = run_with(u, kafka.clone(), &journal, true, secrets).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(
        journal.kafka(),
        vec![
            "AlterUserScramCredentials upsert alice SCRAM-SHA-512 iterations=4096".to_string(),
            "DeleteAcls Topic:orders:Literal User:alice Allow Write *".to_string(),
            "CreateAcls Topic:orders:Literal User:alice Allow Describe *".to_string(),
            "AlterClientQuotas user=alice set=[producer_byte_rate=1048576] remove=[consumer_byte_rate]"
                .to_string(),
        ]
    );
    let state = kafka.state.lock().expect("lock");
    let mut want = spec_acls();
    want.insert(others);
    assert_eq!(state.acls, want, "another principal's ACL stays");
    assert!(logs_in(
        &state.scram["alice"][&ScramMechanism::Sha512],
        "kept-password"
    ));
    drop(state);
    let events = run.events();
    assert!(events.contains(&(
        "CredentialRestored".into(),
        "Restored the missing SCRAM-SHA-512 credential of alice".into()
    )));
    assert!(events.contains(&(
        "AclsChanged".into(),
        "Added 1 ACL and removed 1 ACL of User:alice".into()
    )));
    assert!(events.contains(&(
        "QuotasChanged".into(),
        "Set quotas producer_byte_rate=1048576 and removed consumer_byte_rate of user alice".into()
    )));
    assert_eq!(run.ready(), ("True".into(), "Ready".into()));
}

#[tokio::test]
async fn switching_mechanism_deletes_the_other_credential() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    kafka.state.lock().expect("lock").scram.insert(
        "alice".into(),
        BTreeMap::from([(
            ScramMechanism::Sha512,
            ScramUpsert::new(ScramMechanism::Sha512, "old", 4096),
        )]),
    );
    let u = user_json(json!({"spec": {"authentication": {"type": "scram-sha-256"}}}));
    let run = run(u, kafka.clone(), &journal).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    let kafka_calls = journal.kafka();
    assert_eq!(
        &kafka_calls[..2],
        &[
            "AlterUserScramCredentials delete alice SCRAM-SHA-512".to_string(),
            "AlterUserScramCredentials upsert alice SCRAM-SHA-256 iterations=4096".to_string(),
        ]
    );
    let state = kafka.state.lock().expect("lock");
    assert_eq!(
        state.scram["alice"].keys().copied().collect::<Vec<_>>(),
        vec![ScramMechanism::Sha256]
    );
    drop(state);
    assert!(run.reasons().contains(&"CredentialDeleted".to_string()));
}

#[tokio::test]
async fn a_referenced_password_is_used_and_a_missing_one_reported() {
    let u = user_json(json!({"spec": {"authentication": {"password": {"valueFrom":
        {"secretKeyRef": {"name": "alice-pw", "key": "password"}}}}}}));

    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let run_missing = run(u.clone(), kafka.clone(), &journal).await;
    assert!(run_missing.result.is_ok(), "{:?}", run_missing.result);
    assert_eq!(
        run_missing.ready(),
        ("False".into(), "PasswordSecretNotFound".into())
    );
    assert!(run_missing.secret().is_none());
    assert!(journal.kafka().is_empty(), "{:?}", journal.kafka());

    let secrets = BTreeMap::from([(
        "alice-pw".to_string(),
        plain_secret("alice-pw", "password", "chosen-by-alice"),
    )]);
    let run = run_with(u, kafka.clone(), &journal, true, secrets).await;
    assert_eq!(run.ready(), ("True".into(), "Ready".into()));
    let secret = run.secret().expect("secret");
    assert_eq!(data(&secret, KEY_PASSWORD), "chosen-by-alice");
    assert!(logs_in(
        &kafka.state.lock().expect("lock").scram["alice"][&ScramMechanism::Sha512],
        "chosen-by-alice"
    ));
    assert!(run.events().contains(&(
        "SecretCreated".into(),
        "Created Secret alice with the password from Secret alice-pw key password".into()
    )));
}

#[tokio::test]
async fn acls_on_a_cluster_without_authorizer_are_reported() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    kafka.state.lock().expect("lock").no_authorizer = true;
    let with_acls = run(user_json(json!({})), kafka.clone(), &journal).await;
    assert!(with_acls.result.is_ok(), "{:?}", with_acls.result);
    assert_eq!(
        with_acls.ready(),
        ("False".into(), "AuthorizationDisabled".into())
    );
    assert!(journal.kafka().iter().all(|c| !c.starts_with("CreateAcls")));

    // Without ACLs in the spec, no authorizer is fine.
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    kafka.state.lock().expect("lock").no_authorizer = true;
    let mut u = user_json(json!({}));
    u["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("authorization");
    let without = run(u, kafka, &journal).await;
    assert_eq!(without.ready(), ("True".into(), "Ready".into()));
}

#[tokio::test]
async fn a_secret_that_is_not_ours_is_left_alone() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let secrets = BTreeMap::from([(
        "alice".to_string(),
        plain_secret("alice", "password", "someone-elses"),
    )]);
    let run = run_with(user_json(json!({})), kafka, &journal, true, secrets).await;
    assert_eq!(run.ready(), ("False".into(), "SecretConflict".into()));
    assert!(run.secret().is_none());
    assert!(journal.kafka().is_empty());
}

#[tokio::test]
async fn missing_or_unreachable_cluster_is_reported_in_a_condition() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let run = run_with(
        user_json(json!({})),
        kafka.clone(),
        &journal,
        false,
        BTreeMap::new(),
    )
    .await;
    assert!(run.result.is_ok());
    assert_eq!(run.ready(), ("False".into(), "ClusterNotFound".into()));

    kafka.state.lock().expect("lock").reachable = false;
    let run = run_with(user_json(json!({})), kafka, &journal, true, BTreeMap::new()).await;
    assert_eq!(
        run.result.as_ref().ok(),
        Some(&Action::requeue(Duration::from_secs(10)))
    );
    assert_eq!(run.ready(), ("False".into(), "ClusterUnreachable".into()));
    assert!(run.secret().is_none());
}

#[tokio::test]
async fn tls_users_wait_for_the_clients_ca_and_lose_scram_credentials() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    kafka.state.lock().expect("lock").scram.insert(
        "alice".into(),
        BTreeMap::from([(
            ScramMechanism::Sha512,
            ScramUpsert::new(ScramMechanism::Sha512, "old", 4096),
        )]),
    );
    let u = user_json(json!({"spec": {"authentication": {"type": "tls"}}}));
    let run = run(u, kafka.clone(), &journal).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(
        run.ready(),
        ("False".into(), "CertificateAuthorityNotReady".into())
    );
    assert!(kafka.state.lock().expect("lock").scram.is_empty());
    assert!(run.secret().is_none());
}

fn deleting() -> Value {
    user_json(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}))
}

#[tokio::test]
async fn deleted_user_loses_credentials_acls_and_quotas_before_the_finalizer_goes() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let bob = AclBinding {
        principal: "User:bob".into(),
        ..acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Read,
        )
    };
    {
        let mut s = kafka.state.lock().expect("lock");
        s.scram.insert(
            "alice".into(),
            BTreeMap::from([(
                ScramMechanism::Sha512,
                ScramUpsert::new(ScramMechanism::Sha512, "pw", 4096),
            )]),
        );
        s.acls = spec_acls();
        s.acls.insert(bob.clone());
        s.user_quotas.insert(
            "alice".into(),
            BTreeMap::from([("producer_byte_rate".to_string(), 1024.0)]),
        );
    }
    let run = run(deleting(), kafka.clone(), &journal).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert!(run.finalizer_removed());
    let s = kafka.state.lock().expect("lock");
    assert!(s.scram.is_empty());
    assert_eq!(s.acls, BTreeSet::from([bob]), "only alice's ACLs go");
    assert!(s.user_quotas.is_empty());
    drop(s);
    let released = journal
        .entries()
        .iter()
        .rposition(|e| e.starts_with(&format!("k8s PATCH {USERS}?")))
        .expect("released");
    for call in [
        "kafka AlterUserScramCredentials delete alice SCRAM-SHA-256",
        "kafka AlterUserScramCredentials delete alice SCRAM-SHA-512",
        "kafka DeleteAcls",
        "kafka AlterClientQuotas user=alice set=[] remove=[producer_byte_rate]",
    ] {
        let at = journal.position(call).unwrap_or_else(|| panic!("{call}"));
        assert!(at < released, "{call} before the finalizer goes");
    }
    assert!(run.events().contains(&(
        "UserDeleted".into(),
        "Deleted the SCRAM credentials of Kafka user alice, 3 ACLs of User:alice and quotas producer_byte_rate".into()
    )));
}

#[tokio::test]
async fn deleted_user_of_a_missing_cluster_only_drops_the_finalizer() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    let run = run_with(deleting(), kafka, &journal, false, BTreeMap::new()).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert!(run.finalizer_removed());
    assert!(journal.kafka().is_empty());
}

#[tokio::test]
async fn deleting_without_authorizer_still_cleans_up_the_rest() {
    let journal = Journal::default();
    let kafka = FakeKafka::new(1, journal.clone());
    {
        let mut s = kafka.state.lock().expect("lock");
        s.no_authorizer = true;
        s.scram.insert(
            "alice".into(),
            BTreeMap::from([(
                ScramMechanism::Sha256,
                ScramUpsert::new(ScramMechanism::Sha256, "pw", 4096),
            )]),
        );
    }
    let run = run(deleting(), kafka.clone(), &journal).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert!(run.finalizer_removed());
    assert!(kafka.state.lock().expect("lock").scram.is_empty());
}
