//! PodStatus from what the agent observed about a pod's containers.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

/// One container as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub restart_count: i32,
    pub state: State,
    pub last_terminated: Option<Terminated>,
    pub ready: bool,
    /// Terminated and will not run again (restart policy, or the pod is stopping).
    pub done: bool,
}

impl ContainerRuntime {
    pub fn new(name: &str, image: &str, image_id: &str) -> Self {
        ContainerRuntime {
            name: name.into(),
            image: image.into(),
            image_id: image_id.into(),
            container_id: None,
            restart_count: 0,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_terminated: None,
            ready: false,
            done: false,
        }
    }
}

/// Restart policy of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` runs again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// A pod as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRuntime {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Timestamp,
    pub sandbox_ready: bool,
    pub init_containers: Vec<ContainerRuntime>,
    pub init_done: bool,
    /// An init container failed and will not be retried.
    pub init_failed: bool,
    pub containers: Vec<ContainerRuntime>,
    pub terminating: bool,
    /// Set when setup (volumes, env) keeps failing, shown on waiting containers.
    pub setup_error: Option<String>,
}

fn exit_ok(c: &ContainerRuntime) -> Option<bool> {
    match &c.state {
        State::Terminated(t) => Some(t.exit_code == 0),
        _ => None,
    }
}

/// The pod phase (kubelet's getPhase, simplified).
pub fn phase(rt: &PodRuntime) -> &'static str {
    if rt.init_failed {
        return "Failed";
    }
    if !rt.init_done {
        return "Pending";
    }
    if !rt.containers.is_empty() && rt.containers.iter().all(|c| c.done) {
        return if rt.containers.iter().all(|c| exit_ok(c) == Some(true)) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let ever_ran = |c: &ContainerRuntime| {
        matches!(c.state, State::Running { .. } | State::Terminated(_))
            || c.last_terminated.is_some()
    };
    if rt.containers.iter().any(ever_ran) {
        "Running"
    } else {
        "Pending"
    }
}

fn terminated_state(t: &Terminated) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.map(Time),
            finished_at: Some(Time(t.finished_at)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn container_status(c: &ContainerRuntime, setup_error: Option<&str>) -> ContainerStatus {
    let state = match &c.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone().or_else(|| setup_error.map(String::from)),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        State::Terminated(t) => terminated_state(t),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        restart_count: c.restart_count,
        ready: c.ready,
        started: Some(matches!(c.state, State::Running { .. })),
        state: Some(state),
        last_state: c.last_terminated.as_ref().map(terminated_state),
        ..ContainerStatus::default()
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    previous: &[PodCondition],
    now: Timestamp,
) -> PodCondition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or(Some(Time(now)));
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(String::from),
        last_transition_time,
        ..PodCondition::default()
    }
}

/// The status the agent reports; `previous` conditions keep their transition times.
pub fn build(rt: &PodRuntime, previous: &[PodCondition], now: Timestamp) -> PodStatus {
    let phase = phase(rt);
    let all_ready = !rt.containers.is_empty() && rt.containers.iter().all(|c| c.ready);
    let (ready, reason) = match phase {
        "Succeeded" | "Failed" => (false, Some("PodCompleted")),
        _ if !all_ready => (false, Some("ContainersNotReady")),
        _ => (true, None),
    };
    let ready = ready && !rt.terminating;
    let setup_error = rt.setup_error.as_deref();
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            rt.sandbox_ready,
            None,
            previous,
            now,
        ),
        condition(
            "Initialized",
            rt.init_done,
            (!rt.init_done).then_some("ContainersNotInitialized"),
            previous,
            now,
        ),
        condition(
            "ContainersReady",
            ready,
            reason.filter(|_| !ready),
            previous,
            now,
        ),
        condition("Ready", ready, reason.filter(|_| !ready), previous, now),
    ];
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some(rt.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: rt.host_ip.clone(),
        }]),
        pod_ip: rt.pod_ip.clone(),
        pod_ips: rt.pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]),
        start_time: Some(Time(rt.start_time)),
        conditions: Some(conditions),
        init_container_statuses: (!rt.init_containers.is_empty()).then(|| {
            rt.init_containers
                .iter()
                .map(|c| container_status(c, setup_error))
                .collect()
        }),
        container_statuses: Some(
            rt.containers
                .iter()
                .map(|c| container_status(c, setup_error))
                .collect(),
        ),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("timestamp")
    }

    fn runtime(containers: Vec<ContainerRuntime>) -> PodRuntime {
        PodRuntime {
            pod_ip: Some("10.244.0.2".into()),
            host_ip: "10.244.0.1".into(),
            start_time: ts(100),
            sandbox_ready: true,
            init_containers: vec![],
            init_done: true,
            init_failed: false,
            containers,
            terminating: false,
            setup_error: None,
        }
    }

    fn running(name: &str, ready: bool) -> ContainerRuntime {
        ContainerRuntime {
            state: State::Running {
                started_at: ts(110),
            },
            ready,
            ..ContainerRuntime::new(name, "local/sh", "local:///bin/sh")
        }
    }

    fn exited(name: &str, code: i32, done: bool) -> ContainerRuntime {
        ContainerRuntime {
            state: State::Terminated(Terminated {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
                started_at: Some(ts(110)),
                finished_at: ts(120),
            }),
            done,
            ..ContainerRuntime::new(name, "local/sh", "local:///bin/sh")
        }
    }

    #[test]
    fn phase_follows_container_lifecycle() {
        assert_eq!(
            phase(&runtime(vec![ContainerRuntime::new("a", "i", "i")])),
            "Pending"
        );
        assert_eq!(phase(&runtime(vec![running("a", false)])), "Running");
        assert_eq!(
            phase(&runtime(vec![exited("a", 0, true), exited("b", 0, true)])),
            "Succeeded"
        );
        assert_eq!(
            phase(&runtime(vec![exited("a", 0, true), exited("b", 2, true)])),
            "Failed"
        );
        // Crashed but will restart: still Running.
        assert_eq!(phase(&runtime(vec![exited("a", 137, false)])), "Running");
        let mut rt = runtime(vec![ContainerRuntime::new("a", "i", "i")]);
        rt.init_done = false;
        assert_eq!(phase(&rt), "Pending");
        rt.init_failed = true;
        assert_eq!(phase(&rt), "Failed");
    }

    #[test]
    fn ready_condition_needs_every_container_ready_and_not_terminating() {
        let now = ts(200);
        let cond = |st: &PodStatus, t: &str| {
            st.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                .map(|c| c.status.clone())
                .unwrap_or_default()
        };
        let st = build(
            &runtime(vec![running("a", true), running("b", false)]),
            &[],
            now,
        );
        assert_eq!(cond(&st, "Ready"), "False");
        let st = build(
            &runtime(vec![running("a", true), running("b", true)]),
            &[],
            now,
        );
        assert_eq!(cond(&st, "Ready"), "True");
        assert_eq!(cond(&st, "ContainersReady"), "True");
        let mut rt = runtime(vec![running("a", true)]);
        rt.terminating = true;
        assert_eq!(cond(&build(&rt, &[], now), "Ready"), "False");
    }

    #[test]
    fn condition_transition_time_is_kept_while_status_is_unchanged() {
        let rt = runtime(vec![running("a", true)]);
        let first = build(&rt, &[], ts(200));
        let prev = first.conditions.clone().unwrap_or_default();
        let second = build(&rt, &prev, ts(300));
        let ready = |st: &PodStatus| {
            st.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned())
                .and_then(|c| c.last_transition_time)
        };
        assert_eq!(ready(&second), Some(Time(ts(200))));
    }

    #[test]
    fn container_status_reports_restarts_and_last_termination() {
        let mut c = running("a", true);
        c.restart_count = 2;
        c.last_terminated = Some(Terminated {
            exit_code: 137,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: ts(150),
        });
        let st = build(&runtime(vec![c]), &[], ts(200));
        let cs = &st.container_statuses.unwrap_or_default()[0];
        assert_eq!(cs.restart_count, 2);
        assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        let last = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        assert_eq!(last, Some(137));
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(st.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn restart_policy_decides_on_exit_code() {
        assert!(RestartPolicy::Always.restarts(0));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(1));
        assert!(!RestartPolicy::Never.restarts(1));
        assert_eq!(RestartPolicy::parse(None), RestartPolicy::Always);
    }
}
