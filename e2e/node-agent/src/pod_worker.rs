//! One pod, from sandbox to deletion: network namespace and hosts file, volumes and
//! environment, init containers in order, then the containers side by side; status is
//! published as it changes. On `deletionTimestamp` the containers get SIGTERM and the grace
//! period, the sandbox is torn down, and the Pod is deleted with grace period 0, as the
//! kubelet does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodCondition, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use tokio::sync::watch;

use crate::container::{self, Backoff, Plan, Shared, Slot};
use crate::context::Ctx;
use crate::env::{self, EnvInputs};
use crate::hosts::PodEntry;
use crate::status::{self, ContainerRuntime, PodRuntime, RestartPolicy};
use crate::{launch, netns, volumes, Error, Result};

/// Condition types the agent owns; others (PodScheduled, ...) are carried over.
const OWN_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// Why a running pod stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `deletionTimestamp` set: stop gracefully, then delete the Pod.
    Deleting(Duration),
    /// The Pod is gone from the API (force-deleted).
    Gone,
    /// The agent is shutting down: stop, clean up, leave the Pod.
    Shutdown(Duration),
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

fn namespace(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    h.chars().take(63).collect()
}

/// The conditions to publish: ours, plus everyone else's from the current object.
pub fn merge_conditions(current: &[PodCondition], ours: Vec<PodCondition>) -> Vec<PodCondition> {
    let mut out: Vec<PodCondition> = current
        .iter()
        .filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    out.extend(ours);
    out
}

struct Publisher {
    api: Api<Pod>,
    name: String,
    last: Option<serde_json::Value>,
}

impl Publisher {
    async fn publish(
        &mut self,
        shared: &Shared,
        latest: &watch::Receiver<Option<Pod>>,
    ) -> Result<()> {
        let current = latest
            .borrow()
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut st = status::build(&shared.snapshot(), &current, Timestamp::now());
        st.conditions = Some(merge_conditions(
            &current,
            st.conditions.take().unwrap_or_default(),
        ));
        let body = serde_json::json!({ "status": st });
        if self.last.as_ref() == Some(&body) {
            return Ok(());
        }
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        self.last = Some(body);
        Ok(())
    }
}

async fn delete_now(api: &Api<Pod>, name: &str, uid: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::info!(pod = %name, "pod deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "deleting pod"),
    }
}

/// Waits for the next reason to stop, refreshing volumes while waiting.
async fn wait_for_stop(ctx: &Ctx, rx: &mut watch::Receiver<Option<Pod>>, pod_ip: &str) -> Stop {
    let mut shutdown = ctx.shutdown.clone();
    let mut refresh = tokio::time::interval(Duration::from_secs(60));
    refresh.tick().await;
    loop {
        if *shutdown.borrow() {
            return Stop::Shutdown(Duration::from_secs(ctx.args.shutdown_grace_seconds));
        }
        match rx.borrow().as_ref() {
            None => return Stop::Gone,
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                return Stop::Deleting(grace_of(p))
            }
            Some(_) => {}
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Stop::Gone },
            _ = shutdown.changed() => {}
            _ = refresh.tick() => {
                let pod = rx.borrow().clone();
                if let Some(pod) = pod {
                    refresh_volumes(ctx, &pod, pod_ip).await;
                }
            }
        }
    }
}

/// Rewrites ConfigMap, Secret and projected volumes (new tokens, changed data).
async fn refresh_volumes(ctx: &Ctx, pod: &Pod, pod_ip: &str) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.pod_dir(&uid);
    for vol in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if vol.config_map.is_some() || vol.secret.is_some() || vol.projected.is_some() {
            if let Err(e) = volumes::prepare_one(ctx, pod, pod_ip, &dir, vol).await {
                tracing::warn!(volume = %vol.name, error = %e, "refreshing volume");
            }
        }
    }
}

async fn fetch_env_objects(
    ctx: &Ctx,
    pod: &Pod,
) -> Result<(BTreeMap<String, ConfigMap>, BTreeMap<String, Secret>)> {
    let ns = namespace(pod);
    let (cm_names, secret_names) = env::referenced_objects(pod);
    let cm_api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut cms = BTreeMap::new();
    for n in cm_names {
        if let Some(cm) = cm_api.get_opt(&n).await? {
            cms.insert(n, cm);
        }
    }
    let mut secrets = BTreeMap::new();
    for n in secret_names {
        if let Some(s) = secret_api.get_opt(&n).await? {
            secrets.insert(n, s);
        }
    }
    Ok((cms, secrets))
}

/// Materializes volumes and builds a plan per container: `(init, regular)`.
async fn prepare(ctx: &Ctx, pod: &Pod, pod_ip: &str) -> Result<(Vec<Plan>, Vec<Plan>)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = namespace(pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let dirs = volumes::prepare(ctx, pod, pod_ip, &ctx.pod_dir(&uid)).await?;
    let (cms, secrets) = fetch_env_objects(ctx, pod).await?;
    let host_ip = ctx.gateway.to_string();
    let home = ctx.pod_dir(&uid).join("home");
    std::fs::create_dir_all(&home)?;
    let home = home.to_string_lossy().into_owned();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let init_policy = if policy == RestartPolicy::Never {
        RestartPolicy::Never
    } else {
        RestartPolicy::OnFailure
    };
    let grace = grace_of(pod);
    let netns = netns::netns_name(&uid);
    let host = hostname(pod);
    let build = |c: &k8s_openapi::api::core::v1::Container, slot: Slot| -> Result<Plan> {
        let image = c.image.clone().unwrap_or_default();
        let binary = ctx.images.resolve(&image);
        if binary.is_none() && !ctx.args.allow_unmapped_images {
            return Err(Error::Invalid(format!(
                "image {image} has no local binary (--image)"
            )));
        }
        let image_dir = binary
            .and_then(|b| b.parent())
            .map(|d| d.to_string_lossy().into_owned());
        let inputs = EnvInputs {
            pod,
            pod_ip,
            host_ip: &host_ip,
            node_name: &ctx.args.node_name,
            api_host: &ctx.api_host,
            api_port: ctx.api_port,
            image_dir: image_dir.as_deref(),
            home: &home,
            config_maps: &cms,
            secrets: &secrets,
        };
        let vars = env::build(&inputs, c)?;
        let entry: Vec<String> = launch::entrypoint(c, binary)?
            .iter()
            .map(|a| env::expand(a, &vars))
            .collect();
        let mounts = volumes::mounts(c, &dirs)?;
        let script = launch::script(&host, &mounts, c.working_dir.as_deref());
        Ok(Plan {
            slot,
            name: c.name.clone(),
            argv: launch::argv(&ctx.tools, &netns, &script, &entry),
            env: vars,
            log: ctx.log_path(&ns, &name, &uid, &c.name),
            readiness: c.readiness_probe.clone(),
            liveness: c.liveness_probe.clone(),
            ports: c.ports.clone().unwrap_or_default(),
            policy: if slot.init { init_policy } else { policy },
            grace,
            pod_ip: pod_ip.to_string(),
        })
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, c)| build(c, Slot { init: true, index }))
        .collect::<Result<Vec<_>>>()?;
    let regular = spec
        .containers
        .iter()
        .enumerate()
        .map(|(index, c)| build(c, Slot { init: false, index }))
        .collect::<Result<Vec<_>>>()?;
    Ok((init, regular))
}

fn initial_runtime(ctx: &Ctx, pod: &Pod, ip: &str) -> PodRuntime {
    let spec = pod.spec.clone().unwrap_or_default();
    let previous: BTreeMap<String, i32> = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| (c.name.clone(), c.restart_count))
        .collect();
    let runtime = |c: &k8s_openapi::api::core::v1::Container| {
        let image = c.image.clone().unwrap_or_default();
        let image_id = match ctx.images.resolve(&image) {
            Some(b) => format!("local://{}", b.display()),
            None => "host://".to_string(),
        };
        let mut rt = ContainerRuntime::new(&c.name, &image, &image_id);
        // An agent restart keeps counting where the last one stopped.
        rt.restart_count = previous.get(&c.name).copied().unwrap_or(0);
        rt
    };
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    PodRuntime {
        pod_ip: Some(ip.to_string()),
        host_ip: ctx.gateway.to_string(),
        start_time,
        sandbox_ready: false,
        init_containers: spec.init_containers.iter().flatten().map(runtime).collect(),
        init_done: spec.init_containers.as_ref().is_none_or(|v| v.is_empty()),
        init_failed: false,
        containers: spec.containers.iter().map(runtime).collect(),
        terminating: false,
        setup_error: None,
    }
}

/// Runs init containers in order, then all containers until each is done.
async fn run_containers(
    ctx: &Ctx,
    shared: &Shared,
    init: Vec<Plan>,
    regular: Vec<Plan>,
    stop: &container::StopRx,
) {
    let backoff = Backoff {
        initial: Duration::from_secs(ctx.args.backoff_initial_seconds),
        max: Duration::from_secs(ctx.args.backoff_max_seconds),
    };
    for plan in init {
        let code = container::run(plan, shared, &ctx.tools, backoff, stop.clone()).await;
        if stop.borrow().is_some() {
            return;
        }
        if code != 0 {
            shared.update_pod(|rt| rt.init_failed = true);
            return;
        }
    }
    shared.update_pod(|rt| rt.init_done = true);
    let runs = regular
        .into_iter()
        .map(|plan| container::run(plan, shared, &ctx.tools, backoff, stop.clone()));
    futures::future::join_all(runs).await;
}

/// Drives one pod until it is deleted or the agent stops. `rx` carries the latest object
/// (`None` once it is gone from the API).
pub async fn run(ctx: Arc<Ctx>, mut rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = namespace(&pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if pod.metadata.deletion_timestamp.is_some() || finished {
        // Nothing of ours runs: delete if asked, else wait for that.
        if let Stop::Deleting(_) = wait_for_stop(&ctx, &mut rx, "").await {
            // Volumes an earlier run of the agent left behind.
            let _ = tokio::fs::remove_dir_all(ctx.pod_dir(&uid)).await;
            delete_now(&api, &name, &uid).await;
        }
        return;
    }

    let Some(ip) = ctx
        .ipam
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .allocate(&uid)
    else {
        tracing::error!(pod = %name, "pod CIDR exhausted");
        return;
    };
    let ip_s = ip.to_string();
    let shared = Arc::new(Shared::new(initial_runtime(&ctx, &pod, &ip_s)));
    let mut publisher = Publisher {
        api: api.clone(),
        name: name.clone(),
        last: None,
    };

    // Publish status whenever it changes (and retry failed patches).
    let pub_task = {
        let shared = shared.clone();
        let latest = rx.clone();
        let name = name.clone();
        let mut publisher = Publisher {
            api: api.clone(),
            name: name.clone(),
            last: None,
        };
        tokio::spawn(async move {
            loop {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), shared.changed.notified()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Err(e) = publisher.publish(&shared, &latest).await {
                    tracing::warn!(pod = %name, error = %e, "publishing status");
                    shared.changed.notify_one();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    };

    let (stop_tx, stop_rx) = watch::channel::<Option<Duration>>(None);
    let rx_life = rx.clone();
    let life = async {
        // Sandbox.
        loop {
            match netns::create(&uid, &ctx.args.bridge, ip, ctx.prefix, ctx.gateway).await {
                Ok(()) => break,
                Err(_) if stop_rx.borrow().is_some() => return,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "creating pod network; retrying");
                    shared.update_pod(|rt| rt.setup_error = Some(e.to_string()));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        let entry = PodEntry {
            namespace: ns.clone(),
            name: name.clone(),
            ip: ip_s.clone(),
            hostname: hostname(&pod),
            subdomain: pod.spec.as_ref().and_then(|s| s.subdomain.clone()),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ready: false,
        };
        ctx.hosts.register(&uid, &netns::netns_name(&uid), entry);
        shared.update_pod(|rt| rt.sandbox_ready = true);
        tracing::info!(pod = %name, ip = %ip_s, "pod sandbox ready");

        // Volumes and environment (ConfigMaps may appear later: retry).
        let (init, regular) = loop {
            let latest = rx_life.borrow().clone().unwrap_or_else(|| pod.clone());
            match prepare(&ctx, &latest, &ip_s).await {
                Ok(plans) => break plans,
                Err(_) if stop_rx.borrow().is_some() => return,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "preparing containers; retrying");
                    shared.update_pod(|rt| rt.setup_error = Some(e.to_string()));
                    let mut stop = stop_rx.clone();
                    let _ = tokio::time::timeout(Duration::from_secs(2), stop.changed()).await;
                }
            }
        };
        shared.update_pod(|rt| rt.setup_error = None);
        run_containers(&ctx, &shared, init, regular, &stop_rx).await;
    };
    tokio::pin!(life);

    let stop = tokio::select! {
        () = &mut life => {
            tracing::info!(pod = %name, phase = status::phase(&shared.snapshot()), "all containers done");
            wait_for_stop(&ctx, &mut rx, &ip_s).await
        }
        stop = wait_for_stop(&ctx, &mut rx, &ip_s) => {
            let grace = match stop {
                Stop::Deleting(g) | Stop::Shutdown(g) => g,
                Stop::Gone => Duration::from_secs(1),
            };
            tracing::info!(pod = %name, ?stop, "stopping pod");
            shared.update_pod(|rt| rt.terminating = true);
            let _ = stop_tx.send(Some(grace));
            // Setup loops never end on their own; containers end within the grace period.
            let _ = tokio::time::timeout(grace + Duration::from_secs(5), &mut life).await;
            stop
        }
    };

    pub_task.abort();
    if stop != Stop::Gone {
        if let Err(e) = publisher.publish(&shared, &rx).await {
            tracing::debug!(pod = %name, error = %e, "final status");
        }
    }
    ctx.hosts.unregister(&uid);
    netns::delete(&uid).await;
    ctx.ipam
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .release(&uid);
    let _ = tokio::fs::remove_dir_all(ctx.pod_dir(&uid)).await;
    if let Stop::Deleting(_) = stop {
        delete_now(&api, &name, &uid).await;
    }
    tracing::info!(pod = %name, "pod cleaned up");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: &str, s: &str) -> PodCondition {
        PodCondition {
            type_: t.into(),
            status: s.into(),
            ..PodCondition::default()
        }
    }

    #[test]
    fn merge_conditions_keeps_foreign_and_replaces_own() {
        let current = vec![cond("PodScheduled", "True"), cond("Ready", "False")];
        let merged = merge_conditions(&current, vec![cond("Ready", "True")]);
        assert_eq!(
            merged,
            vec![cond("PodScheduled", "True"), cond("Ready", "True")]
        );
    }

    #[test]
    fn grace_prefers_deletion_grace_then_spec_then_thirty_seconds() {
        let mut pod = Pod::default();
        assert_eq!(grace_of(&pod), Duration::from_secs(30));
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            termination_grace_period_seconds: Some(120),
            ..Default::default()
        });
        assert_eq!(grace_of(&pod), Duration::from_secs(120));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(grace_of(&pod), Duration::from_secs(2));
    }
}
