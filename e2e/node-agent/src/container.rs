//! One container's life: start it, probe it, restart it per the pod's restart policy with
//! exponential backoff, and stop it (SIGTERM, grace, SIGKILL) when told to.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::jiff::Timestamp;
use tokio::process::Child;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::launch::Tools;
use crate::probes::{self, Target, Timing, Tracker};
use crate::process;
use crate::status::{ContainerRuntime, PodRuntime, RestartPolicy, State, Terminated};

/// The runtime state of a pod, shared by its container tasks and its worker.
pub struct Shared {
    rt: Mutex<PodRuntime>,
    pub changed: Notify,
}

/// Which container of the pod.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub init: bool,
    pub index: usize,
}

impl Shared {
    pub fn new(rt: PodRuntime) -> Self {
        Shared {
            rt: Mutex::new(rt),
            changed: Notify::new(),
        }
    }

    pub fn snapshot(&self) -> PodRuntime {
        self.rt.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the pod runtime and wakes the status publisher.
    pub fn update_pod(&self, f: impl FnOnce(&mut PodRuntime)) {
        f(&mut self.rt.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_one();
    }

    pub fn update(&self, slot: Slot, f: impl FnOnce(&mut ContainerRuntime)) {
        self.update_pod(|rt| {
            let list = if slot.init {
                &mut rt.init_containers
            } else {
                &mut rt.containers
            };
            if let Some(c) = list.get_mut(slot.index) {
                f(c);
            }
        });
    }
}

/// Everything needed to run one container.
#[derive(Debug, Clone)]
pub struct Plan {
    pub slot: Slot,
    pub name: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub log: PathBuf,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub ports: Vec<ContainerPort>,
    pub policy: RestartPolicy,
    /// Grace period when the liveness probe kills the container.
    pub grace: Duration,
    pub pod_ip: String,
}

/// Restart delays.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before the next restart: `initial` first and after a long healthy run,
    /// otherwise double the previous delay, capped at `max`.
    pub fn next(&self, previous: Option<Duration>, ran_for: Duration) -> Duration {
        match previous {
            Some(p) if ran_for < self.max * 2 => (p * 2).min(self.max),
            _ => self.initial,
        }
    }
}

/// The stop request: `Some(grace)` once the container must stop.
pub type StopRx = watch::Receiver<Option<Duration>>;

enum Outcome {
    Exited(ExitStatus),
    Stopped(ExitStatus),
    LivenessKilled(ExitStatus),
}

struct Probing {
    probe: Probe,
    tracker: Tracker,
    next: Instant,
}

impl Probing {
    fn new(probe: &Option<Probe>, initial: bool, started: Instant) -> Option<Self> {
        probe.as_ref().map(|p| {
            let timing = Timing::of(p);
            Probing {
                probe: p.clone(),
                tracker: Tracker::new(timing, initial),
                next: started + timing.initial_delay,
            }
        })
    }
}

fn stop_requested(stop: &StopRx) -> Option<Duration> {
    *stop.borrow()
}

async fn supervise(
    child: &mut Child,
    plan: &Plan,
    shared: &Shared,
    tools: &Tools,
    stop: &mut StopRx,
) -> std::io::Result<Outcome> {
    let started = Instant::now();
    let mut readiness = Probing::new(&plan.readiness, false, started);
    let mut liveness = Probing::new(&plan.liveness, true, started);
    let pid = child.id();
    loop {
        let next = [readiness.as_ref(), liveness.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.next)
            .min();
        tokio::select! {
            status = child.wait() => return Ok(Outcome::Exited(status?)),
            changed = stop.changed() => {
                let grace = match changed {
                    Ok(()) => stop_requested(stop),
                    Err(_) => Some(Duration::from_secs(2)),
                };
                if let Some(grace) = grace {
                    return Ok(Outcome::Stopped(process::stop(child, grace).await?));
                }
            }
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let target = Target {
                    pod_ip: &plan.pod_ip,
                    ports: &plan.ports,
                    pid,
                    env: &plan.env,
                    tools,
                };
                let now = Instant::now();
                if let Some(r) = readiness.as_mut().filter(|r| r.next <= now) {
                    let ok = probes::run(&r.probe, &target).await;
                    r.next = Instant::now() + r.tracker.timing.period;
                    if let Some(ready) = r.tracker.observe(ok) {
                        tracing::info!(container = %plan.name, ready, "readiness changed");
                        shared.update(plan.slot, |c| c.ready = ready);
                    }
                }
                if let Some(l) = liveness.as_mut().filter(|l| l.next <= now) {
                    let ok = probes::run(&l.probe, &target).await;
                    l.next = Instant::now() + l.tracker.timing.period;
                    if l.tracker.observe(ok) == Some(false) {
                        tracing::warn!(container = %plan.name, "liveness probe failed; killing container");
                        return Ok(Outcome::LivenessKilled(process::stop(child, plan.grace).await?));
                    }
                }
            }
        }
    }
}

/// Runs the container until it is done for good; returns its last exit code.
pub async fn run(
    plan: Plan,
    shared: &Shared,
    tools: &Tools,
    backoff: Backoff,
    mut stop: StopRx,
) -> i32 {
    let mut delay: Option<Duration> = None;
    loop {
        if stop_requested(&stop).is_some() {
            shared.update(plan.slot, |c| {
                c.done = true;
                c.ready = false;
            });
            return 0;
        }
        let started_at = Timestamp::now();
        let started = Instant::now();
        let (code, reason, message, stopped) =
            match process::spawn(&plan.argv, &plan.env, &plan.log) {
                Err(e) => {
                    tracing::warn!(container = %plan.name, error = %e, "starting container");
                    (128, "StartError".to_string(), Some(e.to_string()), false)
                }
                Ok(mut child) => {
                    let pid = child.id().unwrap_or(0);
                    tracing::info!(container = %plan.name, pid, "container started");
                    let ready = plan.readiness.is_none();
                    shared.update(plan.slot, |c| {
                        c.state = State::Running { started_at };
                        c.ready = ready;
                        c.container_id = Some(format!("spate://{pid}"));
                    });
                    let outcome = supervise(&mut child, &plan, shared, tools, &mut stop).await;
                    // Whatever the main process left behind in its group goes with it.
                    process::signal_group(pid, libc::SIGKILL);
                    match outcome {
                        Ok(Outcome::Exited(st)) => {
                            (process::exit_code(st), String::new(), None, false)
                        }
                        Ok(Outcome::Stopped(st)) => {
                            (process::exit_code(st), String::new(), None, true)
                        }
                        Ok(Outcome::LivenessKilled(st)) => (
                            process::exit_code(st),
                            String::new(),
                            Some("liveness probe failed".to_string()),
                            false,
                        ),
                        Err(e) => (128, "Error".to_string(), Some(e.to_string()), false),
                    }
                }
            };
        let reason = if !reason.is_empty() {
            reason
        } else if code == 0 {
            "Completed".to_string()
        } else {
            "Error".to_string()
        };
        tracing::info!(container = %plan.name, exit_code = code, %reason, "container exited");
        let terminated = Terminated {
            exit_code: code,
            reason,
            message,
            started_at: Some(started_at),
            finished_at: Timestamp::now(),
        };
        let restart = !stopped && stop_requested(&stop).is_none() && plan.policy.restarts(code);
        if !restart {
            shared.update(plan.slot, |c| {
                c.state = State::Terminated(terminated);
                c.ready = false;
                c.done = true;
            });
            return code;
        }
        let wait = backoff.next(delay, started.elapsed());
        delay = Some(wait);
        shared.update(plan.slot, |c| {
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container",
                    wait.as_secs()
                )),
            };
            c.last_terminated = Some(terminated.clone());
            c.ready = false;
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {
                shared.update(plan.slot, |c| {
                    c.state = State::Terminated(terminated);
                    c.done = true;
                });
                return code;
            }
        }
        shared.update(plan.slot, |c| c.restart_count += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let b = backoff();
        let short = Duration::from_secs(1);
        assert_eq!(b.next(None, short), Duration::from_secs(1));
        assert_eq!(
            b.next(Some(Duration::from_secs(1)), short),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.next(Some(Duration::from_secs(8)), short),
            Duration::from_secs(8)
        );
        assert_eq!(
            b.next(Some(Duration::from_secs(8)), Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }

    fn shared_with_one_container() -> Shared {
        Shared::new(PodRuntime {
            pod_ip: Some("127.0.0.1".into()),
            host_ip: "127.0.0.1".into(),
            start_time: Timestamp::now(),
            sandbox_ready: true,
            init_containers: vec![],
            init_done: true,
            init_failed: false,
            containers: vec![ContainerRuntime::new("c", "local/sh", "local:///bin/sh")],
            terminating: false,
            setup_error: None,
        })
    }

    fn plan(script: &str, policy: RestartPolicy, log: PathBuf) -> Plan {
        Plan {
            slot: Slot {
                init: false,
                index: 0,
            },
            name: "c".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: BTreeMap::new(),
            log,
            readiness: None,
            liveness: None,
            ports: vec![],
            policy,
            grace: Duration::from_secs(1),
            pod_ip: "127.0.0.1".into(),
        }
    }

    fn tools() -> Tools {
        Tools {
            ip: "ip".into(),
            unshare: "unshare".into(),
            sh: "sh".into(),
            nsenter: "nsenter".into(),
        }
    }

    #[tokio::test]
    async fn on_failure_restarts_until_success_and_counts_restarts() {
        let dir = tempfile::tempdir().expect("tmp");
        let marker = dir.path().join("count");
        let script = format!(
            "echo x >> {m}; [ $(wc -l < {m}) -ge 3 ]",
            m = marker.display()
        );
        let shared = shared_with_one_container();
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
        let (_tx, rx) = watch::channel(None);
        let code = run(
            plan(&script, RestartPolicy::OnFailure, dir.path().join("log")),
            &shared,
            &tools(),
            b,
            rx,
        )
        .await;
        assert_eq!(code, 0);
        let rt = shared.snapshot();
        assert_eq!(rt.containers[0].restart_count, 2);
        assert!(rt.containers[0].done);
        assert_eq!(crate::status::phase(&rt), "Succeeded");
    }

    #[tokio::test]
    async fn stop_request_terminates_a_running_container_without_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let shared = shared_with_one_container();
        let (tx, rx) = watch::channel(None);
        let p = plan(
            "exec sleep 30",
            RestartPolicy::Always,
            dir.path().join("log"),
        );
        let t = tools();
        let run_fut = run(p, &shared, &t, backoff(), rx);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = tx.send(Some(Duration::from_secs(5)));
        };
        let (code, ()) = tokio::join!(run_fut, stopper);
        assert_eq!(code, 143);
        let rt = shared.snapshot();
        assert!(matches!(rt.containers[0].state, State::Terminated(_)));
        assert_eq!(rt.containers[0].restart_count, 0);
    }

    #[tokio::test]
    async fn failing_liveness_probe_kills_and_restarts() {
        let dir = tempfile::tempdir().expect("tmp");
        let shared = shared_with_one_container();
        let (tx, rx) = watch::channel(None);
        let mut p = plan(
            "exec sleep 30",
            RestartPolicy::Always,
            dir.path().join("log"),
        );
        // Nothing listens on port 1: every TCP probe fails.
        p.liveness = Some(Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1),
                ..Default::default()
            }),
            period_seconds: Some(1),
            failure_threshold: Some(1),
            ..Probe::default()
        });
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
        let t = tools();
        let run_fut = run(p, &shared, &t, b, rx);
        let watcher = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if shared.snapshot().containers[0].restart_count >= 1 {
                    break;
                }
            }
            let _ = tx.send(Some(Duration::from_secs(1)));
        };
        tokio::join!(run_fut, watcher);
        let c = &shared.snapshot().containers[0];
        assert!(c.restart_count >= 1);
        let last = c.last_terminated.as_ref().and_then(|t| t.message.clone());
        assert_eq!(last.as_deref(), Some("liveness probe failed"));
    }
}
