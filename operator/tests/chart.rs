//! Checks the Helm chart without helm: a tiny renderer resolves `if`/`else`/`end` against a
//! set of true conditions, drops other actions, and every template must then parse as YAML
//! Kubernetes objects. Also checks the RBAC covers what the operator calls.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/spate")
}

/// Keeps lines whose enclosing `if`s hold, removes action-only lines, and replaces inline
/// actions with a placeholder scalar.
fn render(text: &str, truthy: &BTreeSet<&str>) -> String {
    let mut stack: Vec<bool> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        let action = t
            .trim_start_matches("{{-")
            .trim_start_matches("{{")
            .trim_end_matches("}}")
            .trim()
            .trim_end_matches('-')
            .trim();
        if t.starts_with("{{") && t.ends_with("}}") {
            if let Some(cond) = action.strip_prefix("if ") {
                let parent = stack.last().copied().unwrap_or(true);
                stack.push(parent && truthy.contains(cond.trim()));
            } else if action == "else" {
                let cur = stack.pop().expect("else without if");
                let parent = stack.last().copied().unwrap_or(true);
                stack.push(parent && !cur && stack.iter().all(|b| *b));
            } else if action == "end" {
                stack.pop().expect("end without if");
            }
            continue;
        }
        if stack.iter().all(|b| *b) {
            let mut l = line.to_string();
            while let (Some(a), Some(b)) = (l.find("{{"), l.find("}}")) {
                l.replace_range(a..b + 2, "x");
            }
            out.push_str(&l);
            out.push('\n');
        }
    }
    assert!(stack.is_empty(), "unbalanced if/end");
    out
}

fn objects(truthy: &BTreeSet<&str>) -> Vec<serde_yaml::Value> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(chart().join("templates")).expect("templates") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = render(&std::fs::read_to_string(&path).expect("read"), truthy);
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
            if v.is_null() {
                continue;
            }
            assert!(
                v["apiVersion"].is_string(),
                "{}: no apiVersion",
                path.display()
            );
            assert!(v["kind"].is_string(), "{}: no kind", path.display());
            all.push(v);
        }
    }
    all
}

use serde::Deserialize;

#[test]
fn chart_metadata_and_values_parse() {
    let meta: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("yaml");
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "spate");
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml"),
    )
    .expect("yaml");
    assert_eq!(values["cluster"]["enabled"], false);
    assert_eq!(values["operator"]["replicas"], 2);
}

#[test]
fn templates_render_to_kubernetes_objects_with_default_values() {
    let objs = objects(&BTreeSet::new());
    let kinds: BTreeSet<String> = objs
        .iter()
        .filter_map(|o| o["kind"].as_str().map(String::from))
        .collect();
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.contains(kind), "{kind} missing: {kinds:?}");
    }
    assert!(
        !kinds.contains("Cluster"),
        "no Cluster unless cluster.enabled"
    );
}

#[test]
fn templates_render_with_optional_parts_enabled() {
    let truthy = BTreeSet::from([
        ".Values.cluster.enabled",
        ".Values.operator.watchReleaseNamespaceOnly",
        ".Values.cluster.storage.storageClassName",
        ".Values.cluster.listeners",
        ".Values.monitoring.serviceMonitor.enabled",
        ".Values.monitoring.podMonitor.enabled",
        ".Values.monitoring.grafanaDashboard.enabled",
    ]);
    let objs = objects(&truthy);
    for kind in ["ServiceMonitor", "PodMonitor", "ConfigMap"] {
        assert!(
            objs.iter().any(|o| o["kind"] == kind),
            "{kind} rendered when enabled"
        );
    }
    let cluster = objs
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("Cluster rendered");
    assert_eq!(cluster["apiVersion"], "spate.dev/v1alpha1");
    assert!(
        !objs.iter().any(|o| o["kind"] == "ClusterRole"),
        "namespaced mode needs no ClusterRole"
    );
}

#[test]
fn rbac_grants_what_the_operator_uses() {
    let objs = objects(&BTreeSet::new());
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for o in objs
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        for rule in o["rules"].as_sequence().expect("rules") {
            for res in rule["resources"].as_sequence().expect("resources") {
                for verb in rule["verbs"].as_sequence().expect("verbs") {
                    granted.insert((
                        res.as_str().unwrap_or("").into(),
                        verb.as_str().unwrap_or("").into(),
                    ));
                }
            }
        }
    }
    for (res, verb) in [
        ("clusters", "watch"),
        ("topics", "patch"),
        ("topics/status", "patch"),
        ("clusters/status", "patch"),
        ("pods", "delete"),
        ("pods", "create"),
        ("persistentvolumeclaims", "delete"),
        ("services", "patch"),
        ("services", "delete"),
        ("configmaps", "patch"),
        ("serviceaccounts", "patch"),
        ("poddisruptionbudgets", "patch"),
        ("events", "create"),
        ("leases", "update"),
        ("leases", "create"),
        ("leases", "delete"),
    ] {
        assert!(
            granted.contains(&(res.to_string(), verb.to_string())),
            "missing {verb} on {res}"
        );
    }
    assert!(
        !granted.iter().any(|(r, _)| r == "secrets" || r == "*"),
        "least privilege"
    );
}
