//! Container processes: each runs in its own process group so that signals reach
//! everything it forked.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts `argv` with exactly `env`, stdout and stderr appended to `log`, as the leader of
/// a new process group.
pub fn spawn(
    argv: &[String],
    env: &BTreeMap<String, String>,
    log: &Path,
) -> std::io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
}

/// Sends `signal` to process group `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            kill(-pgid, signal);
        }
    }
}

/// Sends `signal` to process `pid` (> 1).
pub fn signal_pid(pid: i32, signal: i32) {
    if pid > 1 {
        kill(pid, signal);
    }
}

#[allow(unsafe_code)]
fn kill(target: i32, signal: i32) {
    // Callers pass a pid > 1 or a process group < -1, never 0 (our own group) or -1
    // (every process).
    debug_assert!(!(-1..=1).contains(&target));
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; its only effect
    // is the signal, and a target that no longer exists yields ESRCH, which we ignore.
    unsafe {
        libc::kill(target, signal);
    }
}

/// The exit code Kubernetes reports: the code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// SIGTERM to the group, SIGKILL after `grace`; returns how the leader ended.
pub async fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(pid) = child.id() {
        signal_group(pid, libc::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            signal_group(pid, libc::SIGKILL);
            return status;
        }
        signal_group(pid, libc::SIGKILL);
    }
    child.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn spawned_process_gets_only_the_given_env_and_logs_to_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("c.log");
        let env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let mut child = spawn(
            &sh("echo $GREETING; echo ${HOME:-none} >&2; exit 3"),
            &env,
            &log,
        )
        .expect("spawn");
        let status = child.wait().await.expect("wait");
        assert_eq!(exit_code(status), 3);
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "hi\nnone\n");
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_for_processes_ignoring_sigterm() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("c.log");
        let mut child = spawn(
            &sh("trap '' TERM; echo up; while true; do sleep 0.1; done"),
            &BTreeMap::new(),
            &log,
        )
        .expect("spawn");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = stop(&mut child, Duration::from_millis(300))
            .await
            .expect("stop");
        assert_eq!(exit_code(status), 137);
    }

    #[tokio::test]
    async fn stop_lets_sigterm_end_a_cooperative_process() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("c.log");
        let mut child = spawn(&sh("exec sleep 30"), &BTreeMap::new(), &log).expect("spawn");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = stop(&mut child, Duration::from_secs(5))
            .await
            .expect("stop");
        assert_eq!(exit_code(status), 143);
    }
}
