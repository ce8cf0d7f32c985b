//! Where a process runs, read from its cgroup path (`/proc/PID/cgroup`):
//! the systemd unit or scope, and the container a runtime put it in. A
//! pure parser over the file's text; PID 1 need not be systemd for the
//! path to name a unit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The container runtimes portctl recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    Kubernetes,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
            Runtime::Kubernetes => "kubernetes",
        })
    }
}

/// A container named by a cgroup path: its runtime and full id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId {
    pub runtime: Runtime,
    pub id: String,
}

/// What a cgroup path says about a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The systemd unit or scope (`nginx.service`, `session-2.scope`).
    pub unit: Option<String>,
    pub container: Option<ContainerId>,
}

/// Reads `/proc/PID/cgroup` text: the unified (`0::`) line, else the
/// `name=systemd` line of cgroup v1, else any line.
pub fn parse(text: &str) -> Placement {
    let paths: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let preferred = paths
        .iter()
        .find(|(c, p)| c.is_empty() && *p != "/")
        .or_else(|| paths.iter().find(|(c, _)| *c == "name=systemd"))
        .map(|(_, p)| *p);
    let Some(path) = preferred else {
        return Placement::default();
    };
    // A container's own cgroup may sit in any hierarchy: look at all.
    let container = std::iter::once(path)
        .chain(paths.iter().map(|(_, p)| *p))
        .find_map(|p| container_of(p).or_else(|| bare_container(p)));
    Placement {
        unit: unit_of(path),
        container,
    }
}

/// The innermost `.service` or `.scope` in a path; inside a user's
/// manager (`user@1000.service/app.slice/x.service`) that is the user's
/// unit. A container's scope (`docker-ID.scope`) is not a unit of its own.
fn unit_of(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|part| {
            (part.ends_with(".service") || part.ends_with(".scope"))
                && container_of_segment(part).is_none()
        })
        .map(str::to_string)
}

fn container_of(path: &str) -> Option<ContainerId> {
    path.split('/').rev().find_map(container_of_segment)
}

/// One path segment that names a container by its prefix:
/// `docker-ID.scope`, `libpod-ID.scope`, `cri-containerd-ID.scope`,
/// `crio-ID.scope`.
fn container_of_segment(segment: &str) -> Option<ContainerId> {
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let prefixes = [
        ("docker-", Runtime::Docker),
        ("libpod-conmon-", Runtime::Podman),
        ("libpod-", Runtime::Podman),
        ("cri-containerd-", Runtime::Kubernetes),
        ("crio-conmon-", Runtime::Kubernetes),
        ("crio-", Runtime::Kubernetes),
    ];
    for (prefix, runtime) in prefixes {
        if let Some(id) = segment.strip_prefix(prefix).filter(|id| is_id(id)) {
            return Some(ContainerId {
                runtime,
                id: id.to_string(),
            });
        }
    }
    None
}

/// A full container id: 64 hex digits.
fn is_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `/docker/ID`, `/kubepods/besteffort/podUID/ID`, `/system.slice/containerd.service/…/ID`:
/// a bare id segment, named by the segments above it.
fn bare_container(path: &str) -> Option<ContainerId> {
    let parts: Vec<&str> = path.split('/').collect();
    let at = parts.iter().rposition(|p| is_id(p))?;
    let above = &parts[..at];
    let runtime = if above.contains(&"docker") {
        Runtime::Docker
    } else if above.iter().any(|p| p.starts_with("kubepods")) {
        Runtime::Kubernetes
    } else if above.iter().any(|p| p.contains("containerd")) {
        Runtime::Containerd
    } else {
        return None;
    };
    Some(ContainerId {
        runtime,
        id: parts[at].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "251d2c1ecce4c3eee6073dceb855c71999ffc5a02f6d98e43b5b1fcf584bca01";

    #[test]
    fn systemd_units_on_cgroup_v2_and_v1() {
        let v2 = parse("0::/system.slice/nginx.service\n");
        assert_eq!(v2.unit.as_deref(), Some("nginx.service"));
        assert_eq!(v2.container, None);
        let v1 = parse(
            "12:pids:/system.slice/ssh.service\n1:name=systemd:/system.slice/ssh.service\n0::/\n",
        );
        assert_eq!(v1.unit.as_deref(), Some("ssh.service"));
        let user = parse(
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-2201.scope\n",
        );
        assert_eq!(user.unit.as_deref(), Some("app-gnome-firefox-2201.scope"));
        let session = parse("0::/user.slice/user-1000.slice/session-2.scope\n");
        assert_eq!(session.unit.as_deref(), Some("session-2.scope"));
        assert_eq!(parse("0::/\n"), Placement::default());
        assert_eq!(parse(""), Placement::default());
    }

    #[test]
    fn containers_from_every_runtime_layout() {
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope\n"), Runtime::Docker),
            (format!("9:name=systemd:/docker/{ID}\n0::/\n"), Runtime::Docker),
            (
                format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
                Runtime::Podman,
            ),
            (
                format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n"),
                Runtime::Podman,
            ),
            (
                format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-{ID}.scope\n"),
                Runtime::Kubernetes,
            ),
            (
                format!("0::/kubepods/besteffort/pod0b8e6f3c-1b1a-4b0e-9d2a-3f5c1e2d4a6b/{ID}\n"),
                Runtime::Kubernetes,
            ),
            (
                format!("0::/system.slice/containerd.service/default/{ID}\n"),
                Runtime::Containerd,
            ),
        ];
        for (text, runtime) in cases {
            let found = parse(&text).container.unwrap_or_else(|| panic!("{text}"));
            assert_eq!((found.runtime, found.id.as_str()), (runtime, ID), "{text}");
            // The container's scope is not reported as its unit.
            assert!(!parse(&text).unit.is_some_and(|u| u.contains(ID)), "{text}");
        }
        assert_eq!(
            parse("0::/system.slice/docker-notanid.scope\n").container,
            None
        );
        assert_eq!(parse("0::/docker\n").container, None);
    }
}
