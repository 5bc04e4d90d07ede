//! Checks the Helm chart. Without helm: a tiny renderer resolves `if`/`else`/`end` against a
//! set of true conditions, drops other actions, and every template must then parse as YAML
//! Kubernetes objects; the RBAC covers what the operator calls; values.schema.json covers
//! values.yaml, mirrors the Cluster CRD and rejects bad values. With helm (`$SPATE_E2E_BIN`,
//! `~/.cache/spate/e2e/bin` or `PATH`; skipped when absent unless `SPATE_REQUIRE_HELM=1`):
//! `helm lint --strict`, schema errors from `helm template`, the rendered objects checked
//! against their Kubernetes types and the CRDs, and NOTES.txt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

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
        ".Values.cluster.rack",
        ".Values.cluster.metadataVoters",
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
    let spec = cluster["spec"].as_mapping().expect("spec");
    for field in [
        "imagePullPolicy",
        "rack",
        "metadataVoters",
        "disruptionBudget",
    ] {
        assert!(spec.contains_key(field), "spec.{field} rendered: {spec:?}");
    }
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
        ("users", "watch"),
        ("users", "patch"),
        ("users/status", "patch"),
        ("secrets", "get"),
        ("secrets", "create"),
        ("secrets", "patch"),
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
        ("poddisruptionbudgets", "delete"),
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
    assert!(!granted.iter().any(|(r, _)| r == "*"), "least privilege");
    // Secrets are read and written by name only: RBAC cannot select by label, so no list
    // or watch (which would reveal every Secret), and no delete (owner references do it).
    for verb in ["list", "watch", "delete", "update"] {
        assert!(
            !granted.contains(&("secrets".to_string(), verb.to_string())),
            "{verb} on secrets is not needed"
        );
    }
    // Clusters are read; only their status is written (Topics are patched for the finalizer).
    for verb in ["patch", "update", "create", "delete"] {
        assert!(
            !granted.contains(&("clusters".to_string(), verb.to_string())),
            "{verb} on clusters is not needed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// values.schema.json: checked without helm against values.yaml and the CRDs, and with helm
// (lint, template, schema errors, NOTES.txt) when a helm binary is available.

fn json_file(rel: &str) -> Json {
    let path = chart().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if rel.ends_with(".json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        yaml_to_json(&text)
    }
}

fn yaml_to_json(text: &str) -> Json {
    let v: serde_yaml::Value = serde_yaml::from_str(text).expect("yaml");
    serde_json::to_value(v).expect("yaml as json")
}

fn values_schema() -> Json {
    json_file("values.schema.json")
}

/// The openAPIV3Schema of `spec` in one of the chart's CRDs.
fn crd_spec_schema(file: &str) -> Json {
    let crd = json_file(&format!("crds/{file}"));
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// Follows a local `$ref` (`#/definitions/...`).
fn resolve<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    match node["$ref"].as_str() {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local $ref");
            resolve(
                root,
                root.pointer(ptr).unwrap_or_else(|| panic!("{r} not found")),
            )
        }
        None => node,
    }
}

fn types(node: &Json) -> Vec<String> {
    match &node["type"] {
        Json::String(t) => vec![t.clone()],
        Json::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// A small validator for what the chart's schemas use: JSON Schema draft-07 (`type`, `enum`,
/// `minimum`, `maximum`, `minLength`, `maxLength`, `required`, `properties`,
/// `additionalProperties`, `items`, `not`, local `$ref`; `pattern` is left to helm) and the
/// CRDs' structural OpenAPI (`nullable`, `x-kubernetes-int-or-string`; a field the schema does
/// not list is an error, as the API server would drop it).
fn validate(root: &Json, schema: &Json, v: &Json, path: &str, errs: &mut Vec<String>) {
    let draft = root.get("$schema").is_some();
    let schema = resolve(root, schema);
    if let Some(not) = schema.get("not") {
        let mut inner = Vec::new();
        validate(root, not, v, path, &mut inner);
        if inner.is_empty() {
            errs.push(format!("{path}: matches `not`"));
        }
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(v) {
            errs.push(format!("{path}: {v} not one of {choices:?}"));
        }
    }
    if v.is_null() {
        if schema["nullable"] != true && !types(schema).iter().any(|t| t == "null") {
            errs.push(format!("{path}: null"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errs.push(format!("{path}: {v} is neither integer nor string"));
        }
        return;
    }
    let ts = types(schema);
    let is_int = v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0);
    let type_ok = ts.is_empty()
        || ts.iter().any(|t| match t.as_str() {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "number" => v.is_number(),
            "integer" => is_int,
            _ => false,
        });
    if !type_ok {
        errs.push(format!("{path}: {v} is not {ts:?}"));
        return;
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema["minimum"].as_f64().filter(|m| n < *m) {
            errs.push(format!("{path}: {n} < minimum {min}"));
        }
        if let Some(max) = schema["maximum"].as_f64().filter(|m| n > *m) {
            errs.push(format!("{path}: {n} > maximum {max}"));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            errs.push(format!("{path}: shorter than minLength"));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            errs.push(format!("{path}: longer than maxLength"));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(root, item_schema, item, &format!("{path}[{i}]"), errs);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !obj.contains_key(key) {
                errs.push(format!("{path}: missing required {key}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, child) in obj {
            let child_path = format!("{path}.{k}");
            if let Some(p) = props.and_then(|p| p.get(k)) {
                validate(root, p, child, &child_path, errs);
            } else {
                match schema.get("additionalProperties") {
                    Some(ap @ Json::Object(_)) => validate(root, ap, child, &child_path, errs),
                    Some(Json::Bool(false)) => errs.push(format!("{child_path}: unknown field")),
                    // Unconstrained in draft-07; pruned by a structural (CRD) schema.
                    _ if draft => {}
                    _ if schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                    _ => errs.push(format!("{child_path}: unknown field")),
                }
            }
        }
    }
}

fn schema_errors(values: &Json) -> Vec<String> {
    let schema = values_schema();
    let mut errs = Vec::new();
    validate(&schema, &schema, values, "values", &mut errs);
    errs
}

/// values.yaml with `patch` (YAML) merged over it, as helm coalesces `-f` files.
fn values_with(patch: &str) -> Json {
    fn merge(base: &mut Json, over: Json) {
        match (base, over) {
            (Json::Object(b), Json::Object(o)) => {
                for (k, v) in o {
                    match b.get_mut(&k) {
                        Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                        _ => {
                            b.insert(k, v);
                        }
                    }
                }
            }
            (b, o) => *b = o,
        }
    }
    let mut values = json_file("values.yaml");
    merge(&mut values, yaml_to_json(patch));
    values
}

/// Every value the chart reads, with the optional parts on.
const FULL_VALUES: &str = r#"
image: {repository: registry.example.com/spate, tag: "1.2.3", pullPolicy: Always}
operator:
  replicas: 3
  watchReleaseNamespaceOnly: true
  resyncSeconds: 30
  resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 1, memory: 512Mi}}
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: kafka, effect: NoSchedule}]
cluster:
  enabled: true
  name: events
  replicas: 5
  storage: {size: 50Gi, storageClassName: fast-ssd, reclaimPolicy: Delete}
  listeners:
    internal: {port: 9200}
    external:
      type: LoadBalancer
      port: 9094
      annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
  config: {log.retention.ms: "86400000", auto.create.topics.enable: "false"}
  resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
  imagePullPolicy: IfNotPresent
  rack: {topologyKey: topology.kubernetes.io/zone}
  metadataVoters: 3
  disruptionBudget: {enabled: false, maxUnavailable: 2}
monitoring:
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: prom}}
  podMonitor: {enabled: true, interval: 1m, labels: {release: prom}}
  grafanaDashboard: {enabled: true, labels: {grafana_dashboard: "1"}}
"#;

/// Values the schema must reject, as `(YAML merged over values.yaml, what is wrong)`; each is
/// also passed to helm with `-f` when helm is available (`BAD_SETS` adds `--set` forms and the
/// `pattern`s, which only helm checks).
const BAD_VALUES: &[(&str, &str)] = &[
    ("operator: {replica: 2}", "unknown key (typo of replicas)"),
    ("replicas: 2", "unknown top-level key"),
    ("operator: {replicas: 0}", "replicas below 1"),
    ("operator: {resyncSeconds: 0}", "resync below 1"),
    ("operator: {replicas: two}", "not an integer"),
    (
        "image: {pullPolicy: Sometimes}",
        "pull policy outside the enum",
    ),
    ("image: {repository: \"\"}", "empty repository"),
    ("cluster: {replicas: 0}", "no brokers"),
    (
        "cluster: {name: a-name-too-long-for-the-external-bootstrap-service}",
        "name over 44 characters",
    ),
    (
        "cluster: {storage: {reclaimPolicy: Keep}}",
        "reclaim policy outside the enum",
    ),
    ("cluster: {storage: {sizee: 1Gi}}", "typo in storage"),
    (
        "cluster: {listeners: {external: {type: ClusterIP}}}",
        "external type outside the enum",
    ),
    (
        "cluster: {listeners: {external: {port: 9094}}}",
        "external listener without type",
    ),
    (
        "cluster: {listeners: {externl: {type: NodePort}}}",
        "typo in listeners",
    ),
    (
        "cluster: {listeners: {internal: {port: 9644}}}",
        "internal port on the HTTP port",
    ),
    (
        "cluster: {listeners: {internal: {port: 70000}}}",
        "port above 65535",
    ),
    (
        "cluster: {config: {log.retention.ms: 100}}",
        "config value not a string",
    ),
    (
        "cluster: {resources: {limit: {cpu: 1}}}",
        "typo in resources",
    ),
    (
        "cluster: {removeBrokers: [2]}",
        "CRD field the chart does not pass",
    ),
    (
        "cluster: {imagePullPolicy: Sometimes}",
        "broker pull policy outside the enum",
    ),
    ("cluster: {rack: {key: zone}}", "rack without topologyKey"),
    ("cluster: {metadataVoters: 0}", "no metadata voters"),
    (
        "cluster: {disruptionBudget: {maxUnavailable: -1}}",
        "negative maxUnavailable",
    ),
    (
        "cluster: {disruptionBudget: {enable: false}}",
        "typo in disruptionBudget",
    ),
    (
        "monitoring: {serviceMonitor: {enable: true}}",
        "typo in monitoring",
    ),
];

#[test]
fn schema_is_draft_07_and_closed_where_the_structure_is_fixed() {
    let schema = values_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    fn walk(node: &Json, path: &str) {
        if let Some(props) = node["properties"].as_object() {
            assert_eq!(
                node["additionalProperties"], false,
                "{path}: a fixed structure must reject unknown keys"
            );
            for (k, child) in props {
                walk(child, &format!("{path}.{k}"));
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if node[key].is_object() {
                walk(&node[key], &format!("{path}[{key}]"));
            }
        }
    }
    walk(&schema, "values");
    for (name, def) in schema["definitions"].as_object().expect("definitions") {
        walk(def, &format!("#/definitions/{name}"));
    }
}

#[test]
fn schema_describes_every_key_in_values_yaml() {
    let schema = values_schema();
    fn walk(root: &Json, schema: &Json, value: &Json, path: &str) {
        let resolved = resolve(root, schema);
        let Some(obj) = value.as_object() else { return };
        for (k, v) in obj {
            let child_path = format!("{path}.{k}");
            // A named key needs its own description; map entries (labels, config) share one.
            let child = match resolved["properties"].get(k) {
                Some(child) => {
                    assert!(
                        child["description"].is_string()
                            || resolve(root, child)["description"].is_string(),
                        "{child_path}: no description"
                    );
                    child
                }
                None => resolved
                    .get("additionalProperties")
                    .filter(|a| a.is_object())
                    .unwrap_or_else(|| panic!("{child_path}: not in values.schema.json")),
            };
            walk(root, child, v, &child_path);
        }
    }
    walk(&schema, &schema, &json_file("values.yaml"), "values");
    assert_eq!(
        schema_errors(&json_file("values.yaml")),
        Vec::<String>::new()
    );
}

#[test]
fn schema_accepts_full_values_and_rejects_bad_ones() {
    assert_eq!(
        schema_errors(&values_with(FULL_VALUES)),
        Vec::<String>::new()
    );
    for ok in [
        "cluster: {listeners: {external: {type: NodePort, nodePortBase: 31000}}}",
        "cluster: {listeners: {external: null}, resources: null}",
        "cluster: {storage: {storageClassName: null}}",
        "operator: {resources: {requests: {cpu: 0.5}}}",
    ] {
        assert_eq!(
            schema_errors(&values_with(ok)),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    for (bad, why) in BAD_VALUES {
        assert!(
            !schema_errors(&values_with(bad)).is_empty(),
            "schema accepts {bad} ({why})"
        );
    }
}

/// The `cluster` section passes `storage`, `listeners`, `config` and `resources` through to the
/// Cluster: their schemas must list the same fields, types, enums and bounds as the CRD, so that
/// the chart accepts what the CRD accepts and no more.
#[test]
fn cluster_schema_mirrors_the_cluster_crd() {
    let root = values_schema();
    let crd = crd_spec_schema("clusters.spate.dev.yaml");
    fn mirror(root: &Json, ours: &Json, crd: &Json, path: &str) {
        let ours = resolve(root, ours);
        let ts = types(ours);
        if crd["x-kubernetes-int-or-string"] == true {
            assert!(
                ts.contains(&"string".into()) && ts.iter().any(|t| t == "integer" || t == "number"),
                "{path}: int-or-string in the CRD, {ts:?} here"
            );
        } else {
            let want = crd["type"].as_str().expect("CRD type");
            assert!(
                ts.iter().any(|t| t == want),
                "{path}: {want} in the CRD, {ts:?} here"
            );
        }
        assert_eq!(
            crd["nullable"] == true,
            ts.iter().any(|t| t == "null"),
            "{path}: nullable differs from the CRD"
        );
        if crd["enum"].is_array() {
            assert_eq!(ours["enum"], crd["enum"], "{path}: enum");
        }
        for bound in ["minimum", "maximum"] {
            assert_eq!(ours[bound].as_f64(), crd[bound].as_f64(), "{path}: {bound}");
        }
        assert_eq!(ours["required"], crd["required"], "{path}: required");
        let names = |n: &Json| -> BTreeSet<String> {
            n["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(names(ours), names(crd), "{path}: fields");
        for (k, c) in crd["properties"].as_object().into_iter().flatten() {
            mirror(root, &ours["properties"][k], c, &format!("{path}.{k}"));
        }
        match (&crd["additionalProperties"], &ours["additionalProperties"]) {
            (c @ Json::Object(_), o @ Json::Object(_)) => {
                mirror(root, o, c, &format!("{path}[*]"));
            }
            (Json::Object(_), o) => panic!("{path}: CRD has a map, schema {o}"),
            _ => {}
        }
        if crd["items"].is_object() {
            mirror(root, &ours["items"], &crd["items"], &format!("{path}[]"));
        }
    }
    let cluster = &root["properties"]["cluster"];
    for field in [
        "storage",
        "listeners",
        "config",
        "resources",
        "imagePullPolicy",
        "rack",
        "metadataVoters",
        "disruptionBudget",
        "authorization",
        "certificates",
    ] {
        mirror(
            &root,
            &cluster["properties"][field],
            &crd["properties"][field],
            &format!("cluster.{field}"),
        );
    }
    // The rest of the section is the release's own (enabled, name) or a plain CRD field.
    for (k, _) in cluster["properties"]
        .as_object()
        .expect("cluster properties")
    {
        assert!(
            k == "enabled" || k == "name" || crd["properties"].get(k).is_some(),
            "cluster.{k} is neither a chart switch nor a Cluster spec field"
        );
    }
    assert_eq!(
        cluster["properties"]["replicas"]["minimum"].as_f64(),
        crd["properties"]["replicas"]["minimum"].as_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// With helm.

/// helm from `$SPATE_E2E_BIN`, `~/.cache/spate/e2e/bin` (built by e2e/controlplane/build.sh) or
/// `PATH`, with its config, cache and data in a temporary directory. Tests using it print a
/// note and pass when there is none, unless `SPATE_REQUIRE_HELM=1`.
struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    fn find() -> Option<Self> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("SPATE_E2E_BIN") {
            dirs.push(d.into());
        }
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(Path::new(&home).join(".cache/spate/e2e/bin"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        match dirs
            .into_iter()
            .map(|d| d.join("helm"))
            .find(|p| p.is_file())
        {
            Some(bin) => Some(Self {
                bin,
                home: tempfile::tempdir().expect("tempdir"),
            }),
            None if std::env::var("SPATE_REQUIRE_HELM").as_deref() == Ok("1") => {
                panic!("SPATE_REQUIRE_HELM=1 but no helm in $SPATE_E2E_BIN, ~/.cache/spate/e2e/bin or PATH")
            }
            None => {
                eprintln!("helm not found ($SPATE_E2E_BIN, ~/.cache/spate/e2e/bin, PATH): skipped");
                None
            }
        }
    }

    /// Runs helm; `(success, stdout, stderr)`.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let h = self.home.path();
        let out = std::process::Command::new(&self.bin)
            .args(args)
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("HELM_DATA_HOME", h.join("data"))
            // Nothing here may reach a cluster.
            .env("KUBECONFIG", h.join("no-kubeconfig"))
            .output()
            .expect("run helm");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A values file in the temporary directory.
    fn values_file(&self, name: &str, yaml: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, yaml).expect("write values");
        path.to_string_lossy().into_owned()
    }

    /// `helm template` of the chart, as parsed objects.
    fn template(&self, extra: &[&str]) -> Vec<serde_yaml::Value> {
        let chart = chart().to_string_lossy().into_owned();
        let mut args = vec!["template", "rel", chart.as_str(), "--namespace", "kafka"];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = self.run(&args);
        assert!(ok, "helm {args:?} failed:\n{stderr}");
        serde_yaml::Deserializer::from_str(&stdout)
            .map(|d| serde_yaml::Value::deserialize(d).expect("rendered YAML"))
            .filter(|v| !v.is_null())
            .collect()
    }

    /// NOTES.txt rendered with `extra` values. `helm template` leaves NOTES.txt out and `helm
    /// install --dry-run` needs a reachable API server, so this renders a copy of the chart in
    /// which NOTES.txt is a named template included into a ConfigMap.
    fn notes(&self, extra: &[&str]) -> String {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for e in std::fs::read_dir(from).expect("read_dir") {
                let e = e.expect("entry");
                let dest = to.join(e.file_name());
                if e.file_type().expect("type").is_dir() {
                    copy(&e.path(), &dest);
                } else {
                    std::fs::copy(e.path(), dest).expect("copy");
                }
            }
        }
        let dir = self.home.path().join("notes-chart");
        let _ = std::fs::remove_dir_all(&dir);
        copy(&chart(), &dir);
        let templates = dir.join("templates");
        let notes = std::fs::read_to_string(templates.join("NOTES.txt")).expect("NOTES.txt");
        std::fs::remove_file(templates.join("NOTES.txt")).expect("rm");
        std::fs::write(
            templates.join("_notes_under_test.tpl"),
            format!("{{{{- define \"notes-under-test\" -}}}}\n{notes}{{{{- end -}}}}\n"),
        )
        .expect("write");
        std::fs::write(
            templates.join("notes-under-test.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  \
             notes: {{ include \"notes-under-test\" . | toJson }}\n",
        )
        .expect("write");
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec![
            "template",
            "rel",
            dir.as_str(),
            "--namespace",
            "kafka",
            "--show-only",
            "templates/notes-under-test.yaml",
        ];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = self.run(&args);
        assert!(ok, "rendering NOTES.txt failed:\n{stderr}");
        let cm: serde_yaml::Value = serde_yaml::from_str(&stdout).expect("yaml");
        cm["data"]["notes"].as_str().expect("notes").to_string()
    }
}

#[test]
fn helm_lint_passes_with_the_schema() {
    let Some(helm) = Helm::find() else { return };
    let chart = chart().to_string_lossy().into_owned();
    let (ok, out, err) = helm.run(&["lint", "--strict", &chart]);
    assert!(ok, "helm lint --strict:\n{out}{err}");
    let full = helm.values_file("full.yaml", FULL_VALUES);
    let (ok, out, err) = helm.run(&["lint", "--strict", &chart, "-f", &full]);
    assert!(ok, "helm lint --strict with every value set:\n{out}{err}");
}

/// `--set` forms of bad values (`--set` parses digits as integers, like YAML).
const BAD_SETS: &[&str] = &[
    "operator.replica=2",
    "replicas=2",
    "operator.replicas=0",
    "image.pullPolicy=Sometimes",
    "cluster.name=Spate",
    "cluster.storage.size=ten",
    "cluster.listeners.external.type=ClusterIP",
    "cluster.listeners.external.port=9094",
    "cluster.listeners.internal.port=9093",
    "cluster.config.log\\.retention\\.ms=100",
    "cluster.metadataVoters=0",
    "cluster.imagePullPolicy=Sometimes",
    "monitoring.serviceMonitor.interval=soon",
];

#[test]
fn helm_rejects_typos_and_bad_values_with_a_schema_error() {
    let Some(helm) = Helm::find() else { return };
    let chart = chart().to_string_lossy().into_owned();
    for set in BAD_SETS {
        let (ok, _, err) = helm.run(&["template", "rel", &chart, "--set", set]);
        assert!(!ok, "helm template --set {set} rendered");
        assert!(
            err.contains("don't meet the specifications of the schema"),
            "--set {set}: not a schema error:\n{err}"
        );
    }
    let (_, _, err) = helm.run(&["template", "rel", &chart, "--set", "operator.replica=2"]);
    assert!(
        err.contains("/operator") && err.contains("'replica' not allowed"),
        "the error names the typo:\n{err}"
    );
    for (i, (bad, why)) in BAD_VALUES.iter().enumerate() {
        let file = helm.values_file(&format!("bad-{i}.yaml"), bad);
        let (ok, _, err) = helm.run(&["template", "rel", &chart, "-f", &file]);
        assert!(!ok, "helm accepts {bad} ({why})");
        assert!(err.contains("schema"), "{bad}: not a schema error:\n{err}");
    }
}

/// The rendered manifests parse as their Kubernetes types, and the rendered Cluster passes the
/// Cluster CRD's schema and deserializes as the operator's `Cluster`.
#[test]
fn helm_renders_full_values_into_valid_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let Some(helm) = Helm::find() else { return };
    let full = helm.values_file("full.yaml", FULL_VALUES);
    let objs = helm.template(&["-f", &full]);
    let of_kind = |kind: &str| -> Vec<&serde_yaml::Value> {
        objs.iter().filter(|o| o["kind"] == kind).collect()
    };
    fn parse<T: serde::de::DeserializeOwned>(o: &serde_yaml::Value) -> T {
        serde_yaml::from_value(o.clone()).unwrap_or_else(|e| panic!("{e}: {o:?}"))
    }

    let deploy: Deployment = parse(of_kind("Deployment")[0]);
    let spec = deploy.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.expect("pod spec");
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example.com/spate:1.2.3"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert!(c
        .args
        .as_ref()
        .expect("args")
        .contains(&"--resync-seconds=30".into()));
    assert!(c
        .env
        .as_ref()
        .expect("env")
        .iter()
        .any(|e| e.name == "WATCH_NAMESPACE" && e.value.as_deref() == Some("kafka")));
    assert_eq!(pod.tolerations.expect("tolerations").len(), 1);
    let _: ServiceAccount = parse(of_kind("ServiceAccount")[0]);
    for r in of_kind("Role") {
        let _: Role = parse(r);
    }
    for r in of_kind("RoleBinding") {
        let _: RoleBinding = parse(r);
    }
    assert!(
        of_kind("ClusterRole").is_empty(),
        "namespaced mode: no ClusterRole"
    );
    let _: ConfigMap = parse(of_kind("ConfigMap")[0]);
    for m in of_kind("PodMonitor")
        .into_iter()
        .chain(of_kind("ServiceMonitor"))
    {
        assert_eq!(
            m["metadata"]["labels"]["release"], "prom",
            "monitor labels: {m:?}"
        );
    }

    let cluster = of_kind("Cluster");
    assert_eq!(cluster.len(), 1);
    let cluster = cluster[0];
    assert_eq!(cluster["apiVersion"], "spate.dev/v1alpha1");
    assert_eq!(cluster["metadata"]["namespace"], "kafka");
    let crd = crd_spec_schema("clusters.spate.dev.yaml");
    let spec = serde_json::to_value(&cluster["spec"]).expect("json");
    let mut errs = Vec::new();
    validate(&crd, &crd, &spec, "spec", &mut errs);
    assert_eq!(
        errs,
        Vec::<String>::new(),
        "rendered Cluster vs CRD: {spec}"
    );
    let typed: spate_operator::crd::Cluster = parse(cluster);
    assert_eq!(typed.spec.replicas, 5);
    assert_eq!(typed.spec.image, "registry.example.com/spate:1.2.3");
    assert_eq!(typed.spec.listeners.internal.port, 9200);
    assert_eq!(
        spate_operator::builders::bootstrap_address(&typed),
        "events-bootstrap.kafka.svc:9200"
    );
    let ext = typed
        .spec
        .listeners
        .external
        .as_ref()
        .expect("external listener");
    assert_eq!(ext.port, 9094);
    assert_eq!(
        typed
            .spec
            .config
            .get("log.retention.ms")
            .map(String::as_str),
        Some("86400000")
    );
    assert_eq!(
        typed.spec.image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(
        typed.spec.rack.as_ref().map(|r| r.topology_key.as_str()),
        Some("topology.kubernetes.io/zone")
    );
    assert_eq!(typed.spec.metadata_voters, Some(3));
    assert!(!typed.spec.disruption_budget.enabled);
    assert_eq!(typed.spec.disruption_budget.max_unavailable, 2);

    // NodePort with pinned ports, through --set; a numeric-looking size stays a string.
    let objs = helm.template(&[
        "--set",
        "cluster.enabled=true",
        "--set",
        "cluster.listeners.external.type=NodePort",
        "--set",
        "cluster.listeners.external.nodePortBase=31000",
        "--set-string",
        "cluster.storage.size=1000000000",
    ]);
    let cluster = objs
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("Cluster");
    let spec = serde_json::to_value(&cluster["spec"]).expect("json");
    let mut errs = Vec::new();
    validate(&crd, &crd, &spec, "spec", &mut errs);
    assert_eq!(
        errs,
        Vec::<String>::new(),
        "rendered Cluster vs CRD: {spec}"
    );
    assert_eq!(spec["listeners"]["external"]["nodePortBase"], 31000);
    assert_eq!(spec["storage"]["size"], "1000000000");
    // Unset: the chart's image.pullPolicy, no rack or voter count, the default budget.
    assert_eq!(spec["imagePullPolicy"], "IfNotPresent");
    assert!(spec.get("rack").is_none() && spec.get("metadataVoters").is_none());
    assert_eq!(
        spec["disruptionBudget"],
        serde_json::json!({"enabled": true, "maxUnavailable": 1})
    );
    let objs = helm.template(&[
        "--set",
        "cluster.enabled=true",
        "--set",
        "image.pullPolicy=Always",
    ]);
    let cluster = objs
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("Cluster");
    assert_eq!(
        cluster["spec"]["imagePullPolicy"], "Always",
        "the brokers follow image.pullPolicy"
    );

    // Defaults: no Cluster.
    let objs = helm.template(&[]);
    assert!(!objs.iter().any(|o| o["kind"] == "Cluster"));
    assert!(objs.iter().any(|o| o["kind"] == "ClusterRole"));
}

/// The objects in the notes' `kubectl apply -f - <<'YAML'` examples, each checked against its
/// CRD.
fn check_notes_examples(notes: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    for doc in notes.split("<<'YAML'\n").skip(1) {
        let doc = doc.split("\nYAML\n").next().expect("heredoc end");
        let obj = yaml_to_json(doc);
        assert_eq!(obj["apiVersion"], "spate.dev/v1alpha1", "{doc}");
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let crd = crd_spec_schema(&format!("{}s.spate.dev.yaml", kind.to_lowercase()));
        let mut errs = Vec::new();
        validate(&crd, &crd, &obj["spec"], "spec", &mut errs);
        assert_eq!(errs, Vec::<String>::new(), "{doc}");
        kinds.push(kind);
    }
    kinds
}

#[test]
fn helm_renders_notes() {
    let Some(helm) = Helm::find() else { return };

    let notes = helm.notes(&[]);
    for want in [
        "Deployment rel-operator in namespace kafka",
        "No Cluster was created",
        "kubectl get clusters,topics -n kafka",
        "apiVersion: spate.dev/v1alpha1",
        "kind: Topic",
        "clusterRef: spate",
        "replicationFactor: 3",
        "spate-bootstrap.kafka.svc:9092",
        "kubectl scale cluster/spate -n kafka --replicas=5",
        "kubectl patch cluster/spate -n kafka --type=merge",
        "external listener",
    ] {
        assert!(notes.contains(want), "NOTES lacks {want:?}:\n{notes}");
    }
    assert!(!notes.contains("by this release"), "{notes}");
    assert_eq!(check_notes_examples(&notes), ["Cluster", "Topic"]);

    let notes = helm.notes(&[
        "--set",
        "cluster.enabled=true",
        "--set",
        "cluster.name=events",
        "--set",
        "cluster.replicas=1",
        "--set",
        "cluster.listeners.internal.port=9200",
        "--set",
        "cluster.listeners.external.type=LoadBalancer",
    ]);
    for want in [
        "Cluster: events (1 broker(s)) in namespace kafka was created by this release.",
        "clusterRef: events",
        "replicationFactor: 1",
        "events-bootstrap.kafka.svc:9200",
        "kubectl scale cluster/events -n kafka --replicas=3",
        "--set cluster.replicas=3",
        r#"-p '{"spec":{"replicas":3}}'"#,
        "external listener (LoadBalancer",
        "events-external-bootstrap",
        ".status.listeners[?(@.name==\"external\")].bootstrapServers",
    ] {
        assert!(notes.contains(want), "NOTES lacks {want:?}:\n{notes}");
    }
    assert!(!notes.contains("No Cluster was created"), "{notes}");
    assert_eq!(check_notes_examples(&notes), ["Topic"]);
}
