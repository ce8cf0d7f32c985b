//! Which container a socket belongs to: from the owner's cgroup, or, for a
//! port a runtime publishes (`docker-proxy`, `rootlessport`, `dockerd`
//! itself with the userland proxy off), from the container it forwards
//! to. Names, images and port bindings come from the runtime's own API
//! over its Unix socket — a few GETs with a short timeout, nothing at all
//! when the socket is missing or unreadable, never the `docker` CLI.

use crate::facts::cgroup::{ContainerId, Runtime};
use crate::facts::http::{read_response_head, BodyDecoder};
use crate::model::Proto;
use crate::platform;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A container as portctl reports it (SPEC.md, `who`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub runtime: Runtime,
    /// The full id; `null` when only the runtime's API could tell and it
    /// did not answer.
    pub id: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The container's own port behind the socket.
    pub port: Option<u16>,
}

/// Processes that belong to a container runtime: `kill` never signals
/// them, since stopping one stops (or breaks) every container it serves.
pub fn is_runtime_process(name: &str) -> bool {
    matches!(
        name,
        "docker-proxy"
            | "dockerd"
            | "rootlessport"
            | "rootlessport-child"
            | "conmon"
            | "containerd"
    ) || name.starts_with("containerd-shim")
}

/// Whether process `pid`, named `name` and running as `user`, really is a
/// runtime's: any process can call itself `docker-proxy`, so the name must
/// match the program it runs (`/proc/PID/exe`). Where that cannot be read
/// (another user's process), only root's processes count: the runtimes
/// that publish ports for others run as root, an impostor without
/// privileges cannot.
pub fn is_runtime(pid: u32, name: &str, user: Option<&str>) -> bool {
    if !is_runtime_process(name) {
        return false;
    }
    match platform::process_exe(pid) {
        Some(exe) => exe
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|file| file.starts_with(name) || name.starts_with(file)),
        None => user == Some("root"),
    }
}

/// What a `docker-proxy` command line says it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    pub container_ip: Option<IpAddr>,
    pub container_port: Option<u16>,
}

/// `docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 8080
/// -container-ip 172.17.0.2 -container-port 80` (single or double dashes,
/// `-flag value` or `-flag=value`).
pub fn proxy_target(cmdline: &[String]) -> Option<ProxyTarget> {
    let program = cmdline.first()?;
    if !program.ends_with("docker-proxy") {
        return None;
    }
    let value = |flag: &str| -> Option<&str> {
        let mut args = cmdline.iter().skip(1);
        while let Some(arg) = args.next() {
            let name = arg.trim_start_matches('-');
            if name == flag {
                return args.next().map(String::as_str);
            }
            if let Some(v) = name.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    };
    Some(ProxyTarget {
        container_ip: value("container-ip").and_then(|v| v.parse().ok()),
        container_port: value("container-port").and_then(|v| v.parse().ok()),
    })
}

/// One container as the Docker-compatible `GET /containers/json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Listed {
    id: String,
    name: Option<String>,
    image: Option<String>,
    /// (host port, container port, transport) of each published port.
    ports: Vec<(u16, u16, Proto)>,
    ips: Vec<IpAddr>,
}

/// Parses a `/containers/json` reply (Docker's and Podman's compat API).
fn parse_listing(body: &[u8]) -> Vec<Listed> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|c| {
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let ports = c["Ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let proto = match p["Type"].as_str()? {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        _ => return None,
                    };
                    let public = u16::try_from(p["PublicPort"].as_u64()?).ok()?;
                    let private = u16::try_from(p["PrivatePort"].as_u64()?).ok()?;
                    Some((public, private, proto))
                })
                .collect();
            let ips = c["NetworkSettings"]["Networks"]
                .as_object()
                .into_iter()
                .flat_map(|nets| nets.values())
                .filter_map(|n| n["IPAddress"].as_str()?.parse().ok())
                .collect();
            Some(Listed {
                id: text(&c["Id"])?,
                name: c["Names"]
                    .as_array()
                    .and_then(|n| n.first())
                    .and_then(|n| n.as_str())
                    .map(|n| n.trim_start_matches('/').to_string()),
                image: text(&c["Image"]),
                ports,
                ips,
            })
        })
        .collect()
}

/// The API sockets of each runtime, where they usually are.
fn api_sockets(runtime: Runtime) -> Vec<PathBuf> {
    match runtime {
        Runtime::Docker => vec![std::env::var_os("DOCKER_HOST")
            .and_then(|h| h.to_str()?.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))],
        Runtime::Podman => {
            let mut paths = vec![PathBuf::from("/run/podman/podman.sock")];
            if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
                paths.push(Path::new(&dir).join("podman/podman.sock"));
            }
            paths
        }
        Runtime::Containerd | Runtime::Kubernetes => Vec::new(),
    }
}

/// How long one API request may take, start to end.
const API_TIMEOUT: Duration = Duration::from_millis(500);
/// The most of an API reply read.
const API_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// One HTTP/1.1 request over a runtime's Unix socket: (status, body).
fn request(
    socket: &Path,
    method: &str,
    path: &str,
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = platform::local_stream(socket, timeout)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: portctl/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )?;
    let bad = |e: crate::facts::http::BodyError| io::Error::new(io::ErrorKind::InvalidData, e.0);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(head) = read_response_head(&buffer).map_err(bad)? {
            break head;
        }
    };
    let mut decoder = BodyDecoder::new(head.framing().map_err(bad)?);
    let mut body = Vec::new();
    let mut keep = |bytes: &[u8]| {
        let room = API_BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
    };
    decoder.feed(&buffer[head.len..], &mut keep).map_err(bad)?;
    while !decoder.is_done() {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            decoder.finish().map_err(bad)?;
            break;
        }
        decoder.feed(&chunk[..n], &mut keep).map_err(bad)?;
    }
    Ok((head.status, body))
}

/// What each runtime's API said, asked at most once per run.
#[derive(Debug, Default)]
pub struct Runtimes {
    docker: Option<Vec<Listed>>,
    podman: Option<Vec<Listed>>,
}

impl Runtimes {
    fn listing(&mut self, runtime: Runtime) -> &[Listed] {
        let slot = match runtime {
            Runtime::Docker => &mut self.docker,
            Runtime::Podman => &mut self.podman,
            Runtime::Containerd | Runtime::Kubernetes => return &[],
        };
        slot.get_or_insert_with(|| {
            api_sockets(runtime)
                .iter()
                .find_map(
                    |socket| match request(socket, "GET", "/containers/json", API_TIMEOUT) {
                        Ok((200, body)) => Some(parse_listing(&body)),
                        _ => None,
                    },
                )
                .unwrap_or_default()
        })
    }

    /// The container behind a socket on `port` owned by `process` (its
    /// name, command line, and the container its cgroup names), if any.
    pub fn attribute(
        &mut self,
        process: &str,
        cmdline: &[String],
        own: Option<&ContainerId>,
        port: u16,
        proto: Proto,
    ) -> Option<Container> {
        if let Some(target) = proxy_target(cmdline) {
            let found = self
                .listing(Runtime::Docker)
                .iter()
                .find(|c| {
                    // The address the proxy names, and this port published:
                    // a command line alone proves nothing.
                    target.container_ip.is_some_and(|ip| c.ips.contains(&ip))
                        && c.ports
                            .iter()
                            .any(|&(host, _, p)| host == port && p == proto)
                })
                .cloned();
            return Some(self.describe(Runtime::Docker, found, target.container_port));
        }
        let published = |runtime| match process {
            "dockerd" if runtime == Runtime::Docker => true,
            "rootlessport" | "rootlessport-child" | "conmon" if runtime == Runtime::Podman => true,
            _ => false,
        };
        for runtime in [Runtime::Docker, Runtime::Podman] {
            if published(runtime) {
                let found = self
                    .listing(runtime)
                    .iter()
                    .find(|c| {
                        c.ports
                            .iter()
                            .any(|&(host, _, p)| host == port && p == proto)
                    })
                    .cloned();
                let inner = found.as_ref().and_then(|c| {
                    c.ports
                        .iter()
                        .find(|&&(host, _, p)| host == port && p == proto)
                        .map(|&(_, inner, _)| inner)
                });
                return found.map(|c| self.describe(runtime, Some(c), inner));
            }
        }
        let ContainerId { runtime, id } = own?.clone();
        let found = self.listing(runtime).iter().find(|c| c.id == id).cloned();
        let mut container = self.describe(runtime, found, Some(port));
        container.id = Some(id);
        Some(container)
    }

    fn describe(&self, runtime: Runtime, found: Option<Listed>, port: Option<u16>) -> Container {
        let found = found.unwrap_or_default();
        Container {
            runtime,
            id: (!found.id.is_empty()).then_some(found.id),
            name: found.name,
            image: found.image,
            port,
        }
    }
}

/// Stops a container through its runtime's API (`docker stop`'s
/// request), giving it `grace` to exit before the runtime kills it; the
/// runtime answers once it has stopped.
pub fn stop(container: &Container, grace: Duration) -> io::Result<()> {
    let id = container
        .id
        .as_deref()
        .ok_or_else(|| io::Error::other("the container's id is not known"))?;
    let mut last = io::Error::other(format!("no API socket answers for {}", container.runtime));
    let seconds = grace.as_secs().max(1);
    let path = format!("/containers/{id}/stop?t={seconds}");
    // The answer comes when the container is gone: allow the grace and
    // the runtime's own kill after it.
    let wait = Duration::from_secs(seconds + 10);
    for socket in api_sockets(container.runtime) {
        match request(&socket, "POST", &path, wait) {
            Ok((204 | 304, _)) => return Ok(()),
            Ok((status, body)) => {
                last = io::Error::other(format!(
                    "the {} API answered {status}: {}",
                    container.runtime,
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                ))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                last = io::Error::other(format!(
                    "the {} API did not answer within {}s",
                    container.runtime,
                    wait.as_secs()
                ))
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The command a person would type to stop it.
pub fn stop_command(container: &Container) -> String {
    let what = container
        .name
        .clone()
        .or_else(|| {
            container
                .id
                .as_ref()
                .map(|id| id[..id.len().min(12)].to_string())
        })
        .unwrap_or_else(|| "<container>".into());
    match container.runtime {
        Runtime::Podman => format!("podman stop {what}"),
        Runtime::Kubernetes => {
            "kubectl delete pod <pod> (the container belongs to Kubernetes)".into()
        }
        Runtime::Containerd => format!("ctr task kill {what}"),
        Runtime::Docker => format!("docker stop {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn docker_proxy_command_lines() {
        let t = proxy_target(&args(
            "/usr/sbin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 18080 -container-ip 172.17.0.2 -container-port 8080",
        ))
        .unwrap();
        assert_eq!(t.container_ip, Some("172.17.0.2".parse().unwrap()));
        assert_eq!(t.container_port, Some(8080));
        let eq = proxy_target(&args(
            "docker-proxy --container-ip=fd00::2 --container-port=80",
        ))
        .unwrap();
        assert_eq!(eq.container_ip, Some("fd00::2".parse().unwrap()));
        assert_eq!(eq.container_port, Some(80));
        assert_eq!(proxy_target(&args("/usr/bin/python3 -m http.server")), None);
        assert_eq!(
            proxy_target(&args("docker-proxy -container-port notaport"))
                .unwrap()
                .container_port,
            None
        );
    }

    #[test]
    fn runtime_processes() {
        for name in [
            "docker-proxy",
            "dockerd",
            "rootlessport",
            "conmon",
            "containerd-shim-runc-v2",
        ] {
            assert!(is_runtime_process(name), "{name}");
        }
        assert!(!is_runtime_process("nginx"));
    }

    #[test]
    fn listings_from_the_docker_api() {
        let body = br#"[{"Id":"251d2c1e","Names":["/web1"],"Image":"portctl-busybox:test",
            "Ports":[{"IP":"127.0.0.1","PrivatePort":8080,"PublicPort":18080,"Type":"tcp"},{"PrivatePort":53,"Type":"udp"}],
            "NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}},
            {"Names":["/no-id"]}, 7]"#;
        let listed = parse_listing(body);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name.as_deref(), Some("web1"));
        assert_eq!(listed[0].ports, [(18080, 8080, Proto::Tcp)]);
        assert_eq!(listed[0].ips, ["172.17.0.2".parse::<IpAddr>().unwrap()]);
        assert!(parse_listing(b"{\"message\":\"nope\"}").is_empty());
        assert!(parse_listing(b"\xff").is_empty());
    }

    #[test]
    fn stop_commands_name_the_container() {
        let c = Container {
            runtime: Runtime::Docker,
            id: Some("251d2c1ecce4c3eee6073dceb855c719".into()),
            name: None,
            image: None,
            port: Some(80),
        };
        assert_eq!(stop_command(&c), "docker stop 251d2c1ecce4");
        let named = Container {
            name: Some("web".into()),
            runtime: Runtime::Podman,
            ..c
        };
        assert_eq!(stop_command(&named), "podman stop web");
    }
}
