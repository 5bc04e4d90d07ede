//! Readiness and liveness probes: thresholds (pure) and the three handlers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::launch::{exec_argv, Tools};

/// Timing and thresholds of a probe, with Kubernetes defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        let count = |v: Option<i32>, d: i32| v.unwrap_or(d).max(1) as u32;
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(p.success_threshold, 1),
            failure_threshold: count(p.failure_threshold, 3),
        }
    }
}

/// Consecutive results against the thresholds. `result` starts as `initial` (readiness:
/// not ready; liveness: alive) and flips only after threshold-many opposite results.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub timing: Timing,
    pub result: bool,
    successes: u32,
    failures: u32,
}

impl Tracker {
    pub fn new(timing: Timing, initial: bool) -> Self {
        Tracker {
            timing,
            result: initial,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one probe outcome; returns the new result if it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let flip = if ok {
            !self.result && self.successes >= self.timing.success_threshold
        } else {
            self.result && self.failures >= self.timing.failure_threshold
        };
        if flip {
            self.result = ok;
            Some(ok)
        } else {
            None
        }
    }
}

/// A numeric port, or a named one looked up in the container's ports.
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => name.parse().ok().or_else(|| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }),
    }
}

/// The HTTP/1.1 request of an httpGet probe.
pub fn http_request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Success per Kubernetes: a status line with 200 <= code < 400.
pub fn http_success(response_head: &str) -> bool {
    let mut parts = response_head.split_whitespace();
    let proto_ok = parts.next().is_some_and(|p| p.starts_with("HTTP/"));
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    proto_ok && matches!(code, Some(200..=399))
}

/// Where a probe runs.
pub struct Target<'a> {
    pub pod_ip: &'a str,
    pub ports: &'a [ContainerPort],
    pub pid: Option<u32>,
    pub env: &'a BTreeMap<String, String>,
    pub tools: &'a Tools,
}

async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream
        .write_all(http_request(host, port, path, headers).as_bytes())
        .await?;
    let mut buf = vec![0u8; 256];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].contains(&b'\n') {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    Ok(http_success(head.lines().next().unwrap_or("")))
}

async fn exec(target: &Target<'_>, command: &[String]) -> std::io::Result<bool> {
    let Some(pid) = target.pid else {
        return Ok(false);
    };
    let argv = exec_argv(target.tools, pid, command);
    let status = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(target.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await?;
    Ok(status.success())
}

/// Runs `probe` once; errors and timeouts count as failure. Unsupported handlers (gRPC,
/// HTTPS) succeed so that they do not block readiness, with a warning.
pub async fn run(probe: &Probe, target: &Target<'_>) -> bool {
    let timeout = Timing::of(probe).timeout;
    let fut = async {
        if let Some(h) = &probe.http_get {
            if h.scheme.as_deref() == Some("HTTPS") {
                tracing::warn!("HTTPS probes are not supported; counted as success");
                return Ok(true);
            }
            let host = h
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or(target.pod_ip);
            let Some(port) = resolve_port(&h.port, target.ports) else {
                return Ok(false);
            };
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            http_get(host, port, h.path.as_deref().unwrap_or("/"), &headers).await
        } else if let Some(t) = &probe.tcp_socket {
            let host = t
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or(target.pod_ip);
            let Some(port) = resolve_port(&t.port, target.ports) else {
                return Ok(false);
            };
            tokio::net::TcpStream::connect((host, port))
                .await
                .map(|_| true)
        } else if let Some(e) = &probe.exec {
            exec(target, e.command.as_deref().unwrap_or_default()).await
        } else {
            tracing::warn!("probe handler not supported; counted as success");
            Ok(true)
        }
    };
    matches!(tokio::time::timeout(timeout, fut).await, Ok(Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn readiness_flips_after_success_threshold_and_back_after_failure_threshold() {
        let mut t = Tracker::new(timing(2, 3), false);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn liveness_fails_only_after_consecutive_failures() {
        let mut t = Tracker::new(timing(1, 2), true);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn timing_defaults_match_kubernetes() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn named_ports_resolve_through_container_ports() {
        let ports = vec![ContainerPort {
            name: Some("http".into()),
            container_port: 9644,
            ..ContainerPort::default()
        }];
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &ports),
            Some(9644)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &ports), Some(80));
        assert_eq!(
            resolve_port(&IntOrString::String("nope".into()), &ports),
            None
        );
    }

    #[test]
    fn http_wire_format() {
        let req = http_request("10.0.0.2", 8080, "readyz", &[("X-A".into(), "1".into())]);
        assert!(req.starts_with("GET /readyz HTTP/1.1\r\nHost: 10.0.0.2:8080\r\n"));
        assert!(req.ends_with("X-A: 1\r\n\r\n"));
        assert!(http_success("HTTP/1.1 200 OK"));
        assert!(http_success("HTTP/1.0 302 Found"));
        assert!(!http_success("HTTP/1.1 503 Service Unavailable"));
        assert!(!http_success("garbage"));
    }

    #[tokio::test]
    async fn http_probe_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ");
                let line = if ok {
                    "HTTP/1.1 200 OK\r\n\r\n"
                } else {
                    "HTTP/1.1 500 Err\r\n\r\n"
                };
                let _ = s.write_all(line.as_bytes()).await;
            }
        });
        let tools = Tools {
            ip: "ip".into(),
            unshare: "unshare".into(),
            sh: "sh".into(),
            nsenter: "nsenter".into(),
        };
        let env = BTreeMap::new();
        let target = Target {
            pod_ip: "127.0.0.1",
            ports: &[],
            pid: None,
            env: &env,
            tools: &tools,
        };
        let probe = |path: &str, port: i32| Probe {
            http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::Int(port),
                ..Default::default()
            }),
            ..Probe::default()
        };
        assert!(run(&probe("/ok", port as i32), &target).await);
        assert!(!run(&probe("/bad", port as i32), &target).await);
        let tcp = Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(port as i32),
                ..Default::default()
            }),
            ..Probe::default()
        };
        assert!(run(&tcp, &target).await);
    }
}
