//! Hosts files that stand in for cluster DNS.
//!
//! Names served (with `D` the cluster domain):
//! - pods with `hostname` and `subdomain` (StatefulSet pods): `h.s.ns.svc.D`, `h.s.ns.svc`;
//!   inside the same namespace also `h.s`;
//! - services: `svc.ns.svc.D`, `svc.ns.svc`, `svc.ns`; inside the same namespace also `svc`.
//!   A service name maps to its ready endpoints' pod IPs, one line each, whether or not the
//!   service is headless: nothing implements ClusterIPs here, so `port` → `targetPort`
//!   remapping does not happen either;
//! - `kubernetes.default.svc.D` (and shorter forms) → the API server address pods use;
//! - in a pod's own file, its hostname (and FQDN when it has a subdomain).

use std::collections::BTreeMap;

/// A pod as far as names are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    pub namespace: String,
    pub name: String,
    pub ip: String,
    pub hostname: String,
    pub subdomain: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
}

/// A service as far as names are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// `None`: no selector (endpoints managed by someone else; not served).
    pub selector: Option<BTreeMap<String, String>>,
    pub publish_not_ready: bool,
}

/// Everything the hosts files are rendered from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub domain: String,
    pub api_server_ip: Option<String>,
    pub pods: Vec<PodEntry>,
    pub services: Vec<ServiceEntry>,
}

/// Who reads the file: a pod (its namespace enables short names) or the root namespace.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    Pod(&'a PodEntry),
    Root,
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `(ip, names)` lines, sorted for stable output.
pub fn entries(view: &ClusterView, reader: Reader<'_>) -> Vec<(String, Vec<String>)> {
    let d = &view.domain;
    let reader_ns = match reader {
        Reader::Pod(p) => Some(p.namespace.as_str()),
        Reader::Root => None,
    };
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();

    if let Some(api) = &view.api_server_ip {
        let mut names = vec![
            format!("kubernetes.default.svc.{d}"),
            "kubernetes.default.svc".into(),
            "kubernetes.default".into(),
        ];
        if reader_ns == Some("default") {
            names.push("kubernetes".into());
        }
        lines.push((api.clone(), names));
    }

    for p in view.pods.iter().filter(|p| !p.ip.is_empty()) {
        if let Some(sub) = p.subdomain.as_deref().filter(|s| !s.is_empty()) {
            let (h, ns) = (&p.hostname, &p.namespace);
            let mut names = vec![
                format!("{h}.{sub}.{ns}.svc.{d}"),
                format!("{h}.{sub}.{ns}.svc"),
            ];
            if reader_ns == Some(ns.as_str()) {
                names.push(format!("{h}.{sub}"));
            }
            lines.push((p.ip.clone(), names));
        }
    }

    for s in &view.services {
        let Some(selector) = &s.selector else {
            continue;
        };
        let (n, ns) = (&s.name, &s.namespace);
        let mut names = vec![
            format!("{n}.{ns}.svc.{d}"),
            format!("{n}.{ns}.svc"),
            format!("{n}.{ns}"),
        ];
        if reader_ns == Some(ns.as_str()) {
            names.push(n.clone());
        }
        for p in &view.pods {
            if p.namespace == *ns
                && !p.ip.is_empty()
                && (p.ready || s.publish_not_ready)
                && selects(selector, &p.labels)
            {
                lines.push((p.ip.clone(), names.clone()));
            }
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

fn format_lines(lines: &[(String, Vec<String>)]) -> String {
    lines
        .iter()
        .map(|(ip, names)| format!("{ip}\t{}\n", names.join(" ")))
        .collect()
}

/// The whole `/etc/hosts` of a pod.
pub fn render_pod_file(view: &ClusterView, pod: &PodEntry) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file (spate-node-agent).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if !pod.ip.is_empty() {
        let mut own = Vec::new();
        if let Some(sub) = pod.subdomain.as_deref().filter(|s| !s.is_empty()) {
            own.push(format!(
                "{}.{sub}.{}.svc.{}",
                pod.hostname, pod.namespace, view.domain
            ));
        }
        own.push(pod.hostname.clone());
        out.push_str(&format!("{}\t{}\n", pod.ip, own.join(" ")));
    }
    out.push_str(&format_lines(&entries(view, Reader::Pod(pod))));
    out
}

pub const BLOCK_BEGIN: &str = "# BEGIN spate-node-agent (managed; removed when the agent exits)";
pub const BLOCK_END: &str = "# END spate-node-agent";

/// The marked block for the root `/etc/hosts`.
pub fn render_root_block(view: &ClusterView) -> String {
    format!(
        "{BLOCK_BEGIN}\n{}{BLOCK_END}\n",
        format_lines(&entries(view, Reader::Root))
    )
}

/// `existing` with its marked block replaced by `block` (appended if absent; removed when
/// `block` is `None`). Lines outside the block are kept as they are.
pub fn splice_block(existing: &str, block: Option<&str>) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in existing.lines() {
        if line == BLOCK_BEGIN {
            inside = true;
            continue;
        }
        if inside {
            if line == BLOCK_END {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(b) = block {
        out.push_str(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, ip: &str, sub: Option<&str>, ready: bool) -> PodEntry {
        PodEntry {
            namespace: ns.into(),
            name: name.into(),
            ip: ip.into(),
            hostname: name.into(),
            subdomain: sub.map(String::from),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            ready,
        }
    }

    fn view() -> ClusterView {
        ClusterView {
            domain: "cluster.local".into(),
            api_server_ip: Some("10.244.0.1".into()),
            pods: vec![
                pod("ns1", "web-0", "10.244.0.2", Some("web"), true),
                pod("ns1", "web-1", "10.244.0.3", Some("web"), false),
                pod("ns2", "other", "10.244.0.4", None, true),
            ],
            services: vec![
                ServiceEntry {
                    namespace: "ns1".into(),
                    name: "web".into(),
                    selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                    publish_not_ready: false,
                },
                ServiceEntry {
                    namespace: "ns1".into(),
                    name: "manual".into(),
                    selector: None,
                    publish_not_ready: false,
                },
            ],
        }
    }

    #[test]
    fn statefulset_pods_resolve_by_hostname_and_subdomain_even_when_not_ready() {
        let v = view();
        let file = render_pod_file(&v, &v.pods[0]);
        assert!(file
            .contains("10.244.0.3\tweb-1.web.ns1.svc.cluster.local web-1.web.ns1.svc web-1.web\n"));
        assert!(file.contains("10.244.0.2\tweb-0.web.ns1.svc.cluster.local web-0\n"));
        assert!(file.starts_with("# Kubernetes-managed"));
    }

    #[test]
    fn services_map_to_ready_endpoints_with_short_names_only_in_own_namespace() {
        let v = view();
        let same_ns = render_pod_file(&v, &v.pods[0]);
        assert!(same_ns.contains("10.244.0.2\tweb.ns1.svc.cluster.local web.ns1.svc web.ns1 web\n"));
        assert!(!same_ns.contains("10.244.0.3\tweb.ns1.svc"));
        let other_ns = render_pod_file(&v, &v.pods[2]);
        assert!(other_ns.contains("10.244.0.2\tweb.ns1.svc.cluster.local web.ns1.svc web.ns1\n"));
        assert!(!other_ns.contains("web-0.web\n"));
        assert!(!other_ns.contains("manual"));
    }

    #[test]
    fn publish_not_ready_addresses_includes_unready_pods() {
        let mut v = view();
        v.services[0].publish_not_ready = true;
        let lines = entries(&v, Reader::Root);
        assert!(lines
            .iter()
            .any(|(ip, n)| ip == "10.244.0.3" && n[0] == "web.ns1.svc.cluster.local"));
    }

    #[test]
    fn api_server_is_reachable_as_kubernetes_default() {
        let v = view();
        let root = render_root_block(&v);
        assert!(root.contains("10.244.0.1\tkubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default\n"));
    }

    #[test]
    fn splice_block_replaces_appends_and_removes_only_the_marked_block() {
        let base = "127.0.0.1 localhost\n10.0.0.9 vm\n";
        let block = format!("{BLOCK_BEGIN}\n1.2.3.4\ta\n{BLOCK_END}\n");
        let with = splice_block(base, Some(&block));
        assert_eq!(with, format!("{base}{block}"));
        let block2 = format!("{BLOCK_BEGIN}\n5.6.7.8\tb\n{BLOCK_END}\n");
        assert_eq!(
            splice_block(&with, Some(&block2)),
            format!("{base}{block2}")
        );
        assert_eq!(splice_block(&with, None), base);
    }
}
