//! A container's environment, as the kubelet builds it: defaults, then `envFrom`, then
//! `env` in order, with `$(VAR)` references to earlier variables expanded.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use crate::{Error, Result};

/// Default PATH when the container sets none (what most base images set).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything outside the container spec that its environment depends on.
pub struct EnvInputs<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub node_name: &'a str,
    pub api_host: &'a str,
    pub api_port: u16,
    /// Directory of the image's binary, put first on the default PATH so that a `command`
    /// naming a sibling binary (`spate-operator` next to `spate-broker`) resolves.
    pub image_dir: Option<&'a str>,
    /// A per-pod HOME, so that pods do not pick up the host's `~/.kube/config` and the like.
    pub home: &'a str,
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    pub secrets: &'a BTreeMap<String, Secret>,
}

/// ConfigMaps and Secrets named by any container's `env` or `envFrom`.
pub fn referenced_objects(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for var in c.env.iter().flatten() {
            let Some(src) = &var.value_from else { continue };
            if let Some(r) = &src.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &src.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (cms, secrets)
}

/// The value of a downward-API `fieldPath`.
pub fn field_value(
    pod: &Pod,
    path: &str,
    pod_ip: &str,
    host_ip: &str,
    node_name: &str,
) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| -> Option<Option<String>> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key).cloned())
                .or(Some(String::new())),
        )
    };
    if let Some(v) = keyed("metadata.labels['", &meta.labels) {
        return v;
    }
    if let Some(v) = keyed("metadata.annotations['", &meta.annotations) {
        return v;
    }
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_else(|| "default".into())),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(
            spec.and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| node_name.into()),
        ),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        "status.podIP" | "status.podIPs" => Some(pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(host_ip.to_string()),
        _ => None,
    }
}

/// Expands `$(NAME)` from `vars`; `$$(NAME)` escapes to a literal `$(NAME)`; unknown
/// references stay as written (kubelet semantics).
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn config_map_value(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
}

/// The environment of `container`. Missing required ConfigMaps, Secrets or keys are errors
/// (the kubelet's CreateContainerConfigError); `optional: true` ones are skipped.
pub fn build(inputs: &EnvInputs<'_>, container: &Container) -> Result<BTreeMap<String, String>> {
    let pod = inputs.pod;
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let path = match inputs.image_dir {
        Some(dir) => format!("{dir}:{DEFAULT_PATH}"),
        None => DEFAULT_PATH.to_string(),
    };
    let mut vars = BTreeMap::from([
        ("PATH".to_string(), path),
        ("HOSTNAME".to_string(), hostname),
        ("HOME".to_string(), inputs.home.to_string()),
        (
            "KUBERNETES_SERVICE_HOST".to_string(),
            inputs.api_host.to_string(),
        ),
        (
            "KUBERNETES_SERVICE_PORT".to_string(),
            inputs.api_port.to_string(),
        ),
        (
            "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
            inputs.api_port.to_string(),
        ),
        (
            "KUBERNETES_PORT".to_string(),
            format!("tcp://{}:{}", inputs.api_host, inputs.api_port),
        ),
    ]);
    let missing = |what: String| Error::Invalid(format!("container {}: {what}", container.name));

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match inputs.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        vars.insert(format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(missing(format!("configmap {} not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match inputs.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        vars.insert(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(missing(format!("secret {} not found", r.name))),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => Some(expand(v, &vars)),
            (None, Some(src)) => {
                if let Some(f) = &src.field_ref {
                    Some(
                        field_value(
                            pod,
                            &f.field_path,
                            inputs.pod_ip,
                            inputs.host_ip,
                            inputs.node_name,
                        )
                        .ok_or_else(|| {
                            missing(format!("unsupported fieldPath {}", f.field_path))
                        })?,
                    )
                } else if let Some(r) = &src.config_map_key_ref {
                    let v = inputs
                        .config_maps
                        .get(&r.name)
                        .and_then(|cm| config_map_value(cm, &r.key));
                    match v {
                        Some(v) => Some(v),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(missing(format!(
                                "configmap {} key {} not found",
                                r.name, r.key
                            )))
                        }
                    }
                } else if let Some(r) = &src.secret_key_ref {
                    let v = inputs
                        .secrets
                        .get(&r.name)
                        .and_then(|s| secret_value(s, &r.key));
                    match v {
                        Some(v) => Some(v),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(missing(format!(
                                "secret {} key {} not found",
                                r.name, r.key
                            )))
                        }
                    }
                } else {
                    tracing::warn!(container = %container.name, var = %var.name, "unsupported valueFrom; left empty");
                    Some(String::new())
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            vars.insert(var.name.clone(), v);
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("ns1".into()),
                labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            ..Pod::default()
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn inputs<'a>(
        pod: &'a Pod,
        cms: &'a BTreeMap<String, ConfigMap>,
        secrets: &'a BTreeMap<String, Secret>,
    ) -> EnvInputs<'a> {
        EnvInputs {
            pod,
            pod_ip: "10.244.0.5",
            host_ip: "10.244.0.1",
            node_name: "n1",
            api_host: "10.244.0.1",
            api_port: 6443,
            image_dir: Some("/opt/bin"),
            home: "/state/pods/u/home",
            config_maps: cms,
            secrets,
        }
    }

    #[test]
    fn downward_api_configmap_secret_and_expansion() {
        let pod = pod();
        let cms = BTreeMap::from([(
            "cfg".to_string(),
            ConfigMap {
                data: Some(BTreeMap::from([
                    ("mode".into(), "fast".into()),
                    ("x".into(), "1".into()),
                ])),
                ..ConfigMap::default()
            },
        )]);
        let secrets = BTreeMap::from([(
            "sec".to_string(),
            Secret {
                data: Some(BTreeMap::from([(
                    "pw".into(),
                    ByteString(b"hunter2".to_vec()),
                )])),
                ..Secret::default()
            },
        )]);
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("CFG_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            env: Some(vec![
                field("POD_NAME", "metadata.name"),
                field("POD_NS", "metadata.namespace"),
                field("POD_IP", "status.podIP"),
                field("ZONE", "metadata.labels['zone']"),
                EnvVar {
                    name: "PW".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "sec".into(),
                            key: "pw".into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "ADDR".into(),
                    value: Some("$(POD_NAME).$(POD_NS):$(MISSING) $$(POD_IP)".into()),
                    ..EnvVar::default()
                },
            ]),
            ..Container::default()
        };
        let env = build(&inputs(&pod, &cms, &secrets), &container).expect("env");
        assert_eq!(env["POD_NAME"], "web-0");
        assert_eq!(env["POD_NS"], "ns1");
        assert_eq!(env["POD_IP"], "10.244.0.5");
        assert_eq!(env["ZONE"], "a");
        assert_eq!(env["PW"], "hunter2");
        assert_eq!(env["CFG_mode"], "fast");
        assert_eq!(env["ADDR"], "web-0.ns1:$(MISSING) $(POD_IP)");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.244.0.1");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "6443");
        assert!(env["PATH"].starts_with("/opt/bin:"));
        assert_eq!(env["HOSTNAME"], "web-0");
    }

    #[test]
    fn missing_required_key_is_an_error_and_optional_is_skipped() {
        let pod = pod();
        let cms = BTreeMap::new();
        let secrets = BTreeMap::new();
        let var = |optional| EnvVar {
            name: "V".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "nope".into(),
                    key: "k".into(),
                    optional,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let mut c = Container {
            name: "c".into(),
            env: Some(vec![var(None)]),
            ..Container::default()
        };
        assert!(build(&inputs(&pod, &cms, &secrets), &c).is_err());
        c.env = Some(vec![var(Some(true))]);
        let env = build(&inputs(&pod, &cms, &secrets), &c).expect("optional");
        assert!(!env.contains_key("V"));
    }

    #[test]
    fn referenced_objects_cover_env_and_env_from() {
        let mut pod = pod();
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                env_from: Some(vec![EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "a".into(),
                        optional: None,
                    }),
                    ..EnvFromSource::default()
                }]),
                env: Some(vec![EnvVar {
                    name: "X".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        let (cms, secrets) = referenced_objects(&pod);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["s"]);
    }
}
