//! The pod network: a bridge in the root namespace and, per pod, a network namespace joined
//! to it by a veth pair. Everything goes through the `ip` tool.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::{Error, Result};

/// Prefix of every namespace the agent creates, so stale ones can be found at startup.
pub const NETNS_PREFIX: &str = "spate-";

/// The network namespace of pod `uid`.
pub fn netns_name(uid: &str) -> String {
    format!("{NETNS_PREFIX}{uid}")
}

/// The root-side veth of pod `uid` (interface names are at most 15 bytes).
pub fn host_veth(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect();
    format!("sv{hex}")
}

fn peer_veth(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect();
    format!("sp{hex}")
}

/// `ip` invocations that create the bridge (idempotent: `replace` and `up`).
pub fn bridge_commands(bridge: &str, gateway: Ipv4Addr, prefix: u8) -> Vec<Vec<String>> {
    [
        vec![
            "addr",
            "replace",
            &format!("{gateway}/{prefix}"),
            "dev",
            bridge,
        ],
        vec!["link", "set", bridge, "up"],
    ]
    .iter()
    .map(|c| c.iter().map(|s| s.to_string()).collect())
    .collect()
}

/// `ip` invocations that give pod `uid` its namespace with `eth0` at `ip`.
pub fn pod_commands(
    uid: &str,
    bridge: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Vec<Vec<String>> {
    let ns = netns_name(uid);
    let host = host_veth(uid);
    let peer = peer_veth(uid);
    let addr = format!("{ip}/{prefix}");
    let gw = gateway.to_string();
    let cmds: Vec<Vec<&str>> = vec![
        vec!["netns", "add", &ns],
        vec!["link", "add", &host, "type", "veth", "peer", "name", &peer],
        vec!["link", "set", &peer, "netns", &ns],
        vec!["-n", &ns, "link", "set", &peer, "name", "eth0"],
        vec!["-n", &ns, "addr", "add", &addr, "dev", "eth0"],
        vec!["-n", &ns, "link", "set", "eth0", "up"],
        vec!["-n", &ns, "link", "set", "lo", "up"],
        vec!["-n", &ns, "route", "add", "default", "via", &gw],
        vec!["link", "set", &host, "master", bridge],
        vec!["link", "set", &host, "up"],
    ];
    cmds.into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}

async fn ip(args: &[String]) -> Result<()> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Creates the bridge if missing and gives it the gateway address.
pub async fn ensure_bridge(bridge: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    if !Path::new("/sys/class/net").join(bridge).exists() {
        let add = ["link", "add", bridge, "type", "bridge"].map(String::from);
        if let Err(e) = ip(&add).await {
            // Some kernels (gVisor) have no /sys/class/net entry; "exists" is fine.
            if !e.to_string().contains("exists") {
                return Err(e);
            }
        }
    }
    for cmd in bridge_commands(bridge, gateway, prefix) {
        ip(&cmd).await?;
    }
    Ok(())
}

/// Creates pod `uid`'s namespace; on failure removes what was made.
pub async fn create(
    uid: &str,
    bridge: &str,
    ip_addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    delete(uid).await;
    for cmd in pod_commands(uid, bridge, ip_addr, prefix, gateway) {
        if let Err(e) = ip(&cmd).await {
            delete(uid).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Processes whose network namespace is `/var/run/netns/<ns>`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(Path::new("/var/run/netns").join(ns)) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
        })
        .collect()
}

/// Removes pod `uid`'s veth, namespace and `/etc/netns` files, killing any process still
/// inside (daemons that left the container's process group, or orphans of an agent that
/// died); missing parts are fine.
pub async fn delete(uid: &str) {
    let ns = netns_name(uid);
    for pid in pids_in(&ns) {
        tracing::info!(netns = %ns, pid, "killing leftover process");
        crate::process::signal_pid(pid, libc::SIGKILL);
    }
    let _ = ip(&["link", "del", &host_veth(uid)].map(String::from)).await;
    let _ = ip(&["netns", "del", &ns].map(String::from)).await;
    let _ = tokio::fs::remove_dir_all(Path::new("/etc/netns").join(&ns)).await;
}

/// Deletes namespaces left by an earlier run of the agent.
pub async fn delete_stale() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(uid) = name.strip_prefix(NETNS_PREFIX) {
            tracing::info!(netns = %name, "removing stale pod network namespace");
            delete(uid).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8e2a4c-1111-2222-3333-444455556666";

    #[test]
    fn interface_names_fit_in_fifteen_bytes() {
        assert_eq!(host_veth(UID), "sv0f8e2a4c11");
        assert!(host_veth(UID).len() <= 15 && peer_veth(UID).len() <= 15);
        assert_eq!(netns_name(UID), format!("spate-{UID}"));
    }

    #[test]
    fn pod_commands_move_peer_into_namespace_before_configuring_it() {
        let cmds = pod_commands(
            UID,
            "spate0",
            Ipv4Addr::new(10, 244, 0, 7),
            24,
            Ipv4Addr::new(10, 244, 0, 1),
        );
        let joined: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        let ns = netns_name(UID);
        assert_eq!(joined[0], format!("netns add {ns}"));
        assert!(joined.contains(&format!("-n {ns} addr add 10.244.0.7/24 dev eth0")));
        assert!(joined.contains(&format!("-n {ns} route add default via 10.244.0.1")));
        assert!(joined.contains(&"link set sv0f8e2a4c11 master spate0".to_string()));
        let moved = joined
            .iter()
            .position(|c| c.contains("netns spate-"))
            .expect("move");
        let addr = joined
            .iter()
            .position(|c| c.contains("addr add"))
            .expect("addr");
        assert!(moved < addr);
    }
}
