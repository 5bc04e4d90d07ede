//! Command-line flags and the map from container images to local binaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::{Error, Result};

#[derive(Parser, Debug, Clone)]
#[command(
    version,
    about = "Runs the pods bound to one Node as local processes (a kubelet stand-in for e2e tests)"
)]
pub struct Args {
    /// Name of the Node this agent registers and serves.
    #[arg(long, env = "NODE_NAME", default_value = "spate-node")]
    pub node_name: String,
    /// `REPOSITORY=PATH`: containers whose image repository (registry and tag ignored) is
    /// REPOSITORY run PATH as their entrypoint. Repeatable.
    #[arg(long = "image", value_name = "REPOSITORY=PATH")]
    pub images: Vec<String>,
    /// A file with one `REPOSITORY=PATH` per line (`#` starts a comment).
    #[arg(long)]
    pub image_config: Option<PathBuf>,
    /// Run containers whose image has no mapping if they set `command` (looked up on the
    /// host's PATH); otherwise such containers fail to start.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_unmapped_images: bool,
    /// Pod directories (volumes, logs) and claim directories live here.
    #[arg(long, default_value = "/var/lib/spate-node-agent")]
    pub state_dir: PathBuf,
    /// Bridge in the root network namespace that pod veths attach to.
    #[arg(long, default_value = "spate0")]
    pub bridge: String,
    /// Pod addresses come from this range; its first address is the bridge's.
    #[arg(long, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    /// Host pods use to reach the API server (KUBERNETES_SERVICE_HOST). The default is a
    /// name the API server's certificate carries; every pod's hosts file maps it to the
    /// bridge address, where the API server or the agent's proxy listens.
    #[arg(long, default_value = "kubernetes.default.svc")]
    pub api_server_host: String,
    /// Port pods use to reach the API server; defaults to the kubeconfig's.
    #[arg(long)]
    pub api_server_port: Option<u16>,
    /// Forward `<bridge address>:<port>` to the kubeconfig's API server, for API servers
    /// that listen on loopback only. Skipped (with a log line) if the address is taken.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub api_proxy: bool,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Keep a marked block of pod and service names in the root `/etc/hosts` (removed at exit).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub manage_root_hosts: bool,
    /// Bind pending PersistentVolumeClaims to PersistentVolumes backed by local directories.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub provision_volumes: bool,
    /// Advertised (not enforced) capacity.
    #[arg(long, default_value = "16")]
    pub capacity_cpu: String,
    #[arg(long, default_value = "32Gi")]
    pub capacity_memory: String,
    #[arg(long, default_value = "110")]
    pub capacity_pods: String,
    /// Seconds between Lease renewals and Node status updates.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_seconds: u64,
    /// First restart delay of a crashed container; doubles up to the maximum.
    #[arg(long, default_value_t = 1)]
    pub backoff_initial_seconds: u64,
    #[arg(long, default_value_t = 30)]
    pub backoff_max_seconds: u64,
    /// Delete the Node object when the agent stops (test teardown); by default it stays
    /// and turns NotReady, as with a stopped kubelet.
    #[arg(long)]
    pub delete_node_on_exit: bool,
    /// Grace period for containers when the agent itself is stopped.
    #[arg(long, default_value_t = 5)]
    pub shutdown_grace_seconds: u64,
}

/// The repository part of an image reference: no registry host, digest or tag, and no
/// `library/` prefix. `ghcr.io/spate/broker:1.0` → `spate/broker`; `busybox` → `busybox`.
pub fn image_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let mut parts: Vec<&str> = without_digest.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    if let Some(last) = parts.last_mut() {
        if let Some((name, _tag)) = last.split_once(':') {
            *last = name;
        }
    }
    if parts.len() > 1 && parts[0] == "library" {
        parts.remove(0);
    }
    parts.join("/")
}

/// Image repository → local binary.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: BTreeMap<String, PathBuf>,
}

impl ImageMap {
    /// Parses `REPOSITORY=PATH` entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut map = ImageMap::default();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (repo, path) = entry.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("image mapping `{entry}`: want REPO=PATH"))
            })?;
            map.entries
                .insert(image_repository(repo.trim()), PathBuf::from(path.trim()));
        }
        Ok(map)
    }

    /// The binary for `image`: an exact repository match, else a unique match on the last
    /// path segment (`spate` matches `example.com/team/spate:1`).
    pub fn resolve(&self, image: &str) -> Option<&Path> {
        let repo = image_repository(image);
        if let Some(p) = self.entries.get(&repo) {
            return Some(p);
        }
        let last = repo.rsplit('/').next().unwrap_or(&repo);
        let mut matches = self
            .entries
            .iter()
            .filter(|(k, _)| k.rsplit('/').next() == Some(last));
        match (matches.next(), matches.next()) {
            (Some((_, p)), None) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repository_drops_registry_tag_digest_and_library() {
        assert_eq!(image_repository("ghcr.io/spate/broker:1.0"), "spate/broker");
        assert_eq!(image_repository("localhost:5000/spate:dev"), "spate");
        assert_eq!(image_repository("spate:test"), "spate");
        assert_eq!(image_repository("docker.io/library/busybox"), "busybox");
        assert_eq!(image_repository("busybox@sha256:abc"), "busybox");
        assert_eq!(image_repository("spate/operator"), "spate/operator");
    }

    #[test]
    fn image_map_matches_repository_then_unique_last_segment() {
        let map = ImageMap::parse([
            "spate/broker=/bin/broker",
            "local/sh=/bin/sh",
            "# comment",
            "spate=/bin/spate",
        ])
        .expect("parse");
        assert_eq!(
            map.resolve("reg.io/spate/broker:2"),
            Some(Path::new("/bin/broker"))
        );
        assert_eq!(map.resolve("local/sh:latest"), Some(Path::new("/bin/sh")));
        assert_eq!(map.resolve("other.io/team/sh"), Some(Path::new("/bin/sh")));
        assert_eq!(map.resolve("spate:test"), Some(Path::new("/bin/spate")));
        assert_eq!(map.resolve("nginx"), None);
    }

    #[test]
    fn image_map_rejects_entries_without_equals() {
        assert!(ImageMap::parse(["spate"]).is_err());
    }
}
