//! The Kafka side of the suite.
//!
//! Metadata comes from the operator's own admin client (`spate_operator::kafka`), which is a
//! plain Kafka wire client. Records go through a real, independent client:
//! `e2e/suite/kafka_client.py` on confluent-kafka (librdkafka), with `acks=all` and
//! idempotence, so "acked" means what it means to an application.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;
use spate_operator::kafka::{AdminClient, ClusterMetadata, KafkaAdmin};
use tokio::process::{Child, Command};

/// Metadata through `bootstrap`.
pub async fn metadata(bootstrap: &str) -> Result<ClusterMetadata> {
    let admin = AdminClient::connect(bootstrap, Duration::from_secs(5), None).await?;
    Ok(admin.metadata(None).await?)
}

/// What a producer run reports.
#[derive(Debug)]
pub struct Produced {
    pub acked: BTreeSet<String>,
    pub failed: Vec<String>,
}

/// A producer running in the background; its stderr goes to a file (librdkafka's log and
/// the `first-ack` marker).
pub struct Producer {
    child: Child,
    stderr: PathBuf,
}

fn python() -> String {
    std::env::var("SPATE_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Producer {
    /// Starts producing `count` records `<prefix>-<n>` at `rate` per second (0: unpaced).
    pub fn start(
        script: &Path,
        bootstrap: &str,
        topic: &str,
        prefix: &str,
        count: usize,
        rate: f64,
    ) -> Result<Self> {
        Self::start_with(script, bootstrap, topic, prefix, count, rate, &[])
    }

    /// As [`Producer::start`], with extra librdkafka settings (`key=value`).
    pub fn start_with(
        script: &Path,
        bootstrap: &str,
        topic: &str,
        prefix: &str,
        count: usize,
        rate: f64,
        config: &[String],
    ) -> Result<Self> {
        let stderr = std::env::temp_dir().join(format!("spate-e2e-producer-{prefix}.log"));
        let child = Command::new(python())
            .arg(script)
            .args(["produce", "--bootstrap", bootstrap, "--topic", topic])
            .args(["--prefix", prefix, "--count", &count.to_string()])
            .args(["--rate", &rate.to_string()])
            .args(config_args(config))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting kafka_client.py produce")?;
        Ok(Self { child, stderr })
    }

    /// Waits for the producer to finish and returns what was acked.
    pub async fn finish(self, timeout: Duration) -> Result<Produced> {
        let out = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .map_err(|_| anyhow!("producer still running after {timeout:?}"))??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "producer failed ({}): {}{}",
                out.status,
                std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                stdout
            );
        }
        let v: Value = serde_json::from_str(stdout.trim())
            .with_context(|| format!("producer output: {stdout}"))?;
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Produced {
            acked: strings("acked").into_iter().collect(),
            failed: strings("failed"),
        })
    }

    /// Whether the first record has been acked (the script prints `first-ack` to stderr).
    pub fn first_ack(&self) -> Result<()> {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        if log.lines().any(|l| l == "first-ack") {
            Ok(())
        } else {
            bail!("no ack yet; producer log: {}", log.trim())
        }
    }
}

/// Produces `count` records and waits for every ack.
pub async fn produce(
    script: &Path,
    bootstrap: &str,
    topic: &str,
    prefix: &str,
    count: usize,
) -> Result<Produced> {
    Producer::start(script, bootstrap, topic, prefix, count, 0.0)?
        .finish(Duration::from_secs(180))
        .await
}

fn config_args(config: &[String]) -> Vec<String> {
    config
        .iter()
        .flat_map(|kv| ["--config".to_string(), kv.clone()])
        .collect()
}

/// Every value in `topic`, read from the beginning of each partition to its high watermark.
pub async fn consume(script: &Path, bootstrap: &str, topic: &str) -> Result<BTreeSet<String>> {
    consume_with(script, bootstrap, topic, &[]).await
}

/// As [`consume`], with extra librdkafka settings (`key=value`).
pub async fn consume_with(
    script: &Path,
    bootstrap: &str,
    topic: &str,
    config: &[String],
) -> Result<BTreeSet<String>> {
    let out = Command::new(python())
        .arg(script)
        .args(["consume", "--bootstrap", bootstrap, "--topic", topic])
        .args(["--timeout", "90"])
        .args(config_args(config))
        .kill_on_drop(true)
        .output()
        .await
        .context("running kafka_client.py consume")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "consumer failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            stdout
        );
    }
    let v: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("consumer output: {stdout}"))?;
    if v["unfinished"].as_array().is_some_and(|a| !a.is_empty()) {
        bail!(
            "consumer did not reach the high watermark of partitions {}",
            v["unfinished"]
        );
    }
    Ok(v["values"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}
