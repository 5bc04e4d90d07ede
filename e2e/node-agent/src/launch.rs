//! The command line that starts a container: enter the pod's network namespace (which
//! `ip netns exec` does in a fresh mount namespace, binding `/etc/netns/<ns>/hosts` over
//! `/etc/hosts`), take a private UTS namespace for the pod hostname, bind-mount the volumes
//! at their mount paths, change to the working directory and exec the entrypoint.
//!
//! Mounts live only in the container's mount namespace, so pods sharing the host filesystem
//! still each see their own `/var/run/secrets/...` or `/var/lib/spate`. Mount points that do
//! not exist on the host are created there (empty directories).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use crate::{Error, Result};

/// Absolute paths of the host tools the agent runs, found once at startup.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ip: PathBuf,
    pub unshare: PathBuf,
    pub sh: PathBuf,
    pub nsenter: PathBuf,
}

impl Tools {
    /// Looks the tools up on PATH.
    pub fn find() -> Result<Self> {
        let find = |name: &str| -> Result<PathBuf> {
            let path = std::env::var("PATH").unwrap_or_else(|_| crate::env::DEFAULT_PATH.into());
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| Error::Invalid(format!("`{name}` not found on PATH")))
        };
        Ok(Tools {
            ip: find("ip")?,
            unshare: find("unshare")?,
            sh: find("sh")?,
            nsenter: find("nsenter")?,
        })
    }
}

/// A volume directory (or file, for `subPath`) bound at `target` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    pub is_file: bool,
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The argv the container runs. `command` replaces the image entrypoint, as in Kubernetes;
/// the image's "entrypoint" is its mapped binary. A `command[0]` whose file name is the
/// mapped binary's (e.g. `spate-broker` or `/usr/local/bin/spate-broker`) runs the mapped
/// binary, since image paths do not exist on the host.
pub fn entrypoint(container: &Container, image_binary: Option<&Path>) -> Result<Vec<String>> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let mut argv = if command.is_empty() {
        let binary = image_binary.ok_or_else(|| {
            Error::Invalid(format!(
                "container {}: image {:?} has no local binary and no command",
                container.name,
                container.image.as_deref().unwrap_or("")
            ))
        })?;
        vec![binary.to_string_lossy().into_owned()]
    } else {
        command
    };
    if let (Some(binary), Some(first)) = (image_binary, argv.first_mut()) {
        let first_name = Path::new(first.as_str()).file_name();
        if first_name.is_some() && first_name == binary.file_name() {
            *first = binary.to_string_lossy().into_owned();
        }
    }
    argv.extend(args);
    Ok(argv)
}

/// The shell script run inside the pod's namespaces; the entrypoint follows as `"$@"`.
pub fn script(hostname: &str, mounts: &[Mount], working_dir: Option<&str>) -> String {
    let mut s = String::from(
        "set -e\n_spate_path=\"$PATH\"\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    if !hostname.is_empty() {
        s.push_str(&format!(
            "hostname {} 2>/dev/null || true\n",
            shell_quote(hostname)
        ));
    }
    for m in mounts {
        let target = shell_quote(&m.target);
        if m.is_file {
            s.push_str(&format!(
                "mkdir -p \"$(dirname {target})\"\n[ -e {target} ] || touch {target}\n"
            ));
        } else {
            s.push_str(&format!("mkdir -p {target}\n"));
        }
        s.push_str(&format!(
            "mount --bind {} {target}\n",
            shell_quote(&m.source.to_string_lossy())
        ));
        if m.read_only {
            s.push_str(&format!(
                "mount -o remount,bind,ro {target} 2>/dev/null || true\n"
            ));
        }
    }
    if let Some(wd) = working_dir.filter(|w| !w.is_empty()) {
        let wd = shell_quote(wd);
        s.push_str(&format!("mkdir -p {wd}\ncd {wd}\n"));
    }
    s.push_str("PATH=\"$_spate_path\"\nunset _spate_path\nexec \"$@\"\n");
    s
}

/// The full argv: `ip netns exec NS unshare --uts sh -c SCRIPT spate-container ENTRYPOINT...`.
pub fn argv(tools: &Tools, netns: &str, script: &str, entrypoint: &[String]) -> Vec<String> {
    let mut argv = vec![
        tools.ip.to_string_lossy().into_owned(),
        "netns".into(),
        "exec".into(),
        netns.into(),
        tools.unshare.to_string_lossy().into_owned(),
        "--uts".into(),
        tools.sh.to_string_lossy().into_owned(),
        "-c".into(),
        script.into(),
        "spate-container".into(),
    ];
    argv.extend(entrypoint.iter().cloned());
    argv
}

/// The argv of an exec probe: the command inside the running container's namespaces.
pub fn exec_argv(tools: &Tools, pid: u32, command: &[String]) -> Vec<String> {
    let mut argv = vec![
        tools.nsenter.to_string_lossy().into_owned(),
        "-t".into(),
        pid.to_string(),
        "-m".into(),
        "-n".into(),
        "-u".into(),
        "--".into(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        Container {
            name: "c".into(),
            image: Some("spate:1".into()),
            command: v(command),
            args: v(args),
            ..Container::default()
        }
    }

    #[test]
    fn entrypoint_uses_mapped_binary_when_no_command() {
        let argv = entrypoint(
            &container(&[], &["--x"]),
            Some(Path::new("/b/spate-broker")),
        )
        .expect("argv");
        assert_eq!(argv, vec!["/b/spate-broker", "--x"]);
    }

    #[test]
    fn entrypoint_command_naming_the_image_binary_runs_the_mapped_binary() {
        let bin = Some(Path::new("/b/spate-broker"));
        let argv = entrypoint(
            &container(&["/usr/local/bin/spate-broker", "--config"], &["f"]),
            bin,
        )
        .expect("argv");
        assert_eq!(argv, vec!["/b/spate-broker", "--config", "f"]);
        let argv = entrypoint(&container(&["sh", "-c", "echo"], &[]), bin).expect("argv");
        assert_eq!(argv, vec!["sh", "-c", "echo"]);
    }

    #[test]
    fn entrypoint_without_command_or_mapping_is_an_error() {
        assert!(entrypoint(&container(&[], &[]), None).is_err());
    }

    #[test]
    fn script_mounts_volumes_sets_hostname_and_execs() {
        let mounts = vec![
            Mount {
                source: "/state/pods/u/volumes/data".into(),
                target: "/var/lib/spate".into(),
                read_only: false,
                is_file: false,
            },
            Mount {
                source: "/state/pods/u/volumes/cfg/a b".into(),
                target: "/etc/it's".into(),
                read_only: true,
                is_file: true,
            },
        ];
        let s = script("web-0", &mounts, Some("/work"));
        assert!(s.contains("hostname 'web-0'"));
        assert!(s.contains("mkdir -p '/var/lib/spate'\nmount --bind '/state/pods/u/volumes/data' '/var/lib/spate'\n"));
        assert!(s.contains("touch '/etc/it'\\''s'"));
        assert!(s.contains("mount -o remount,bind,ro '/etc/it'\\''s'"));
        assert!(s.contains("cd '/work'"));
        assert!(s.ends_with("exec \"$@\"\n"));
    }

    #[test]
    fn shell_quote_survives_the_shell() {
        let tricky = "a'b $(c) \"d\"";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(tricky)))
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    }
}
