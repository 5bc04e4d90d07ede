//! Keeps the hosts files current: watches every pod and service, renders each local pod's
//! `/etc/netns/<ns>/hosts` (which `ip netns exec` binds over `/etc/hosts`) and the marked
//! block in the root `/etc/hosts`.
//!
//! Files are rewritten in place, never replaced: a bind mount pins the inode, so a renamed
//! replacement would go unseen by running pods.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;

use crate::context::Ctx;
use crate::hosts::{
    render_pod_file, render_root_block, splice_block, ClusterView, PodEntry, ServiceEntry,
};

const ROOT_HOSTS: &str = "/etc/hosts";

/// A pod's `/etc/resolv.conf`: nothing listens on its loopback port 53, so a query is
/// refused immediately.
pub const RESOLV_CONF: &str =
    "# spate-node-agent: names come from /etc/hosts; there is no DNS server.\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

struct Local {
    file: PathBuf,
    entry: PodEntry,
    written: Option<String>,
}

#[derive(Default)]
struct State {
    view: ClusterView,
    locals: BTreeMap<String, Local>,
    root_written: Option<String>,
}

/// The hosts files of this node.
pub struct Hosts {
    state: Mutex<State>,
    manage_root: bool,
}

fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(content.as_bytes())
}

fn sync_local(view: &ClusterView, local: &mut Local) {
    let content = render_pod_file(view, &local.entry);
    if local.written.as_deref() == Some(content.as_str()) {
        return;
    }
    match write_in_place(&local.file, &content) {
        Ok(()) => local.written = Some(content),
        Err(e) => {
            tracing::warn!(file = %local.file.display(), error = %e, "writing pod hosts file")
        }
    }
}

impl Hosts {
    pub fn new(domain: &str, api_server_ip: &str, manage_root: bool) -> Self {
        Hosts {
            state: Mutex::new(State {
                view: ClusterView {
                    domain: domain.into(),
                    api_server_ip: Some(api_server_ip.into()),
                    ..ClusterView::default()
                },
                ..State::default()
            }),
            manage_root,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the hosts file of a pod about to start in namespace `netns`.
    pub fn register(&self, uid: &str, netns: &str, entry: PodEntry) {
        let mut st = self.lock();
        let mut local = Local {
            file: Path::new("/etc/netns").join(netns).join("hosts"),
            entry,
            written: None,
        };
        let view = st.view.clone();
        sync_local(&view, &mut local);
        // No DNS server is reachable from a pod (no NAT): make lookups that miss the hosts
        // file (AAAA queries, unknown names) fail at once instead of timing out.
        let resolv = Path::new("/etc/netns").join(netns).join("resolv.conf");
        if let Err(e) = write_in_place(&resolv, RESOLV_CONF) {
            tracing::warn!(file = %resolv.display(), error = %e, "writing pod resolv.conf");
        }
        st.locals.insert(uid.to_string(), local);
    }

    pub fn unregister(&self, uid: &str) {
        self.lock().locals.remove(uid);
    }

    /// Replaces the cluster view and rewrites whatever changed.
    pub fn update(&self, pods: Vec<PodEntry>, services: Vec<ServiceEntry>) {
        let mut st = self.lock();
        st.view.pods = pods;
        st.view.services = services;
        let view = st.view.clone();
        for local in st.locals.values_mut() {
            sync_local(&view, local);
        }
        if self.manage_root {
            let block = render_root_block(&view);
            if st.root_written.as_deref() != Some(block.as_str()) {
                match splice_root(Some(&block)) {
                    Ok(()) => st.root_written = Some(block),
                    Err(e) => tracing::warn!(error = %e, "updating {ROOT_HOSTS}"),
                }
            }
        }
    }

    /// Removes the agent's block from the root `/etc/hosts`.
    pub fn remove_root_block(&self) {
        if self.manage_root {
            if let Err(e) = splice_root(None) {
                tracing::warn!(error = %e, "cleaning {ROOT_HOSTS}");
            }
        }
    }
}

fn splice_root(block: Option<&str>) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(ROOT_HOSTS)?;
    let updated = splice_block(&existing, block);
    if updated != existing {
        write_in_place(Path::new(ROOT_HOSTS), &updated)?;
    }
    Ok(())
}

/// The name-relevant facts of a pod, if it has an address and is not finished.
pub fn pod_entry(pod: &Pod) -> Option<PodEntry> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let name = pod.metadata.name.clone()?;
    let spec = pod.spec.as_ref();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some(PodEntry {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        hostname: spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name.clone()),
        subdomain: spec.and_then(|s| s.subdomain.clone()),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        name,
        ip,
        ready: ready && pod.metadata.deletion_timestamp.is_none(),
    })
}

pub fn service_entry(svc: &Service) -> Option<ServiceEntry> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    Some(ServiceEntry {
        namespace: svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: svc.metadata.name.clone()?,
        selector: spec.selector.clone().filter(|s| !s.is_empty()),
        publish_not_ready: spec.publish_not_ready_addresses == Some(true),
    })
}

/// Watches pods and services cluster-wide and feeds [`Hosts::update`].
pub async fn run(ctx: Arc<Ctx>) {
    let notify = Arc::new(tokio::sync::Notify::new());
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (svcs, svc_writer) = reflector::store::<Service>();
    let n = notify.clone();
    let pod_stream = reflector(
        pod_writer,
        watcher(
            Api::<Pod>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Err(e) = ev {
            tracing::warn!(error = %e, "pod watch (dns)");
        }
        n.notify_one();
        futures::future::ready(())
    });
    let n = notify.clone();
    let svc_stream = reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Err(e) = ev {
            tracing::warn!(error = %e, "service watch (dns)");
        }
        n.notify_one();
        futures::future::ready(())
    });
    let render = async {
        loop {
            notify.notified().await;
            // Let a burst of events settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let p: Vec<PodEntry> = pods.state().iter().filter_map(|p| pod_entry(p)).collect();
            let s: Vec<ServiceEntry> = svcs
                .state()
                .iter()
                .filter_map(|s| service_entry(s))
                .collect();
            ctx.hosts.update(p, s);
        }
    };
    tokio::join!(pod_stream, svc_stream, render);
}
