//! Helpers for Spate's end-to-end suite (`tests/e2e.rs`).
//!
//! # Layout
//!
//! - [`Harness`]: what the suite needs from its environment: a kube `Client` from
//!   `KUBECONFIG`, the `kubectl` and `helm` binaries, the namespace and image to use.
//! - [`wait_for`]: polls a check until it passes or a deadline expires; every wait in the
//!   suite goes through it, so a timeout always says what was awaited and the last reason.
//! - [`kafka`]: the Kafka side: Metadata through the operator's admin client, produce and
//!   consume through a real client (`kafka_client.py`, confluent-kafka/librdkafka).
//!
//! The suite needs nothing but `KUBECONFIG`: it runs unchanged against the loopback control
//! plane with the node agent (`e2e/run.sh`) and against a real cluster (`e2e/kind/run.sh`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

pub mod kafka;

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Prints a progress line with the time since the suite started.
pub fn say(msg: impl AsRef<str>) {
    println!(
        "[e2e +{:6.1}s] {}",
        started().elapsed().as_secs_f64(),
        msg.as_ref()
    );
}

/// Polls `check` every `every` until it returns `Ok`, or fails after `timeout` with the
/// last error `check` gave (the reason it was not there yet).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let begin = Instant::now();
    let deadline = begin + timeout;
    let every = Duration::from_millis(500);
    loop {
        match check().await {
            Ok(v) => {
                say(format!(
                    "ok: {what} ({:.1}s)",
                    begin.elapsed().as_secs_f64()
                ));
                return Ok(v);
            }
            Err(e) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}; last: {e:#}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The output, or an error carrying stderr when the command failed.
    pub fn ok(self, what: &str) -> Result<Output> {
        if self.success {
            Ok(self)
        } else {
            Err(anyhow!("{what} failed: {}{}", self.stderr, self.stdout))
        }
    }
}

/// Runs `program args`, feeding `stdin`.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A tool from `$SPATE_E2E_BIN`, `~/.cache/spate/e2e/bin` (where `e2e/controlplane/build.sh`
/// puts it) or `PATH`.
fn tool(name: &str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("SPATE_E2E_BIN") {
        dirs.push(d.into());
    }
    if let Ok(home) = std::env::var("HOME") {
        dirs.push(Path::new(&home).join(".cache/spate/e2e/bin"));
    }
    if let Ok(path) = std::env::var("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("{name} not found in $SPATE_E2E_BIN, ~/.cache/spate/e2e/bin or PATH")
        })
}

/// The suite's environment.
pub struct Harness {
    pub client: kube::Client,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// Namespace of the release, the Cluster and the Topics (`SPATE_E2E_NAMESPACE`).
    pub namespace: String,
    /// Helm release name.
    pub release: String,
    /// Image repository and tag for the chart and the Cluster (`SPATE_E2E_IMAGE`, default
    /// `spate:<chart appVersion>`).
    pub image_repository: String,
    pub image_tag: String,
    /// The repository root (for `charts/spate` and `e2e/suite/kafka_client.py`).
    pub root: PathBuf,
}

impl Harness {
    /// `None` unless `SPATE_E2E=1` and `KUBECONFIG` are set: the suite then skips. Opt-in,
    /// because it recreates a namespace and applies CRDs on whatever cluster KUBECONFIG names,
    /// and a developer's shell often has one set.
    pub async fn from_env() -> Result<Option<Self>> {
        if std::env::var("SPATE_E2E").as_deref() != Ok("1")
            || std::env::var_os("KUBECONFIG").is_none()
        {
            return Ok(None);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        let app_version = std::fs::read_to_string(root.join("charts/spate/Chart.yaml"))?
            .lines()
            .find_map(|l| l.strip_prefix("appVersion:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .ok_or_else(|| anyhow!("charts/spate/Chart.yaml has no appVersion"))?;
        let image =
            std::env::var("SPATE_E2E_IMAGE").unwrap_or_else(|_| format!("spate:{app_version}"));
        let (repo, tag) = match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (image.clone(), app_version),
        };
        Ok(Some(Self {
            client: kube::Client::try_default()
                .await
                .context("kube client from KUBECONFIG")?,
            kubectl: tool("kubectl")?,
            helm: tool("helm")?,
            namespace: std::env::var("SPATE_E2E_NAMESPACE").unwrap_or_else(|_| "spate-e2e".into()),
            release: "spate".into(),
            image_repository: repo,
            image_tag: tag,
            root,
        }))
    }

    /// The image as the Cluster names it.
    pub fn image(&self) -> String {
        format!("{}:{}", self.image_repository, self.image_tag)
    }

    /// `kubectl -n <namespace> args...`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        run(&self.kubectl, &all, stdin)
    }

    /// `kubectl apply -f -` with `yaml`; the Output says whether the API server accepted it.
    pub fn apply(&self, yaml: &str) -> Result<Output> {
        self.kubectl(&["apply", "-f", "-"], Some(yaml))
    }

    /// `helm args... -n <namespace>`.
    pub fn helm(&self, args: &[&str]) -> Result<Output> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-n", self.namespace.as_str()]);
        run(&self.helm, &all, None)
    }

    /// Path of the Python Kafka client.
    pub fn kafka_client(&self) -> PathBuf {
        self.root.join("e2e/suite/kafka_client.py")
    }
}
