//! Volumes as directories under the pod's state directory, bind-mounted by the launch
//! script. emptyDir, configMap, secret, downwardAPI, projected (including the service
//! account token from the TokenRequest API), hostPath and persistentVolumeClaim are
//! supported; other kinds become empty directories with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolume,
    PersistentVolumeClaim, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::PostParams;
use kube::Api;

use crate::context::Ctx;
use crate::launch::Mount;
use crate::{Error, Result};

/// The files of a ConfigMap or Secret volume: every key, or only `items` (key → path).
/// A missing key in `items` is an error unless the source is optional.
pub fn select_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    match items {
        None | Some([]) => Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push((item.path.clone(), v.clone())),
                    None if optional => {}
                    None => return Err(Error::Invalid(format!("key {} not found", item.key))),
                }
            }
            Ok(out)
        }
    }
}

pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    data
}

pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// The bind mounts of `container`, given each volume's directory.
pub fn mounts(container: &Container, dirs: &BTreeMap<String, PathBuf>) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let dir = dirs
            .get(&vm.name)
            .ok_or_else(|| Error::Invalid(format!("volume mount {} names no volume", vm.name)))?;
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|c| c == "..") => {
                return Err(Error::Invalid(format!("subPath {sub} escapes the volume")))
            }
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        let is_file = source.is_file();
        out.push(Mount {
            source,
            target: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true),
            is_file,
        });
    }
    Ok(out)
}

/// Writes `files` under `dir`, each through a rename so readers never see half a file.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    for (rel, bytes) in files {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Invalid(format!("volume file path {rel}")));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        let tmp = path.with_extension("spate-tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

fn namespace(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.get_opt(name).await?)
}

async fn config_map_files(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match get_opt(&api, name).await? {
        Some(cm) => select_files(&config_map_data(&cm), items, optional),
        None if optional => Ok(Vec::new()),
        None => Err(Error::Invalid(format!("configmap {ns}/{name} not found"))),
    }
}

async fn secret_files(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match get_opt(&api, name).await? {
        Some(s) => select_files(&secret_data(&s), items, optional),
        None if optional => Ok(Vec::new()),
        None => Err(Error::Invalid(format!("secret {ns}/{name} not found"))),
    }
}

fn downward_files(
    ctx: &Ctx,
    pod: &Pod,
    pod_ip: &str,
    items: &[DownwardAPIVolumeFile],
) -> Vec<(String, Vec<u8>)> {
    let host_ip = ctx.gateway.to_string();
    items
        .iter()
        .filter_map(|item| {
            let f = item.field_ref.as_ref()?;
            let v =
                crate::env::field_value(pod, &f.field_path, pod_ip, &host_ip, &ctx.args.node_name)?;
            Some((item.path.clone(), v.into_bytes()))
        })
        .collect()
}

async fn token(
    ctx: &Ctx,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<Vec<u8>> {
    let ns = namespace(pod);
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            expiration_seconds: Some(expiration.unwrap_or(3607)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await?;
    let token = resp.status.map(|s| s.token).unwrap_or_default();
    Ok(token.into_bytes())
}

async fn claim_dir(ctx: &Ctx, ns: &str, claim: &str) -> Result<PathBuf> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let pvc = get_opt(&pvcs, claim)
        .await?
        .ok_or_else(|| Error::Invalid(format!("persistentvolumeclaim {ns}/{claim} not found")))?;
    let volume = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "persistentvolumeclaim {ns}/{claim} is not bound yet"
            ))
        })?;
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pv = get_opt(&pvs, &volume)
        .await?
        .ok_or_else(|| Error::Invalid(format!("persistentvolume {volume} not found")))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "persistentvolume {volume} is neither hostPath nor local"
            ))
        })?;
    let path = PathBuf::from(path);
    std::fs::create_dir_all(&path)?;
    Ok(path)
}

/// Materializes one volume, returning its directory. Called again to refresh ConfigMaps,
/// Secrets and tokens; emptyDir contents survive.
pub async fn prepare_one(
    ctx: &Ctx,
    pod: &Pod,
    pod_ip: &str,
    pod_dir: &Path,
    vol: &Volume,
) -> Result<PathBuf> {
    let ns = namespace(pod);
    let dir = pod_dir.join("volumes").join(&vol.name);
    if let Some(h) = &vol.host_path {
        let path = PathBuf::from(&h.path);
        if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
            std::fs::create_dir_all(&path)?;
        }
        return Ok(path);
    }
    if let Some(c) = &vol.persistent_volume_claim {
        return claim_dir(ctx, &ns, &c.claim_name).await;
    }
    std::fs::create_dir_all(&dir)?;
    let mode = |m: Option<i32>| m.map(|m| m as u32 & 0o777).unwrap_or(0o644);
    if vol.empty_dir.is_some() {
        // Nothing to write.
    } else if let Some(c) = &vol.config_map {
        let files = config_map_files(
            ctx,
            &ns,
            &c.name,
            c.items.as_deref(),
            c.optional == Some(true),
        )
        .await?;
        write_files(&dir, &files, mode(c.default_mode))?;
    } else if let Some(s) = &vol.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let files = secret_files(
            ctx,
            &ns,
            &name,
            s.items.as_deref(),
            s.optional == Some(true),
        )
        .await?;
        write_files(&dir, &files, mode(s.default_mode))?;
    } else if let Some(d) = &vol.downward_api {
        let files = downward_files(ctx, pod, pod_ip, d.items.as_deref().unwrap_or_default());
        write_files(&dir, &files, mode(d.default_mode))?;
    } else if let Some(p) = &vol.projected {
        let mut files = Vec::new();
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                files.extend(
                    config_map_files(
                        ctx,
                        &ns,
                        &c.name,
                        c.items.as_deref(),
                        c.optional == Some(true),
                    )
                    .await?,
                );
            }
            if let Some(s) = &src.secret {
                files.extend(
                    secret_files(
                        ctx,
                        &ns,
                        &s.name,
                        s.items.as_deref(),
                        s.optional == Some(true),
                    )
                    .await?,
                );
            }
            if let Some(d) = &src.downward_api {
                files.extend(downward_files(
                    ctx,
                    pod,
                    pod_ip,
                    d.items.as_deref().unwrap_or_default(),
                ));
            }
            if let Some(t) = &src.service_account_token {
                files.push((
                    t.path.clone(),
                    token(ctx, pod, t.audience.as_deref(), t.expiration_seconds).await?,
                ));
            }
        }
        write_files(&dir, &files, mode(p.default_mode))?;
    } else {
        tracing::warn!(volume = %vol.name, "unsupported volume type; using an empty directory");
    }
    Ok(dir)
}

/// Materializes every volume of `pod`.
pub async fn prepare(
    ctx: &Ctx,
    pod: &Pod,
    pod_ip: &str,
    pod_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut dirs = BTreeMap::new();
    for vol in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = prepare_one(ctx, pod, pod_ip, pod_dir, vol).await?;
        dirs.insert(vol.name.clone(), dir);
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    #[test]
    fn select_files_honours_items_and_optional() {
        let data = BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]);
        assert_eq!(select_files(&data, None, false).expect("all").len(), 2);
        let items = vec![KeyToPath {
            key: "b".into(),
            path: "sub/b.txt".into(),
            mode: None,
        }];
        assert_eq!(
            select_files(&data, Some(&items), false).expect("items"),
            vec![("sub/b.txt".to_string(), b"2".to_vec())]
        );
        let missing = vec![KeyToPath {
            key: "z".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(select_files(&data, Some(&missing), false).is_err());
        assert!(select_files(&data, Some(&missing), true)
            .expect("optional")
            .is_empty());
    }

    #[test]
    fn write_files_rewrites_changed_content_and_rejects_escapes() {
        let dir = tempfile::tempdir().expect("tmp");
        write_files(dir.path(), &[("x/y".into(), b"1".to_vec())], 0o600).expect("write");
        write_files(dir.path(), &[("x/y".into(), b"2".to_vec())], 0o600).expect("rewrite");
        assert_eq!(std::fs::read(dir.path().join("x/y")).expect("read"), b"2");
        assert!(write_files(dir.path(), &[("../evil".into(), vec![])], 0o600).is_err());
    }

    #[test]
    fn mounts_resolve_sub_paths_and_read_only() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("server.properties"), "x").expect("write");
        let dirs = BTreeMap::from([("cfg".to_string(), dir.path().to_path_buf())]);
        let c = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/etc/spate".into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/etc/one.properties".into(),
                    sub_path: Some("server.properties".into()),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        let m = mounts(&c, &dirs).expect("mounts");
        assert!(m[0].read_only && !m[0].is_file);
        assert!(m[1].is_file && m[1].source.ends_with("server.properties"));
        let bad = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "nope".into(),
                mount_path: "/x".into(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        assert!(mounts(&bad, &dirs).is_err());
    }
}
