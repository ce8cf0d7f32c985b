//! Where a process runs, read from its cgroup path (`/proc/PID/cgroup`):
//! the systemd unit or scope, and the container a runtime put it in. A
//! pure parser over the file's text; PID 1 need not be systemd for the
//! path to name a unit.
//!
//! A path is only a claim: anyone given a cgroup subtree of their own (a
//! delegated one, as systemd gives every user) may make a folder named
//! `docker-<id>.scope`. So a container comes back as a `Claim` with the
//! hierarchy and folder it rests on, for the caller to have the platform
//! vouch for (`platform::cgroup_owned_by_root`) before believing it.

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

/// A container named by a cgroup path: its runtime and full id, and for
/// a Kubernetes pod's container, the pod's uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId {
    pub runtime: Runtime,
    pub id: String,
    pub pod_uid: Option<String>,
}

/// A container a cgroup path claims, and where: the hierarchy as
/// `/proc/PID/cgroup` names it (empty for v2, `name=systemd`, ...) and
/// the path down to the container's own folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub container: ContainerId,
    pub hierarchy: String,
    pub path: String,
}

/// What a cgroup path says about a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The systemd unit or scope (`nginx.service`, `session-2.scope`).
    pub unit: Option<String>,
    pub container: Option<Claim>,
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
        .copied();
    let Some((_, path)) = preferred else {
        return Placement::default();
    };
    // A container's own cgroup may sit in any hierarchy: look at all,
    // the preferred one first.
    let container = std::iter::once(preferred)
        .flatten()
        .chain(paths.iter().copied())
        .find_map(|(hierarchy, path)| claim(hierarchy, path));
    Placement {
        unit: unit_of(path),
        container,
    }
}

/// The container a path names, with the path down to its folder.
fn claim(hierarchy: &str, path: &str) -> Option<Claim> {
    let parts: Vec<&str> = path.split('/').collect();
    let (at, container) = parts
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, part)| Some((i, container_of_segment(part)?)))
        .or_else(|| bare_container(&parts))?;
    let pod_uid = pod_of(&parts[..at]);
    let runtime = if pod_uid.is_some() || parts[..at].iter().any(|p| p.starts_with("kubepods")) {
        Runtime::Kubernetes
    } else {
        container.runtime
    };
    Some(Claim {
        container: ContainerId {
            runtime,
            id: container.id,
            pod_uid,
        },
        hierarchy: hierarchy.to_string(),
        path: parts[..=at].join("/"),
    })
}

/// The innermost `.service` or `.scope` in a path; inside a user's
/// manager (`user@1000.service/app.slice/x.service`) that is the user's
/// unit. Nothing above a container is its unit: `containerd.service`
/// holds the containers' cgroups but is not what runs in them, and a
/// container's scope (`docker-ID.scope`) is the container.
fn unit_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let inside = parts
        .iter()
        .rposition(|p| container_of_segment(p).is_some() || is_id(p))
        .map_or(0, |at| at + 1);
    parts[inside..]
        .iter()
        .rev()
        .find(|part| part.ends_with(".service") || part.ends_with(".scope"))
        .map(|part| part.to_string())
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
    prefixes.iter().find_map(|(prefix, runtime)| {
        let id = segment.strip_prefix(prefix).filter(|id| is_id(id))?;
        Some(ContainerId {
            runtime: *runtime,
            id: id.to_string(),
            pod_uid: None,
        })
    })
}

/// A full container id: 64 hex digits.
fn is_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `/docker/ID`, `/kubepods/besteffort/podUID/ID`,
/// `/system.slice/containerd.service/…/ID`: a bare id segment, named by
/// the segments above it; and where it is.
fn bare_container(parts: &[&str]) -> Option<(usize, ContainerId)> {
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
    Some((
        at,
        ContainerId {
            runtime,
            id: parts[at].to_string(),
            pod_uid: None,
        },
    ))
}

/// The pod's uid in a kubelet's cgroup path: `pod<uid>` (cgroupfs
/// driver) or `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd
/// driver).
fn pod_of(above: &[&str]) -> Option<String> {
    above.iter().rev().find_map(|part| {
        let part = part.strip_suffix(".slice").unwrap_or(part);
        let uid = match part.rsplit_once("-pod") {
            Some((head, uid)) if head.starts_with("kubepods") => uid.replace('_', "-"),
            _ => part.strip_prefix("pod")?.to_string(),
        };
        is_uid(&uid).then_some(uid)
    })
}

/// A pod uid: a UUID, 8-4-4-4-12 hex digits.
fn is_uid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "251d2c1ecce4c3eee6073dceb855c71999ffc5a02f6d98e43b5b1fcf584bca01";
    const POD: &str = "0b8e6f3c-1b1a-4b0e-9d2a-3f5c1e2d4a6b";

    fn container(text: &str) -> ContainerId {
        parse(text)
            .container
            .unwrap_or_else(|| panic!("no container in {text}"))
            .container
    }

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
                format!("0::/system.slice/containerd.service/default/{ID}\n"),
                Runtime::Containerd,
            ),
        ];
        for (text, runtime) in cases {
            let found = container(&text);
            assert_eq!((found.runtime, found.id.as_str()), (runtime, ID), "{text}");
            // Neither the container's scope nor a unit above it is the
            // unit of what runs inside.
            assert_eq!(parse(&text).unit, None, "{text}");
        }
        assert_eq!(
            parse("0::/system.slice/docker-notanid.scope\n").container,
            None
        );
        assert_eq!(parse("0::/docker\n").container, None);
    }

    #[test]
    fn claims_carry_the_folder_they_rest_on() {
        let claim = parse(&format!(
            "1:name=systemd:/user.slice/deleg/docker-{ID}.scope/inner\n"
        ))
        .container
        .unwrap();
        assert_eq!(claim.hierarchy, "name=systemd");
        assert_eq!(claim.path, format!("/user.slice/deleg/docker-{ID}.scope"));
        let bare = parse(&format!("0::/docker/{ID}\n")).container.unwrap();
        assert_eq!(
            (bare.hierarchy.as_str(), bare.path.as_str()),
            ("", &*format!("/docker/{ID}"))
        );
    }

    /// Real lines from kubelets: the cgroupfs driver, and the systemd
    /// driver with containerd, CRI-O and Docker (cri-dockerd).
    #[test]
    fn kubernetes_pods_on_both_cgroup_drivers() {
        let pod_underscored = POD.replace('-', "_");
        let cases = [
            format!("0::/kubepods/besteffort/pod{POD}/{ID}\n"),
            format!("0::/kubepods/pod{POD}/{ID}\n"),
            format!("11:pids:/kubepods/burstable/pod{POD}/{ID}\n1:name=systemd:/kubepods/burstable/pod{POD}/{ID}\n"),
            format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_underscored}.slice/cri-containerd-{ID}.scope\n"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_underscored}.slice/crio-{ID}.scope\n"),
            format!("0::/kubepods.slice/kubepods-pod{pod_underscored}.slice/docker-{ID}.scope\n"),
        ];
        for text in cases {
            let found = container(&text);
            assert_eq!(found.runtime, Runtime::Kubernetes, "{text}");
            assert_eq!(found.id, ID, "{text}");
            assert_eq!(found.pod_uid.as_deref(), Some(POD), "{text}");
            assert_eq!(parse(&text).unit, None, "{text}");
        }
        // A pod-like folder that is not a uid names no pod.
        let odd = container(&format!("0::/kubepods/podnotauid/{ID}\n"));
        assert_eq!((odd.runtime, odd.pod_uid), (Runtime::Kubernetes, None));
    }
}
