//! End to end: the Helm chart, the operator and Spate brokers on a real Kubernetes API server,
//! driven only through `KUBECONFIG`, kubectl, helm and Kafka clients.
//!
//! One test, eleven steps in order (each later step builds on the earlier ones). Every wait has a
//! deadline and says what it waited for. Without `SPATE_E2E=1` and `KUBECONFIG` the test prints that it was
//! skipped and passes; `e2e/run.sh` sets everything up and runs it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use spate_e2e::kafka::{self, Producer};
use spate_e2e::{say, wait_for, Harness};
use spate_operator::crd::{Cluster, Topic};
use spate_operator::kafka::ClusterMetadata;

#[path = "e2e/security.rs"]
mod security;

const CLUSTER: &str = "spate";
const TOPIC: &str = "orders";

fn condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

fn cluster_conditions(c: &Cluster) -> Vec<Condition> {
    c.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

fn describe_conditions(conds: &[Condition]) -> String {
    conds
        .iter()
        .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The suite's state between steps.
struct Suite {
    h: Harness,
    clusters: Api<Cluster>,
    topics: Api<Topic>,
    pods: Api<Pod>,
    /// `host:port` clients bootstrap from.
    bootstrap: String,
    /// Every record any producer got an ack for; none may ever go missing.
    acked: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_spate_end_to_end() -> Result<()> {
    let Some(h) = Harness::from_env().await? else {
        println!("SKIPPED: SPATE_E2E=1 and KUBECONFIG are not both set; this suite needs a Kubernetes cluster (run e2e/run.sh). Passing trivially.");
        return Ok(());
    };
    say(format!(
        "namespace {}, image {}, kubectl {}, helm {}",
        h.namespace,
        h.image(),
        h.kubectl.display(),
        h.helm.display()
    ));
    let mut s = Suite {
        clusters: Api::namespaced(h.client.clone(), &h.namespace),
        topics: Api::namespaced(h.client.clone(), &h.namespace),
        pods: Api::namespaced(h.client.clone(), &h.namespace),
        h,
        bootstrap: String::new(),
        acked: BTreeSet::new(),
    };
    let result = s.run().await;
    if let Err(e) = &result {
        say(format!("FAILED: {e:#}"));
        s.dump();
    } else if std::env::var_os("SPATE_E2E_KEEP").is_none() {
        s.delete_namespace().await?;
    }
    result
}

macro_rules! step {
    ($name:literal, $e:expr) => {{
        say(concat!("==== step ", $name));
        let t = Instant::now();
        $e.await.context(concat!("step ", $name))?;
        say(format!(
            "==== passed: {} ({:.1}s)",
            $name,
            t.elapsed().as_secs_f64()
        ));
    }};
}

impl Suite {
    async fn run(&mut self) -> Result<()> {
        self.delete_namespace().await?;
        step!(
            "1 helm install: operator Deployment ready",
            self.helm_install()
        );
        if std::env::var("SPATE_E2E_ONLY").as_deref() == Ok("secured") {
            // A quicker loop while working on security.
            step!("secured Cluster only", self.secured_cluster());
            return Ok(());
        }
        step!(
            "2 Cluster of 3 brokers: Ready, Metadata shows 3",
            self.cluster_ready()
        );
        step!(
            "3 Topic 6x3: Ready, produce and consume",
            self.topic_produce_consume()
        );
        step!(
            "4 kill -9 a broker under acks=all: nothing lost",
            self.kill_broker()
        );
        step!(
            "5 scale to 5: brokers join, partitions spread",
            self.scale_up()
        );
        step!("6 scale to 3 drains; 2 is refused", self.scale_down());
        step!(
            "7 Topic to 12 partitions; lowering rejected",
            self.grow_partitions()
        );
        step!("8 invalid resources rejected", self.invalid_resources());
        step!("9 Topic deletion per deletionPolicy", self.delete_topics());
        step!(
            "10 secured Cluster: TLS + SCRAM, Users with ACLs, revocation, certificate renewal",
            self.secured_cluster()
        );
        step!(
            "11 helm uninstall leaves only retained claims",
            self.uninstall()
        );
        Ok(())
    }

    fn ns(&self) -> &str {
        &self.h.namespace
    }

    // ---------------------------------------------------------------- step 1
    async fn helm_install(&mut self) -> Result<()> {
        let chart = self.h.root.join("charts/spate");
        let chart = chart.to_string_lossy().into_owned();
        let repo = format!("image.repository={}", self.h.image_repository);
        let tag = format!("image.tag={}", self.h.image_tag);
        let mut args = vec![
            "install",
            self.h.release.as_str(),
            chart.as_str(),
            "--create-namespace",
            "--set",
            repo.as_str(),
            "--set",
            tag.as_str(),
            "--set",
            "operator.resyncSeconds=30",
        ];
        let extra = std::env::var("SPATE_E2E_HELM_ARGS").unwrap_or_default();
        args.extend(extra.split_whitespace());
        // Helm installs a chart's crds/ only when absent and never upgrades them; CRDs left
        // from an earlier run or version are brought up to date first, as Helm's docs advise.
        let crds = self.h.root.join("charts/spate/crds");
        let crds = crds.to_string_lossy();
        crate::run_kubectl(
            &self.h,
            &["apply", "--server-side", "--force-conflicts", "-f", &crds],
        )?;
        self.h.helm(&args)?.ok("helm install")?;
        let deployments: Api<Deployment> = Api::namespaced(self.h.client.clone(), self.ns());
        let name = format!("{}-operator", self.h.release);
        wait_for(
            "the operator Deployment to be available",
            Duration::from_secs(180),
            || async {
                let d = deployments.get(&name).await?;
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.unwrap_or_default();
                let ready = st.ready_replicas.unwrap_or(0);
                ensure!(
                    ready == want && st.updated_replicas.unwrap_or(0) == want,
                    "{ready}/{want} operator replicas ready"
                );
                Ok(())
            },
        )
        .await
    }

    // ---------------------------------------------------------------- step 2
    fn cluster_yaml(&self, replicas: i32) -> String {
        format!(
            r#"apiVersion: spate.dev/v1alpha1
kind: Cluster
metadata:
  name: {CLUSTER}
  namespace: {ns}
spec:
  replicas: {replicas}
  image: "{image}"
  storage:
    size: 1Gi
    reclaimPolicy: Retain
  config:
    log.flush.interval.ms: "200"
"#,
            ns = self.ns(),
            image = self.h.image(),
        )
    }

    async fn cluster_ready(&mut self) -> Result<()> {
        self.h
            .apply(&self.cluster_yaml(3))?
            .ok("applying the Cluster")?;
        self.wait_cluster_ready(3, Duration::from_secs(240)).await?;
        let pods = self.broker_pods().await?;
        for p in &pods {
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            say(format!("  {} on {}", p.name_any(), ip));
        }
        self.bootstrap = self.pick_bootstrap().await?;
        say(format!("  bootstrap {}", self.bootstrap));
        let md = self
            .wait_metadata("Metadata to list 3 brokers", |md| {
                let ids = md.broker_ids();
                ensure!(ids == BTreeSet::from([0, 1, 2]), "brokers {ids:?}");
                Ok(())
            })
            .await?;
        for b in &md.brokers {
            say(format!(
                "  broker {} advertises {}:{}",
                b.id, b.host, b.port
            ));
        }
        Ok(())
    }

    /// The Cluster's bootstrap address when its name resolves here (node agent's hosts
    /// entries, or cluster DNS), else a broker pod's IP.
    async fn pick_bootstrap(&self) -> Result<String> {
        let c = self.clusters.get(CLUSTER).await?;
        let addr = c
            .status
            .and_then(|s| s.bootstrap_address)
            .ok_or_else(|| anyhow!("Cluster status has no bootstrapAddress"))?;
        if tokio::net::lookup_host(addr.as_str()).await.is_ok() {
            return Ok(addr);
        }
        say(format!("  {addr} does not resolve here; using a pod IP"));
        let pods = self.broker_pods().await?;
        let ip = pods
            .iter()
            .find_map(|p| p.status.as_ref()?.pod_ip.clone())
            .ok_or_else(|| anyhow!("no broker pod has an IP"))?;
        let port = addr.rsplit(':').next().unwrap_or("9092");
        Ok(format!("{ip}:{port}"))
    }

    async fn broker_pods(&self) -> Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&format!("spate.dev/cluster={CLUSTER}"));
        Ok(self.pods.list(&lp).await?.items)
    }

    /// Waits for Ready=True at the current generation with `n` ready brokers.
    async fn wait_cluster_ready(&self, n: i32, timeout: Duration) -> Result<Cluster> {
        let what = format!("Cluster Ready with {n} brokers");
        wait_for(&what, timeout, || async {
            let c = self.clusters.get(CLUSTER).await?;
            let conds = cluster_conditions(&c);
            let st = c.status.clone().unwrap_or_default();
            let ready = condition(&conds, "Ready").is_some_and(|r| {
                r.status == "True" && r.observed_generation == c.metadata.generation
            });
            let reconciling = condition(&conds, "Reconciling").is_some_and(|r| r.status == "True");
            ensure!(
                ready && !reconciling && st.ready_brokers == n && st.replicas == n,
                "readyBrokers {} replicas {}; {}",
                st.ready_brokers,
                st.replicas,
                describe_conditions(&conds)
            );
            Ok(c)
        })
        .await
    }

    async fn wait_metadata(
        &self,
        what: &str,
        check: impl Fn(&ClusterMetadata) -> Result<()>,
    ) -> Result<ClusterMetadata> {
        wait_for(what, Duration::from_secs(120), || async {
            let md = kafka::metadata(&self.bootstrap).await?;
            check(&md)?;
            Ok(md)
        })
        .await
    }

    // ---------------------------------------------------------------- step 3
    fn topic_yaml(&self, name: &str, partitions: i32, policy: &str) -> String {
        format!(
            r#"apiVersion: spate.dev/v1alpha1
kind: Topic
metadata:
  name: {name}
  namespace: {ns}
spec:
  clusterRef: {CLUSTER}
  partitions: {partitions}
  replicationFactor: 3
  deletionPolicy: {policy}
  config:
    min.insync.replicas: "2"
"#,
            ns = self.ns()
        )
    }

    async fn wait_topic_ready(&self, name: &str, partitions: i32) -> Result<()> {
        let what = format!("Topic {name} Ready with {partitions} partitions");
        wait_for(&what, Duration::from_secs(120), || async {
            let t = self.topics.get(name).await?;
            let st = t.status.clone().unwrap_or_default();
            let ready = condition(&st.conditions, "Ready").is_some_and(|r| {
                r.status == "True" && r.observed_generation == t.metadata.generation
            });
            ensure!(
                ready && st.partitions == Some(partitions),
                "partitions {:?}; {}",
                st.partitions,
                describe_conditions(&st.conditions)
            );
            Ok(())
        })
        .await
    }

    async fn topic_produce_consume(&mut self) -> Result<()> {
        self.h
            .apply(&self.topic_yaml(TOPIC, 6, "Delete"))?
            .ok("applying the Topic")?;
        self.wait_topic_ready(TOPIC, 6).await?;
        self.wait_metadata("orders: 6 partitions of 3 replicas, all in sync", |md| {
            let t = md.topic(TOPIC).ok_or_else(|| anyhow!("no topic yet"))?;
            ensure!(t.partitions.len() == 6, "{} partitions", t.partitions.len());
            for p in &t.partitions {
                ensure!(
                    p.replicas.len() == 3 && p.isr.len() == 3 && p.leader >= 0,
                    "partition {p:?}"
                );
            }
            Ok(())
        })
        .await?;
        let produced =
            kafka::produce(&self.h.kafka_client(), &self.bootstrap, TOPIC, "first", 300).await?;
        ensure!(produced.failed.is_empty(), "failed: {:?}", produced.failed);
        ensure!(
            produced.acked.len() == 300,
            "{} acked",
            produced.acked.len()
        );
        say(format!(
            "  {} records acked (acks=all)",
            produced.acked.len()
        ));
        self.acked.extend(produced.acked);
        self.check_nothing_lost().await
    }

    /// Every record ever acked is still in the topic.
    async fn check_nothing_lost(&self) -> Result<()> {
        let seen = kafka::consume(&self.h.kafka_client(), &self.bootstrap, TOPIC).await?;
        let missing: Vec<&String> = self.acked.difference(&seen).collect();
        ensure!(
            missing.is_empty(),
            "{} acked records missing, e.g. {:?}",
            missing.len(),
            missing.iter().take(10).collect::<Vec<_>>()
        );
        say(format!(
            "  consumed {} records: all {} acked ones present",
            seen.len(),
            self.acked.len()
        ));
        Ok(())
    }

    // ---------------------------------------------------------------- step 4
    async fn kill_broker(&mut self) -> Result<()> {
        let md = kafka::metadata(&self.bootstrap).await?;
        let t = md.topic(TOPIC).ok_or_else(|| anyhow!("no topic"))?;
        let victim = t.partitions[0].leader;
        let led: Vec<i32> = t
            .partitions
            .iter()
            .filter(|p| p.leader == victim)
            .map(|p| p.partition)
            .collect();
        let pod_name = format!("{CLUSTER}-{victim}");
        let pod = self.pods.get(&pod_name).await?;
        let restarts_before = restart_count(&pod);
        say(format!(
            "  victim: broker {victim} (pod {pod_name}), leader of partitions {led:?}"
        ));

        let producer = Producer::start(
            &self.h.kafka_client(),
            &self.bootstrap,
            TOPIC,
            "kill",
            1500,
            60.0,
        )?;
        wait_for(
            "the producer's first ack",
            Duration::from_secs(60),
            || async { producer.first_ack() },
        )
        .await?;
        kill_container(&pod)?;
        say(format!("  sent SIGKILL to {pod_name}'s broker process"));

        // Leaders move off the victim and the Cluster reports Degraded.
        let moved = RefCell::new(BTreeSet::new());
        let degraded = RefCell::new(None::<String>);
        wait_for(
            "leaders to move off the victim and Degraded=True",
            Duration::from_secs(90),
            || async {
                if let Ok(md) = kafka::metadata(&self.bootstrap).await {
                    if let Some(t) = md.topic(TOPIC) {
                        for p in &t.partitions {
                            if led.contains(&p.partition) && p.leader >= 0 && p.leader != victim {
                                moved.borrow_mut().insert(p.partition);
                            }
                        }
                    }
                }
                let c = self.clusters.get(CLUSTER).await?;
                if let Some(d) = condition(&cluster_conditions(&c), "Degraded") {
                    if d.status == "True" && degraded.borrow().is_none() {
                        say(format!("  Degraded=True: {}: {}", d.reason, d.message));
                        *degraded.borrow_mut() = Some(d.reason.clone());
                    }
                }
                let (moved, degraded) = (moved.borrow(), degraded.borrow());
                ensure!(
                    moved.len() == led.len() && degraded.is_some(),
                    "moved {moved:?} of {led:?}; degraded seen: {degraded:?}"
                );
                Ok(())
            },
        )
        .await?;

        self.wait_cluster_degraded_false().await?;
        let pod = self.pods.get(&pod_name).await?;
        ensure!(
            restart_count(&pod) > restarts_before,
            "{pod_name} restartCount did not grow"
        );
        let produced = producer.finish(Duration::from_secs(180)).await?;
        ensure!(
            produced.failed.is_empty(),
            "{} records failed, e.g. {:?}",
            produced.failed.len(),
            produced.failed.iter().take(5).collect::<Vec<_>>()
        );
        say(format!(
            "  {} records acked across the kill",
            produced.acked.len()
        ));
        self.acked.extend(produced.acked);
        self.check_nothing_lost().await?;

        self.wait_metadata("every partition led by its preferred replica again", |md| {
            let t = md.topic(TOPIC).ok_or_else(|| anyhow!("no topic"))?;
            let off: Vec<i32> = t
                .partitions
                .iter()
                .filter(|p| p.replicas.first() != Some(&p.leader))
                .map(|p| p.partition)
                .collect();
            ensure!(
                off.is_empty(),
                "partitions {off:?} not on their preferred leader"
            );
            ensure!(
                t.partitions.iter().any(|p| p.leader == victim),
                "broker {victim} leads nothing"
            );
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn wait_cluster_degraded_false(&self) -> Result<()> {
        wait_for(
            "Cluster Ready=True and Degraded=False again",
            Duration::from_secs(180),
            || async {
                let c = self.clusters.get(CLUSTER).await?;
                let conds = cluster_conditions(&c);
                let ok = condition(&conds, "Ready").is_some_and(|r| r.status == "True")
                    && condition(&conds, "Degraded").is_some_and(|d| d.status == "False");
                ensure!(ok, "{}", describe_conditions(&conds));
                Ok(())
            },
        )
        .await
    }

    // ---------------------------------------------------------------- step 5
    async fn set_replicas(&self, n: i32) -> Result<()> {
        let patch = serde_json::json!({"spec": {"replicas": n}});
        self.clusters
            .patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        say(format!("  Cluster spec.replicas = {n}"));
        Ok(())
    }

    async fn wait_balanced(&self, ids: &BTreeSet<i32>) -> Result<()> {
        let what = format!("partitions spread over exactly brokers {ids:?}");
        let ids = ids.clone();
        self.wait_metadata(&what, move |md| {
            let t = md.topic(TOPIC).ok_or_else(|| anyhow!("no topic"))?;
            let mut count: BTreeMap<i32, usize> = ids.iter().map(|id| (*id, 0)).collect();
            for p in &t.partitions {
                ensure!(
                    p.isr.len() == 3,
                    "partition {} ISR {:?}",
                    p.partition,
                    p.isr
                );
                for r in &p.replicas {
                    *count.entry(*r).or_insert(0) += 1;
                }
            }
            let holders: BTreeSet<i32> = count
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(id, _)| *id)
                .collect();
            ensure!(holders == ids, "replicas per broker {count:?}");
            let (lo, hi) = (
                count.values().min().copied().unwrap_or(0),
                count.values().max().copied().unwrap_or(0),
            );
            ensure!(hi - lo <= 1, "uneven replicas per broker {count:?}");
            say(format!("  replicas per broker {count:?}"));
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn scale_up(&mut self) -> Result<()> {
        self.set_replicas(5).await?;
        let c = self.wait_cluster_ready(5, Duration::from_secs(300)).await?;
        let st = c.status.unwrap_or_default();
        for b in &st.brokers {
            say(format!(
                "  broker {} phase {} voter {} replicas {:?} leaders {:?}",
                b.id, b.phase, b.voter, b.replicas, b.leaders
            ));
        }
        let voters: Vec<i32> = st
            .brokers
            .iter()
            .filter(|b| b.voter)
            .map(|b| b.id)
            .collect();
        ensure!(voters == vec![0, 1, 2], "voters {voters:?}");
        // What the brokers were started with: 3 and 4 are not in the voter list, so they run
        // as broker-only nodes (raft learners).
        let cms: Api<ConfigMap> = Api::namespaced(self.h.client.clone(), self.ns());
        let data = cms
            .get(&format!("{CLUSTER}-config"))
            .await?
            .data
            .unwrap_or_default();
        for id in 0..5 {
            let props = data
                .get(&format!("broker-{id}.properties"))
                .ok_or_else(|| anyhow!("no properties for broker {id}"))?;
            let line = props
                .lines()
                .find(|l| l.starts_with("controller.quorum.voters="))
                .ok_or_else(|| anyhow!("broker {id}: no controller.quorum.voters"))?;
            let ids: Vec<&str> = line
                .trim_start_matches("controller.quorum.voters=")
                .split(',')
                .filter_map(|v| v.split('@').next())
                .collect();
            ensure!(ids == ["0", "1", "2"], "broker {id}: {line}");
        }
        say("  brokers 3 and 4 configured as broker-only (voters 0, 1, 2)");
        self.wait_metadata("Metadata to list 5 brokers", |md| {
            let ids = md.broker_ids();
            ensure!(ids == (0..5).collect::<BTreeSet<_>>(), "brokers {ids:?}");
            Ok(())
        })
        .await?;
        self.wait_balanced(&(0..5).collect()).await?;
        self.check_nothing_lost().await
    }

    // ---------------------------------------------------------------- step 6
    async fn scale_down(&mut self) -> Result<()> {
        self.set_replicas(3).await?;
        wait_for(
            "pods spate-3 and spate-4 to be gone",
            Duration::from_secs(300),
            || async {
                let names: Vec<String> = self
                    .broker_pods()
                    .await?
                    .iter()
                    .map(|p| p.name_any())
                    .collect();
                ensure!(
                    !names.iter().any(|n| n == "spate-3" || n == "spate-4"),
                    "pods {names:?}"
                );
                Ok(())
            },
        )
        .await?;
        self.wait_cluster_ready(3, Duration::from_secs(180)).await?;
        self.wait_balanced(&(0..3).collect()).await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.h.client.clone(), self.ns());
        for id in [3, 4] {
            let pvc = claims.get(&format!("data-{CLUSTER}-{id}")).await?;
            ensure!(
                pvc.labels().get("spate.dev/retained").map(String::as_str) == Some("true"),
                "claim of removed broker {id} not labelled retained (reclaimPolicy Retain)"
            );
        }
        self.check_nothing_lost().await?;

        // Two brokers cannot hold a topic of replication factor 3.
        self.set_replicas(2).await?;
        let refused = wait_for(
            "Ready=False with reason ScaleDownRefused",
            Duration::from_secs(120),
            || async {
                let c = self.clusters.get(CLUSTER).await?;
                let conds = cluster_conditions(&c);
                let r = condition(&conds, "Ready")
                    .filter(|r| {
                        r.status == "False"
                            && r.reason == "ScaleDownRefused"
                            && r.observed_generation == c.metadata.generation
                    })
                    .ok_or_else(|| anyhow!("{}", describe_conditions(&conds)))?;
                Ok(r.message.clone())
            },
        )
        .await?;
        say(format!("  refused: {refused}"));
        ensure!(
            refused.contains(TOPIC) && refused.contains("replication factor 3"),
            "the condition should say which topic and why: {refused}"
        );
        let n = self.broker_pods().await?.len();
        ensure!(n == 3, "{n} broker pods after a refused scale-down");
        self.set_replicas(3).await?;
        self.wait_cluster_ready(3, Duration::from_secs(120)).await?;
        Ok(())
    }

    // ---------------------------------------------------------------- step 7
    async fn grow_partitions(&mut self) -> Result<()> {
        self.h
            .apply(&self.topic_yaml(TOPIC, 12, "Delete"))?
            .ok("kubectl apply with 12 partitions")?;
        self.wait_topic_ready(TOPIC, 12).await?;
        self.wait_metadata("orders to have 12 partitions of 3 replicas", |md| {
            let t = md.topic(TOPIC).ok_or_else(|| anyhow!("no topic"))?;
            ensure!(
                t.partitions.len() == 12,
                "{} partitions",
                t.partitions.len()
            );
            ensure!(t.partitions.iter().all(|p| p.replicas.len() == 3));
            Ok(())
        })
        .await?;
        let out = self.h.apply(&self.topic_yaml(TOPIC, 6, "Delete"))?;
        ensure!(
            !out.success,
            "lowering partitions was accepted: {}",
            out.stdout
        );
        ensure!(
            out.stderr.contains("partitions cannot be decreased"),
            "unexpected rejection: {}",
            out.stderr
        );
        say(format!("  lowering rejected: {}", out.stderr.trim()));
        let t = self.topics.get(TOPIC).await?;
        ensure!(t.spec.partitions == 12);
        let produced =
            kafka::produce(&self.h.kafka_client(), &self.bootstrap, TOPIC, "grown", 200).await?;
        ensure!(produced.failed.is_empty(), "failed: {:?}", produced.failed);
        self.acked.extend(produced.acked);
        self.check_nothing_lost().await
    }

    // ---------------------------------------------------------------- step 8
    async fn invalid_resources(&mut self) -> Result<()> {
        let ns = self.ns().to_string();
        let cases = [
            (
                "Topic with partitions: \"six\"",
                format!("apiVersion: spate.dev/v1alpha1\nkind: Topic\nmetadata: {{name: bad-type, namespace: {ns}}}\nspec: {{clusterRef: {CLUSTER}, partitions: \"six\", replicationFactor: 3}}\n"),
                "bad-type",
            ),
            (
                "Topic with partitions: -1",
                format!("apiVersion: spate.dev/v1alpha1\nkind: Topic\nmetadata: {{name: bad-negative, namespace: {ns}}}\nspec: {{clusterRef: {CLUSTER}, partitions: -1, replicationFactor: 3}}\n"),
                "bad-negative",
            ),
            (
                "Topic without clusterRef",
                format!("apiVersion: spate.dev/v1alpha1\nkind: Topic\nmetadata: {{name: bad-missing, namespace: {ns}}}\nspec: {{partitions: 1, replicationFactor: 1}}\n"),
                "bad-missing",
            ),
            (
                "Cluster with replicas: 0",
                format!("apiVersion: spate.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: bad-zero, namespace: {ns}}}\nspec: {{replicas: 0, storage: {{size: 1Gi}}}}\n"),
                "bad-zero",
            ),
            (
                "Cluster with metadataVoters > replicas",
                format!("apiVersion: spate.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: bad-voters, namespace: {ns}}}\nspec: {{replicas: 1, metadataVoters: 3, storage: {{size: 1Gi}}}}\n"),
                "bad-voters",
            ),
        ];
        for (what, yaml, name) in cases {
            let out = self.h.apply(&yaml)?;
            ensure!(!out.success, "{what} was accepted: {}", out.stdout);
            let err = out.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
            let err = err.as_str();
            ensure!(
                err.contains("Invalid value")
                    || err.contains("Required value")
                    || err.contains("invalid"),
                "{what}: unexpected error {err}"
            );
            say(format!("  {what}: {err}"));
            let kind = if yaml.contains("kind: Topic") {
                "topic"
            } else {
                "cluster"
            };
            let get = self.h.kubectl(&["get", kind, name], None)?;
            ensure!(!get.success, "{what}: {kind}/{name} exists");
        }
        Ok(())
    }

    // ---------------------------------------------------------------- step 9
    async fn delete_topics(&mut self) -> Result<()> {
        self.h
            .apply(&self.topic_yaml("audit", 3, "Retain"))?
            .ok("applying Topic audit")?;
        self.wait_topic_ready("audit", 3).await?;
        for name in [TOPIC, "audit"] {
            self.topics.delete(name, &DeleteParams::default()).await?;
            let topics = self.topics.clone();
            wait_for(
                &format!("Topic {name} to be deleted"),
                Duration::from_secs(120),
                || async {
                    match topics.get_opt(name).await? {
                        None => Ok(()),
                        Some(t) => bail!(
                            "still there; {}",
                            describe_conditions(
                                &t.status.map(|s| s.conditions).unwrap_or_default()
                            )
                        ),
                    }
                },
            )
            .await?;
        }
        self.wait_metadata(
            "orders gone from the cluster (Delete), audit kept (Retain)",
            |md| {
                ensure!(md.topic(TOPIC).is_none(), "orders still exists");
                ensure!(md.topic("audit").is_some(), "audit was deleted");
                Ok(())
            },
        )
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- step 10
    async fn uninstall(&mut self) -> Result<()> {
        // The Cluster was applied by the user, not by the chart: the user deletes it, then
        // the release. Owner references take the brokers, Services and ConfigMap with it.
        self.clusters
            .delete(CLUSTER, &DeleteParams::default())
            .await?;
        self.h
            .helm(&[
                "uninstall",
                self.h.release.as_str(),
                "--wait",
                "--timeout",
                "120s",
            ])?
            .ok("helm uninstall")?;
        let kinds = "pods,services,configmaps,serviceaccounts,deployments,replicasets,statefulsets,poddisruptionbudgets,roles,rolebindings,leases,clusters.spate.dev,topics.spate.dev,persistentvolumeclaims";
        let left = wait_for(
            "the namespace to hold only retained claims",
            Duration::from_secs(180),
            || async {
                let out = self
                    .h
                    .kubectl(&["get", kinds, "-o", "name"], None)?
                    .ok("kubectl get")?;
                let left: Vec<String> = out
                    .stdout
                    .lines()
                    .map(str::to_string)
                    .filter(|n| {
                        n != "configmap/kube-root-ca.crt"
                            && n != "serviceaccount/default"
                            && !n.starts_with("persistentvolumeclaim/")
                    })
                    .collect();
                ensure!(left.is_empty(), "left behind: {left:?}");
                Ok(out.stdout)
            },
        )
        .await?;
        let claims: Vec<&str> = left
            .lines()
            .filter(|l| l.starts_with("persistentvolumeclaim/"))
            .collect();
        say(format!("  kept (reclaimPolicy Retain): {claims:?}"));
        let want: Vec<String> = (0..5)
            .map(|id| format!("persistentvolumeclaim/data-{CLUSTER}-{id}"))
            .collect();
        ensure!(claims == want, "claims kept {claims:?}, expected {want:?}");
        let cluster_scoped = self.h.kubectl(
            &[
                "get",
                "clusterroles,clusterrolebindings",
                "-l",
                &format!("app.kubernetes.io/instance={}", self.h.release),
                "-o",
                "name",
            ],
            None,
        )?;
        ensure!(
            cluster_scoped.stdout.trim().is_empty(),
            "cluster-scoped RBAC left: {}",
            cluster_scoped.stdout
        );
        Ok(())
    }

    // ---------------------------------------------------------------- setup, teardown
    /// Deletes the suite's namespace (from an earlier run, or after a pass), first taking
    /// finalizers off Topics, whose operator may be gone.
    async fn delete_namespace(&self) -> Result<()> {
        let nss: Api<Namespace> = Api::all(self.h.client.clone());
        if nss.get_opt(self.ns()).await?.is_none() {
            return Ok(());
        }
        say(format!("deleting namespace {}", self.ns()));
        let _ = self.h.helm(&[
            "uninstall",
            self.h.release.as_str(),
            "--wait",
            "--timeout",
            "60s",
        ]);
        // Users hold finalizers too; with the operator gone nothing would remove them.
        if let Ok(out) = self
            .h
            .kubectl(&["get", "users.spate.dev", "-o", "name"], None)
        {
            for user in out.stdout.lines().filter(|l| !l.is_empty()) {
                let _ = self.h.kubectl(
                    &[
                        "patch",
                        user,
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ],
                    None,
                );
            }
        }
        if let Ok(list) = self.topics.list(&ListParams::default()).await {
            for t in list.items {
                let patch = serde_json::json!({"metadata": {"finalizers": null}});
                let _ = self
                    .topics
                    .patch(
                        &t.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
            }
        }
        let _ = nss.delete(self.ns(), &DeleteParams::default()).await;
        wait_for(
            &format!("namespace {} to be gone", self.ns()),
            Duration::from_secs(180),
            || async {
                ensure!(nss.get_opt(self.ns()).await?.is_none(), "still terminating");
                Ok(())
            },
        )
        .await
    }

    /// What a failed run leaves to read.
    fn dump(&self) {
        for args in [
            vec!["get", "clusters,topics,pods,pvc,svc,deploy", "-o", "wide"],
            vec!["get", "clusters,topics", "-o", "yaml"],
            vec!["get", "events", "--sort-by=.lastTimestamp"],
        ] {
            if let Ok(out) = self.h.kubectl(&args, None) {
                println!(
                    "---- kubectl {}\n{}{}",
                    args.join(" "),
                    out.stdout,
                    out.stderr
                );
            }
        }
    }
}

/// kubectl without a namespace (cluster-scoped objects).
fn run_kubectl(h: &Harness, args: &[&str]) -> Result<()> {
    spate_e2e::run(&h.kubectl, args, None)?.ok(&format!("kubectl {}", args.join(" ")))?;
    Ok(())
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}

/// `kill -9` of the broker container's main process. With the node agent the container ID is
/// `spate://<pid>` of a local process; on kind it is a containerd ID, killed through the node
/// container (`docker exec <node> crictl inspect`).
fn kill_container(pod: &Pod) -> Result<()> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.container_id.clone())
        .ok_or_else(|| anyhow!("{} has no container id", pod.name_any()))?;
    let (runtime, rest) = id
        .split_once("://")
        .ok_or_else(|| anyhow!("container id {id}"))?;
    let status = match runtime {
        "spate" => std::process::Command::new("kill")
            .args(["-9", rest])
            .status()?,
        "containerd" => {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .ok_or_else(|| anyhow!("pod not scheduled"))?;
            let script = format!(
                "kill -9 $(crictl inspect --output go-template --template '{{{{.info.pid}}}}' {rest})"
            );
            std::process::Command::new("docker")
                .args(["exec", &node, "sh", "-c", &script])
                .status()?
        }
        other => bail!("do not know how to kill a {other} container"),
    };
    ensure!(status.success(), "kill failed: {status}");
    Ok(())
}
