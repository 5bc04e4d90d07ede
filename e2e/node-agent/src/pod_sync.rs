//! The watch on pods bound to this node: one [`pod_worker`](crate::pod_worker) per pod UID,
//! fed the latest object through a watch channel (`None` once the pod is gone).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::pod_worker;

struct Worker {
    tx: watch::Sender<Option<Pod>>,
    handle: JoinHandle<()>,
}

/// Routes pod events to workers until the watch ends; returns the workers still running.
pub async fn run(ctx: Arc<Ctx>) -> Vec<JoinHandle<()>> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.args.node_name);
    let mut stream = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    // UIDs whose worker finished (the pod was deleted): late events must not revive them.
    let mut done: HashSet<String> = HashSet::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut shutdown = ctx.shutdown.clone();

    loop {
        let event = tokio::select! {
            ev = stream.next() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        workers.retain(|uid, w| {
            let finished = w.handle.is_finished();
            if finished {
                done.insert(uid.clone());
            }
            !finished
        });
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                apply(&ctx, &mut workers, &done, pod);
            }
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the watch was down.
                for (uid, w) in &workers {
                    if !listed.contains(uid) {
                        let _ = w.tx.send(None);
                    }
                }
            }
            Ok(watcher::Event::Apply(pod)) => apply(&ctx, &mut workers, &done, pod),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(w) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    let _ = w.tx.send(None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch"),
        }
    }
    workers.into_values().map(|w| w.handle).collect()
}

fn apply(ctx: &Arc<Ctx>, workers: &mut HashMap<String, Worker>, done: &HashSet<String>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if done.contains(&uid) {
        return;
    }
    if let Some(w) = workers.get(&uid) {
        let _ = w.tx.send(Some(pod));
        return;
    }
    tracing::info!(
        pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")),
        %uid,
        "new pod"
    );
    let (tx, rx) = watch::channel(Some(pod));
    let handle = tokio::spawn(pod_worker::run(ctx.clone(), rx));
    workers.insert(uid, Worker { tx, handle });
}
