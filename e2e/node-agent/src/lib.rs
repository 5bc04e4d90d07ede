//! A kubelet stand-in for Spate's end-to-end tests.
//!
//! `spate-node-agent` registers one Node with a real API server and runs the pods bound to
//! it as local processes: each pod gets a network namespace on a bridge, its volumes as
//! directories bind-mounted in a private mount namespace, and an `/etc/hosts` that stands in
//! for cluster DNS. It exists because the test machines have no container runtime.
//!
//! # Layout
//!
//! Pure builders (unit-tested without a cluster):
//! - [`config`]: command-line flags and the image → local binary map.
//! - [`ipam`]: pod IP allocation from the pod CIDR.
//! - [`env`]: a container's environment (downward API, ConfigMap/Secret refs, `$(VAR)`).
//! - [`launch`]: the command line that enters the pod's namespaces, mounts volumes and
//!   execs the container's entrypoint.
//! - [`hosts`]: hosts files from pods and services; the marked block in the root `/etc/hosts`.
//! - [`status`]: PodStatus from what the agent observed.
//! - [`probes`]: probe thresholds and the HTTP probe wire format.
//! - [`node`]: the Node object and its heartbeat.
//! - [`pvc`]: the PersistentVolume that binds a pending claim to a local directory.
//!
//! Effects:
//! - [`netns`]: bridge, network namespaces and veth pairs (through `ip`).
//! - [`process`]: spawning and signalling process groups.
//! - [`volumes`]: materializing volumes on disk (ConfigMaps, Secrets, tokens, claims).
//! - [`container`]: one container's run/probe/restart loop.
//! - [`pod_worker`]: one pod from setup to deletion.
//! - [`pod_sync`]: the watch on this node's pods, one worker per pod.
//! - [`dns`]: the watch on pods and services that keeps the hosts files current.
//! - [`api_proxy`]: forwards the bridge address to a loopback-only API server.

pub mod api_proxy;
pub mod config;
pub mod container;
pub mod context;
pub mod dns;
pub mod env;
pub mod hosts;
pub mod ipam;
pub mod launch;
pub mod netns;
pub mod node;
pub mod pod_sync;
pub mod pod_worker;
pub mod probes;
pub mod process;
pub mod pvc;
pub mod status;
pub mod volumes;

/// Errors of the agent's library parts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("command `{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
