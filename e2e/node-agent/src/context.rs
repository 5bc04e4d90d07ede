//! What every part of the agent shares.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{Args, ImageMap};
use crate::dns::Hosts;
use crate::ipam::Ipam;
use crate::launch::Tools;

pub struct Ctx {
    pub client: kube::Client,
    pub args: Args,
    pub images: ImageMap,
    pub tools: Tools,
    pub ipam: Mutex<Ipam>,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    /// How pods reach the API server.
    pub api_host: String,
    pub api_port: u16,
    pub hosts: Arc<Hosts>,
    /// Turns true when the agent is stopping: workers stop their containers and clean up,
    /// but leave the Pod objects alone.
    pub shutdown: watch::Receiver<bool>,
}

impl Ctx {
    /// Per-pod working directory (volumes).
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.args.state_dir.join("pods").join(uid)
    }

    /// Container logs, kept after the pod is gone.
    pub fn log_path(&self, namespace: &str, name: &str, uid: &str, container: &str) -> PathBuf {
        self.args
            .state_dir
            .join("logs")
            .join(format!("{namespace}_{name}_{uid}"))
            .join(format!("{container}.log"))
    }
}
