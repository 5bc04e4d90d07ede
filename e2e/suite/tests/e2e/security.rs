//! The secured-cluster step: a Cluster whose listener speaks TLS + SCRAM-SHA-512 with ACLs,
//! `User` resources, revocation and a certificate renewal under load.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context as _, Result};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use spate_e2e::kafka::{self, Producer};
use spate_e2e::{say, wait_for};

use super::Suite;

/// The secured Cluster's name.
pub const SECURE: &str = "secure";
const TOPIC: &str = "payments";
/// Records produced at 20/s across the renewal: a minute, several times a two-broker roll.
const RENEWAL_RECORDS: usize = 1200;

impl Suite {
    /// Every step of the secured-cluster scenario.
    pub(super) async fn secured_cluster(&mut self) -> Result<()> {
        self.h
            .apply(&format!(
                r#"apiVersion: spate.dev/v1alpha1
kind: Cluster
metadata: {{name: {SECURE}}}
spec:
  replicas: 2
  image: {image}
  storage: {{size: 1Gi, reclaimPolicy: Delete}}
  listeners:
    internal:
      tls: {{enabled: true}}
      authentication: scram-sha-512
  authorization: {{type: simple}}
  config: {{offsets.topic.replication.factor: "2", transaction.state.log.replication.factor: "2"}}
---
apiVersion: spate.dev/v1alpha1
kind: Topic
metadata: {{name: {TOPIC}}}
spec: {{clusterRef: {SECURE}, partitions: 3, replicationFactor: 2}}
---
apiVersion: spate.dev/v1alpha1
kind: User
metadata: {{name: alice}}
spec:
  clusterRef: {SECURE}
  authentication: {{type: scram-sha-512}}
  authorization:
    acls:
    - resource: {{type: topic, name: {TOPIC}}}
      operations: [Read, Write, Describe]
    - resource: {{type: group, name: spate-e2e, patternType: prefix}}
      operations: [Read]
---
apiVersion: spate.dev/v1alpha1
kind: User
metadata: {{name: bob}}
spec:
  clusterRef: {SECURE}
  authentication: {{type: scram-sha-512}}
"#,
                image = self.h.image()
            ))?
            .ok("kubectl apply secured Cluster, Topic, Users")?;
        self.wait_secure_ready().await?;
        for user in ["alice", "bob"] {
            self.wait_user_ready(user).await?;
        }
        self.wait_topic_ready(TOPIC, 3).await?;

        let alice = self.client_config("alice").await?;
        let bob = self.client_config("bob").await?;
        let bootstrap = self.secure_bootstrap().await?;
        say(format!("  bootstrap {bootstrap} (SASL_SSL, SCRAM-SHA-512)"));

        // alice: produce and read back over TLS + SCRAM with only her Secret and the CA.
        let p = Producer::start_with(
            &self.h.kafka_client(),
            &bootstrap,
            TOPIC,
            "alice",
            100,
            0.0,
            &alice,
        )?
        .finish(Duration::from_secs(180))
        .await?;
        ensure!(
            p.failed.is_empty() && p.acked.len() == 100,
            "alice's produce: {p:?}"
        );
        let seen = kafka::consume_with(&self.h.kafka_client(), &bootstrap, TOPIC, &alice).await?;
        ensure!(p.acked.is_subset(&seen), "alice reads back what she wrote");
        say("  alice (ACLs on the topic) produced and consumed 100 records");

        // bob logs in but has no ACL: every record is refused.
        let mut bob_short = bob.clone();
        bob_short.push("delivery.timeout.ms=15000".into());
        let p = Producer::start_with(
            &self.h.kafka_client(),
            &bootstrap,
            TOPIC,
            "bob",
            3,
            0.0,
            &bob_short,
        )?
        .finish(Duration::from_secs(120))
        .await?;
        ensure!(p.acked.is_empty(), "bob has no ACL but got acks: {p:?}");
        ensure!(
            p.failed
                .iter()
                .all(|f| f.to_lowercase().contains("authoriz")),
            "bob's records fail with an authorization error: {:?}",
            p.failed
        );
        say(format!("  bob (no ACL) refused: {}", p.failed[0]));

        // Nothing secret in the User's status.
        let yaml = self
            .h
            .kubectl(&["get", "user", "alice", "-o", "yaml"], None)?
            .ok("kubectl get user")?
            .stdout;
        let password = self.user_secret_value("alice", "password").await?;
        ensure!(!yaml.contains(&password), "the password shows in the User");

        self.renew_certificates_under_load(&bootstrap, &alice)
            .await?;

        // Deleting alice revokes her access: her credential and ACLs go with the resource.
        self.h
            .kubectl(
                &["delete", "user", "alice", "--wait=true", "--timeout=60s"],
                None,
            )?
            .ok("kubectl delete user alice")?;
        let mut short = alice.clone();
        short.push("delivery.timeout.ms=15000".into());
        let p = Producer::start_with(
            &self.h.kafka_client(),
            &bootstrap,
            TOPIC,
            "revoked",
            3,
            0.0,
            &short,
        )?
        .finish(Duration::from_secs(120))
        .await?;
        ensure!(p.acked.is_empty(), "a deleted User still writes: {p:?}");
        say("  deleted User alice can no longer log in");

        self.h
            .kubectl(
                &[
                    "delete",
                    "user/bob",
                    &format!("topic/{TOPIC}"),
                    &format!("cluster/{SECURE}"),
                    "--wait=true",
                    "--timeout=120s",
                ],
                None,
            )
            .and_then(|o| o.ok("kubectl delete"))
            .map(|_| ())
            .or_else(|e| {
                say(format!("  cleanup: {e:#}"));
                Ok(())
            })
    }

    /// A renewal rolls every broker while a producer keeps going: no record is lost.
    async fn renew_certificates_under_load(
        &self,
        bootstrap: &str,
        config: &[String],
    ) -> Result<()> {
        let pods: Api<Pod> = self.pods.clone();
        let lp = ListParams::default().labels(&format!("spate.dev/cluster={SECURE}"));
        let before: Vec<String> = pods
            .list(&lp)
            .await?
            .items
            .iter()
            .filter_map(|p| p.uid())
            .collect();
        let producer = Producer::start_with(
            &self.h.kafka_client(),
            bootstrap,
            TOPIC,
            "renewal",
            RENEWAL_RECORDS,
            20.0,
            config,
        )?;
        wait_for(
            "the first ack before the renewal",
            Duration::from_secs(60),
            || async { producer.first_ack() },
        )
        .await?;
        let patch = serde_json::json!({"metadata": {"annotations": {
            "spate.dev/renew-certificates": chrono_now()
        }}});
        Api::<spate_operator::crd::Cluster>::namespaced(self.h.client.clone(), self.ns())
            .patch(SECURE, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait_for(
            "every secured broker restarted with renewed certificates",
            Duration::from_secs(300),
            || async {
                let now = pods.list(&lp).await?.items;
                let ready = now.iter().filter(|p| pod_ready(p)).count();
                let renewed = now
                    .iter()
                    .filter(|p| p.uid().is_some_and(|u| !before.contains(&u)))
                    .count();
                if renewed == 2 && ready == 2 {
                    Ok(())
                } else {
                    Err(anyhow!("{renewed} of 2 brokers restarted, {ready} ready"))
                }
            },
        )
        .await?;
        let p = producer.finish(Duration::from_secs(240)).await?;
        ensure!(
            p.failed.is_empty() && p.acked.len() == RENEWAL_RECORDS,
            "records failed across the renewal roll: {} acked, failed {:?}",
            p.acked.len(),
            p.failed.iter().take(5).collect::<Vec<_>>()
        );
        let seen = kafka::consume_with(&self.h.kafka_client(), bootstrap, TOPIC, config).await?;
        ensure!(
            p.acked.is_subset(&seen),
            "a record acked during the renewal is missing"
        );
        say(format!(
            "  certificate renewal rolled both brokers; {RENEWAL_RECORDS} records acked, none lost"
        ));
        Ok(())
    }

    async fn wait_secure_ready(&self) -> Result<()> {
        wait_for(
            "the secured Cluster Ready with 2 brokers",
            Duration::from_secs(300),
            || async {
                let c = self.clusters.get(SECURE).await?;
                let status = c.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready && status.ready_brokers == 2 {
                    Ok(())
                } else {
                    Err(anyhow!(
                        "{}",
                        super::describe_conditions(&status.conditions)
                    ))
                }
            },
        )
        .await
    }

    async fn wait_user_ready(&self, user: &str) -> Result<()> {
        wait_for(
            &format!("User {user} Ready"),
            Duration::from_secs(120),
            || async {
                let out = self
                    .h
                    .kubectl(
                        &[
                            "get",
                            "user",
                            user,
                            "-o",
                            "jsonpath={.status.conditions[?(@.type==\"Ready\")]}",
                        ],
                        None,
                    )?
                    .ok("kubectl get user")?;
                if out.stdout.contains("\"status\":\"True\"") {
                    Ok(())
                } else {
                    Err(anyhow!("User {user}: {}", out.stdout))
                }
            },
        )
        .await
    }

    /// The bootstrap address of the secured Cluster (its Service name: the certificate names it).
    async fn secure_bootstrap(&self) -> Result<String> {
        let c = self.clusters.get(SECURE).await?;
        let addr = c
            .status
            .and_then(|s| s.bootstrap_address)
            .ok_or_else(|| anyhow!("secured Cluster has no bootstrapAddress"))?;
        let found = tokio::net::lookup_host(addr.as_str())
            .await
            .with_context(|| format!("{addr} must resolve here for TLS hostname checks"))?
            .count();
        ensure!(found > 0, "{addr} resolves to no address");
        Ok(addr)
    }

    async fn user_secret_value(&self, user: &str, key: &str) -> Result<String> {
        let secrets: Api<Secret> = Api::namespaced(self.h.client.clone(), self.ns());
        let s = secrets.get(user).await?;
        let v = s
            .data
            .and_then(|d| d.get(key).cloned())
            .ok_or_else(|| anyhow!("Secret {user} has no {key}"))?;
        Ok(String::from_utf8(v.0)?)
    }

    /// librdkafka settings for `user`, from the User's Secret and the cluster CA's public
    /// Secret only (what an application in the cluster would mount).
    async fn client_config(&self, user: &str) -> Result<Vec<String>> {
        let password = self.user_secret_value(user, "password").await?;
        let secrets: Api<Secret> = Api::namespaced(self.h.client.clone(), self.ns());
        let ca = secrets
            .get(&format!("{SECURE}-cluster-ca-cert"))
            .await?
            .data
            .and_then(|d| d.get("ca.crt").cloned())
            .ok_or_else(|| anyhow!("no ca.crt in the cluster CA certificate Secret"))?;
        let path = std::env::temp_dir().join(format!("spate-e2e-{SECURE}-ca.crt"));
        std::fs::write(&path, ca.0)?;
        Ok(vec![
            "security.protocol=SASL_SSL".into(),
            "sasl.mechanisms=SCRAM-SHA-512".into(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
            format!("ssl.ca.location={}", path.display()),
        ])
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn chrono_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}
