//! Which container a socket belongs to: from the owner's cgroup, or, for a
//! port a runtime publishes (`docker-proxy`, `rootlessport`, `dockerd`
//! itself with the userland proxy off), from the container it forwards
//! to. Names, images and port bindings come from the runtime's own API
//! over its Unix socket, never the `docker` CLI.
//!
//! Nothing here is believed for its name alone. A runtime's process is
//! one whose program only root could have installed (`runtime_process`);
//! a published port is matched on transport, host address and port; and
//! every conversation with an API is bounded in total time and bytes,
//! since a daemon may answer slowly, endlessly or never.

use crate::facts::cgroup::{ContainerId, Runtime};
use crate::facts::http::{read_response_head, BodyDecoder, BodyError};
use crate::model::Proto;
use crate::platform::{self, LocalStream};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A container as portctl reports it (SPEC.md, `who`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub runtime: Runtime,
    /// The full id; `null` when only the runtime's API could tell and it
    /// did not answer.
    pub id: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The container's own port behind the socket.
    pub port: Option<u16>,
    /// A Kubernetes pod's uid, from the kubelet's cgroup path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod and its namespace, where a runtime's API names them
    /// without credentials (Docker's `k8s_CONTAINER_POD_NAMESPACE_UID_N`
    /// names, as cri-dockerd gives them); nothing is guessed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The API socket that named it: a stop goes to the same one.
    #[serde(skip)]
    pub api: Option<PathBuf>,
}

impl Container {
    /// What a person types to name it: the name, else the short id, else
    /// the runtime.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.id.as_deref().map(|id| short_id(id).to_string()))
            .unwrap_or_else(|| self.runtime.to_string())
    }
}

/// The first 12 characters of an id, as `docker ps` shows it. An id
/// from outside may be any text: it is cut on a character boundary.
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((at, _)) => &id[..at],
        None => id,
    }
}

/// Whether an id a runtime's API gave is one it could have: 12 to 64 hex
/// digits. Only such ids go into a request path.
fn is_container_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The processes of container runtimes: `kill` never signals them, since
/// stopping one stops (or breaks) every container it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeProcess {
    DockerProxy,
    Dockerd,
    Containerd,
    /// `containerd-shim`, `containerd-shim-runc-v2`, …
    Shim,
    RootlessPort,
    Conmon,
}

/// The longest process name the kernel keeps (`comm`): longer names are
/// cut to this.
const COMM_MAX: usize = 15;

impl RuntimeProcess {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "docker-proxy" => RuntimeProcess::DockerProxy,
            "dockerd" => RuntimeProcess::Dockerd,
            "containerd" => RuntimeProcess::Containerd,
            "rootlessport" => RuntimeProcess::RootlessPort,
            "conmon" => RuntimeProcess::Conmon,
            _ if name.starts_with("containerd-shim") => RuntimeProcess::Shim,
            _ => return None,
        })
    }

    /// Rootful daemons run as root; a rootless runtime's helpers run as
    /// the user who runs the containers.
    fn runs_as_root(self) -> bool {
        matches!(
            self,
            RuntimeProcess::DockerProxy
                | RuntimeProcess::Dockerd
                | RuntimeProcess::Containerd
                | RuntimeProcess::Shim
        )
    }

    /// Whether the program file `file` is the one a process named `name`
    /// runs: the same name, or the kernel's cut of it.
    fn is_file(name: &str, file: &str) -> bool {
        file == name || (name.len() == COMM_MAX && file.starts_with(name))
    }
}

/// Whether process `pid`, named `name`, really is a container runtime's:
/// any user can run a program called `docker-proxy`, so the program it
/// runs must be one only root could have installed (the file and its
/// folders owned by root, writable by nobody else) and bear that name;
/// the rootful daemons must run as root, a rootless runtime's as root or
/// as the user asking. Where the program cannot be read (another user's
/// process, without privileges), only a process running as root counts:
/// no unprivileged user can start one.
pub fn runtime_process(pid: u32, name: &str) -> Option<RuntimeProcess> {
    let kind = RuntimeProcess::named(name)?;
    let uid = platform::process_uid(pid);
    // A rootless runtime's helper runs as its user, who could as well have
    // run the same program on sockets of their own: only that user (who
    // can mislead no one but themselves) takes its word; to anyone else
    // it is an ordinary process of theirs.
    let trusted = match uid {
        Some(0) => true,
        Some(user) => !kind.runs_as_root() && platform::current_uid() == Some(user),
        None => false,
    };
    if !trusted {
        return None;
    }
    let genuine = match platform::executable(pid) {
        Some(exe) => {
            exe.root_owned
                && exe
                    .path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|file| RuntimeProcess::is_file(name, file))
        }
        None => uid == Some(0),
    };
    genuine.then_some(kind)
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

/// A port a container publishes on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Published {
    /// The host address; `None` where the API gives none (any address).
    host_ip: Option<IpAddr>,
    host_port: u16,
    container_port: u16,
    proto: Proto,
}

impl Published {
    /// Whether this binding is the socket bound to `local`: the same
    /// transport, port and host address (two containers may publish one
    /// port on two addresses).
    fn is(&self, local: SocketAddr, proto: Proto) -> bool {
        self.proto == proto
            && self.host_port == local.port()
            && match self.host_ip {
                Some(ip) => ip.to_canonical() == local.ip().to_canonical(),
                None => local.ip().is_unspecified(),
            }
    }
}

/// One container as the Docker-compatible `GET /containers/json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Listed {
    id: String,
    name: Option<String>,
    image: Option<String>,
    ports: Vec<Published>,
    ips: Vec<IpAddr>,
}

impl Listed {
    fn publishing(&self, local: SocketAddr, proto: Proto) -> Option<&Published> {
        self.ports.iter().find(|p| p.is(local, proto))
    }
}

/// Parses a `/containers/json` reply (Docker's and Podman's compat API).
/// Entries without a runtime-shaped id are dropped: an id goes into
/// request paths later.
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
                    Some(Published {
                        host_ip: p["IP"].as_str().and_then(|ip| ip.parse().ok()),
                        host_port: u16::try_from(p["PublicPort"].as_u64()?).ok()?,
                        container_port: u16::try_from(p["PrivatePort"].as_u64()?).ok()?,
                        proto,
                    })
                })
                .collect();
            let ips = c["NetworkSettings"]["Networks"]
                .as_object()
                .into_iter()
                .flat_map(|nets| nets.values())
                .filter_map(|n| n["IPAddress"].as_str()?.parse().ok())
                .collect();
            Some(Listed {
                id: text(&c["Id"]).filter(|id| is_container_id(id))?,
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

/// The ids and names a `/containers/json` reply lists, as later requests
/// and the output will use them (for the fuzz target).
pub fn listed(body: &[u8]) -> Vec<(String, Option<String>)> {
    parse_listing(body)
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect()
}

/// Why a runtime's API gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no API socket of {0} answers")]
    NoSocket(Runtime),
    #[error("the API did not answer within {:.1}s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the API answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the API's reply is too long (over {0} bytes)")]
    TooLong(usize),
    #[error("the API's reply is not HTTP/1.1 as expected")]
    Malformed(#[source] BodyError),
    #[error("cannot talk to the API")]
    Io(#[source] io::Error),
    #[error("the container's id is not known")]
    NoId,
}

/// The most of an API reply's head read.
const HEAD_LIMIT: usize = 64 * 1024;
/// The most of an API reply's body read.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How long one run may spend, in all, asking runtimes' APIs for names:
/// a daemon that answers slowly, endlessly or never costs at most this,
/// and the answer goes on without names.
const API_BUDGET: Duration = Duration::from_secs(1);

thread_local! {
    /// When this thread's budget runs out; set by its first question. A
    /// command's lookups (`kill` makes several) share it; a long-running
    /// command starts a new round for each reading (`new_round`), and a
    /// worker thread has its own.
    static ROUND_ENDS: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The end of this round's budget, starting it if it has not started.
fn round_deadline() -> Instant {
    ROUND_ENDS.with(|ends| {
        let deadline = ends.get().unwrap_or_else(|| Instant::now() + API_BUDGET);
        ends.set(Some(deadline));
        deadline
    })
}

/// Starts a new round of API questions on this thread, with the whole
/// budget: one per reading of `list --watch`, `top` and `serve metrics`.
pub fn new_round() {
    ROUND_ENDS.with(|ends| ends.set(None));
}

/// A stream whose every read may wait only until `deadline`: the limit is
/// on the whole conversation, not on each read.
struct Bounded {
    stream: LocalStream,
    deadline: Instant,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_timeout(left)?;
        self.stream.read(buf)
    }
}

/// One HTTP/1.1 request over a runtime's Unix socket, finished by
/// `deadline`: (status, body).
fn request(
    socket: &Path,
    method: &str,
    path: &str,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), ApiError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let timed_out = |e: io::Error| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ApiError::Timeout(left),
        _ => ApiError::Io(e),
    };
    if left.is_zero() {
        return Err(ApiError::Timeout(left));
    }
    let mut stream = platform::local_stream(socket, left).map_err(timed_out)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: portctl/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .map_err(timed_out)?;
    read_reply(&mut Bounded { stream, deadline }, BODY_LIMIT).map_err(|e| match e {
        ApiError::Io(e) => timed_out(e),
        other => other,
    })
}

/// Reads one HTTP/1.1 reply from `reader`: the status and at most
/// `body_limit` bytes of body (more is an error, never kept). Interim
/// (1xx) heads are skipped. Pure over `Read`, so it is fuzzed on any
/// bytes cut anywhere (`fuzz/fuzz_targets/runtime_api.rs`).
pub fn read_reply<R: Read>(reader: &mut R, body_limit: usize) -> Result<(u16, Vec<u8>), ApiError> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head = loop {
        match read_response_head(&buffer).map_err(ApiError::Malformed)? {
            Some(head) if (100..200).contains(&head.status) => {
                buffer.drain(..head.len);
                continue;
            }
            Some(head) => break head,
            None if buffer.len() > HEAD_LIMIT => return Err(ApiError::TooLong(HEAD_LIMIT)),
            None => {}
        }
        let n = reader.read(&mut chunk).map_err(ApiError::Io)?;
        if n == 0 {
            return Err(ApiError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let mut decoder = BodyDecoder::new(head.framing().map_err(ApiError::Malformed)?);
    let mut body = Vec::new();
    // Set once the body would pass the limit: nothing more is kept.
    let too_long = std::cell::Cell::new(false);
    let mut keep = |bytes: &[u8]| {
        if too_long.get() || body.len() + bytes.len() > body_limit {
            too_long.set(true);
        } else {
            body.extend_from_slice(bytes);
        }
    };
    decoder
        .feed(&buffer[head.len..], &mut keep)
        .map_err(ApiError::Malformed)?;
    while !decoder.is_done() && !too_long.get() {
        let n = reader.read(&mut chunk).map_err(ApiError::Io)?;
        if n == 0 {
            decoder.finish().map_err(ApiError::Malformed)?;
            break;
        }
        decoder
            .feed(&chunk[..n], &mut keep)
            .map_err(ApiError::Malformed)?;
    }
    if too_long.get() {
        return Err(ApiError::TooLong(body_limit));
    }
    Ok((head.status, body))
}

/// The API sockets of each runtime, where they usually are: `DOCKER_HOST`
/// or the current `docker context` (rootless Docker is one), the system's
/// socket, this user's, and the socket of the user whose runtime process
/// holds the port (`owner`). Only sockets owned by that user (root for
/// the system's runtime) are asked: whoever owns a socket says what its
/// runtime answers, and one user may not name another's containers.
fn api_sockets(runtime: Runtime, owner: Option<u32>) -> Vec<PathBuf> {
    let expected = owner.unwrap_or(0);
    let mut paths = candidate_sockets(runtime, owner);
    paths.retain(|p| platform::path_owner(p) == Some(expected));
    paths
}

fn candidate_sockets(runtime: Runtime, owner: Option<u32>) -> Vec<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let user_runtime_dirs = env("XDG_RUNTIME_DIR").map(PathBuf::from).into_iter().chain(
        owner
            .filter(|&uid| uid != 0)
            .map(|uid| PathBuf::from(format!("/run/user/{uid}"))),
    );
    let mut paths = Vec::new();
    match runtime {
        Runtime::Docker => {
            if let Some(host) = env("DOCKER_HOST") {
                // Another daemon (tcp://, ssh://) is not this machine's.
                paths.extend(host.to_str().and_then(unix_socket));
                return paths;
            }
            paths.extend(docker_context_socket());
            paths.push(PathBuf::from("/var/run/docker.sock"));
            paths.extend(user_runtime_dirs.map(|dir| dir.join("docker.sock")));
        }
        Runtime::Podman => {
            paths.push(PathBuf::from("/run/podman/podman.sock"));
            paths.extend(user_runtime_dirs.map(|dir| dir.join("podman/podman.sock")));
        }
        Runtime::Containerd | Runtime::Kubernetes => {}
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

/// `unix:///run/docker.sock` → `/run/docker.sock`.
fn unix_socket(endpoint: &str) -> Option<PathBuf> {
    endpoint.strip_prefix("unix://").map(PathBuf::from)
}

/// The most of a Docker client file read: they are a few hundred bytes.
const CONFIG_LIMIT: u64 = 1024 * 1024;

/// The socket of the current `docker context` (`DOCKER_CONTEXT`, else
/// `currentContext` in `~/.docker/config.json`), as the docker CLI would
/// pick it; its endpoints are in `contexts/meta/*/meta.json`. Only files
/// of this user's own (or root's) are read, and only regular files, never
/// waiting: a FIFO or another user's HOME (`sudo -E`) cannot stall or
/// steer it.
fn docker_context_socket() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))?;
    let read_json = |path: &Path| -> Option<serde_json::Value> {
        let bytes = platform::read_own_file(path, CONFIG_LIMIT)?;
        serde_json::from_slice(&bytes).ok()
    };
    let name = match std::env::var("DOCKER_CONTEXT") {
        Ok(name) => name,
        Err(_) => read_json(&dir.join("config.json"))?["currentContext"]
            .as_str()?
            .to_string(),
    };
    if name.is_empty() || name == "default" {
        return None;
    }
    std::fs::read_dir(dir.join("contexts/meta"))
        .ok()?
        .take(1000)
        .filter_map(|entry| read_json(&entry.ok()?.path().join("meta.json")))
        .find(|meta| meta["Name"].as_str() == Some(name.as_str()))
        .and_then(|meta| unix_socket(meta["Endpoints"]["docker"]["Host"].as_str()?))
}

/// What runtimes' APIs said during one round, each asked at most once
/// per socket owner, all within the round's budget (`round_deadline`).
#[derive(Debug, Default)]
pub struct Runtimes {
    listings: HashMap<(Runtime, Option<u32>), Listing>,
}

/// One runtime's containers, and the socket that listed them.
#[derive(Debug, Default)]
struct Listing {
    socket: Option<PathBuf>,
    containers: Vec<Listed>,
}

impl Runtimes {
    fn listing(&mut self, runtime: Runtime, owner: Option<u32>) -> &Listing {
        let deadline = round_deadline();
        self.listings.entry((runtime, owner)).or_insert_with(|| {
            api_sockets(runtime, owner)
                .into_iter()
                .take_while(|_| Instant::now() < deadline)
                .find_map(
                    |socket| match request(&socket, "GET", "/containers/json", deadline) {
                        Ok((200, body)) => Some(Listing {
                            containers: parse_listing(&body),
                            socket: Some(socket),
                        }),
                        _ => None,
                    },
                )
                .unwrap_or_default()
        })
    }

    /// The container behind a socket bound to `local` whose owner is a
    /// runtime's own process `runtime` (with its command line and user),
    /// or whose owner runs in the container its cgroup names (`own`,
    /// already vouched for).
    pub fn attribute(
        &mut self,
        runtime: Option<(RuntimeProcess, &[String], Option<u32>)>,
        own: Option<&ContainerId>,
        local: SocketAddr,
        proto: Proto,
    ) -> Option<Container> {
        if let Some((kind, cmdline, owner)) = runtime {
            return self.published(kind, cmdline, owner, local, proto);
        }
        let own = own?;
        // A pod's container may be Docker's too (cri-dockerd), which names
        // it without credentials; containerd's CRI needs a gRPC client and
        // is not asked.
        let asked = match own.runtime {
            Runtime::Docker | Runtime::Kubernetes => Some(Runtime::Docker),
            Runtime::Podman => Some(Runtime::Podman),
            Runtime::Containerd => None,
        };
        let (found, api) = match asked {
            Some(runtime) => {
                let listing = self.listing(runtime, None);
                let found = listing.containers.iter().find(|c| c.id == own.id).cloned();
                let api = found.as_ref().and(listing.socket.clone());
                (found, api)
            }
            None => (None, None),
        };
        let name = found.as_ref().and_then(|c| c.name.clone());
        // The kubelet's name holds the pod's uid: it must be the one the
        // cgroup path gives, or nothing of it is believed.
        let kubelet = name
            .as_deref()
            .filter(|_| own.runtime == Runtime::Kubernetes)
            .and_then(kubelet_name)
            .filter(|k| own.pod_uid.as_deref().is_some_and(|uid| k.same_pod(uid)));
        Some(Container {
            runtime: own.runtime,
            id: Some(own.id.clone()),
            name: kubelet.as_ref().map(|k| k.container.clone()).or(name),
            image: found.and_then(|c| c.image),
            port: Some(local.port()),
            pod_uid: own.pod_uid.clone(),
            pod: kubelet.as_ref().map(|k| k.pod.clone()),
            namespace: kubelet.map(|k| k.namespace),
            api,
        })
    }

    /// The container a runtime's process publishes `local` for.
    fn published(
        &mut self,
        kind: RuntimeProcess,
        cmdline: &[String],
        owner: Option<u32>,
        local: SocketAddr,
        proto: Proto,
    ) -> Option<Container> {
        let describe = |runtime, listing: &Listing, found: Option<&Listed>, port| Container {
            runtime,
            id: found.map(|c| c.id.clone()),
            name: found.and_then(|c| c.name.clone()),
            image: found.and_then(|c| c.image.clone()),
            port,
            pod_uid: None,
            pod: None,
            namespace: None,
            api: found.and(listing.socket.clone()),
        };
        match kind {
            RuntimeProcess::DockerProxy => {
                let target = proxy_target(cmdline)?;
                // The address the proxy names, and this very binding
                // published: a command line alone proves nothing.
                let listing = self.listing(Runtime::Docker, None);
                let found = listing.containers.iter().find(|c| {
                    target.container_ip.is_some_and(|ip| c.ips.contains(&ip))
                        && c.publishing(local, proto).is_some()
                });
                Some(describe(
                    Runtime::Docker,
                    listing,
                    found,
                    target.container_port,
                ))
            }
            RuntimeProcess::Dockerd => {
                let listing = self.listing(Runtime::Docker, None);
                let (c, p) = listing
                    .containers
                    .iter()
                    .find_map(|c| Some((c, c.publishing(local, proto)?)))?;
                Some(describe(
                    Runtime::Docker,
                    listing,
                    Some(c),
                    Some(p.container_port),
                ))
            }
            // A rootless runtime's helper runs as its user, and only that
            // user's own runtime may say what it publishes.
            RuntimeProcess::RootlessPort | RuntimeProcess::Conmon => {
                [Runtime::Podman, Runtime::Docker]
                    .into_iter()
                    .find_map(|runtime| {
                        let listing = self.listing(runtime, owner);
                        let (c, p) = listing
                            .containers
                            .iter()
                            .find_map(|c| Some((c, c.publishing(local, proto)?)))?;
                        Some(describe(runtime, listing, Some(c), Some(p.container_port)))
                    })
            }
            RuntimeProcess::Containerd | RuntimeProcess::Shim => None,
        }
    }
}

/// A pod's container as the kubelet names it in Docker:
/// `k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KubeletName {
    container: String,
    pod: String,
    namespace: String,
    uid: String,
}

impl KubeletName {
    /// Whether the name's pod uid is `uid` (the cgroup's: dashes there
    /// may be underscores, as the systemd driver writes them).
    fn same_pod(&self, uid: &str) -> bool {
        let plain = |u: &str| u.replace('_', "-").to_ascii_lowercase();
        plain(&self.uid) == plain(uid)
    }
}

/// The parts of a kubelet's Docker name; Kubernetes names hold no `_`.
fn kubelet_name(name: &str) -> Option<KubeletName> {
    let parts: Vec<&str> = name.strip_prefix("k8s_")?.split('_').collect();
    match parts.as_slice() {
        [container, pod, namespace, uid, attempt]
            if attempt.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(KubeletName {
                container: container.to_string(),
                pod: pod.to_string(),
                namespace: namespace.to_string(),
                uid: uid.to_string(),
            })
        }
        _ => None,
    }
}

/// Stops a container through its runtime's API (`docker stop`'s
/// request), giving it `grace` to exit before the runtime kills it; the
/// runtime answers once it has stopped. A socket is asked to stop only
/// once it has answered a ping in full within `API_BUDGET`: a daemon that
/// trickles, streams or never answers costs a second, not the stop's
/// whole wait.
pub fn stop(container: &Container, grace: Duration) -> Result<(), ApiError> {
    let id = container
        .id
        .as_deref()
        .filter(|id| is_container_id(id))
        .ok_or(ApiError::NoId)?;
    let seconds = grace.as_secs().max(1);
    let path = format!("/containers/{id}/stop?t={seconds}");
    let mut last = ApiError::NoSocket(container.runtime);
    // The socket that named the container, else the system's.
    let sockets = match &container.api {
        Some(socket) => vec![socket.clone()],
        None => api_sockets(container.runtime, None),
    };
    for socket in sockets {
        match request(&socket, "GET", "/_ping", Instant::now() + API_BUDGET) {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                last = status_error(status, &body);
                continue;
            }
            Err(e) => {
                last = e;
                continue;
            }
        }
        // The answer comes when the container is gone: allow the grace
        // and the runtime's own kill after it.
        let deadline = Instant::now() + Duration::from_secs(seconds + STOP_SLACK_SECONDS);
        match request(&socket, "POST", &path, deadline) {
            Ok((204 | 304, _)) => return Ok(()),
            Ok((status, body)) => last = status_error(status, &body),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn status_error(status: u16, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body);
    let message: String = text.trim().chars().take(200).collect();
    ApiError::Status { status, message }
}

/// How long past its grace a stopped container's runtime may take to
/// answer (its SIGKILL, the container's exit).
const STOP_SLACK_SECONDS: u64 = 5;

/// The command a person would type to stop it. A pod's container is the
/// kubelet's to restart: the pod is what goes.
///
/// Names come from a runtime's API or a cgroup, which a user may have
/// written: each is quoted for the shell unless it is made only of what
/// runtimes allow in names, so a pasted command runs nothing else.
pub fn stop_command(container: &Container) -> String {
    // By name or id; never the runtime's name, which may be a container's.
    let what = container
        .name
        .clone()
        .or_else(|| container.id.as_deref().map(|id| short_id(id).to_string()))
        .map_or_else(|| "CONTAINER".to_string(), |w| operand(&w));
    match container.runtime {
        Runtime::Podman => format!("podman stop {what}"),
        Runtime::Kubernetes => match (&container.pod, &container.namespace) {
            (Some(pod), Some(namespace)) => format!(
                "kubectl delete pod -n {} {}",
                shell_word(namespace),
                operand(pod)
            ),
            _ => "kubectl delete pod POD".into(),
        },
        Runtime::Containerd => format!("ctr task kill {what}"),
        Runtime::Docker => format!("docker stop {what}"),
    }
}

/// `word` as the command's operand: after `--` when it starts like an
/// option, which quoting does not prevent.
fn operand(word: &str) -> String {
    if word.starts_with('-') {
        format!("-- {}", shell_word(word))
    } else {
        shell_word(word)
    }
}

/// `word` as one shell word: as it is when it holds only the characters
/// of Docker's and Kubernetes' names (`[A-Za-z0-9_.-]`, not leading with
/// `-`), else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && !word.starts_with('-')
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
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
    fn runtime_processes_by_name_and_file() {
        for name in [
            "docker-proxy",
            "dockerd",
            "rootlessport",
            "conmon",
            "containerd-shim",
        ] {
            assert!(RuntimeProcess::named(name).is_some(), "{name}");
        }
        assert_eq!(RuntimeProcess::named("nginx"), None);
        assert_eq!(RuntimeProcess::named("docker-proxyy"), None);
        // The program must bear the name: `d` is not `dockerd`.
        assert!(RuntimeProcess::is_file("dockerd", "dockerd"));
        assert!(!RuntimeProcess::is_file("dockerd", "d"));
        assert!(!RuntimeProcess::is_file("d", "dockerd"));
        // The kernel cuts names at 15 bytes.
        assert!(RuntimeProcess::is_file(
            "containerd-shim",
            "containerd-shim-runc-v2"
        ));
        assert!(!RuntimeProcess::is_file(
            "docker-proxy",
            "docker-proxy-evil"
        ));
    }

    #[test]
    fn this_test_is_no_runtime_process() {
        let me = std::process::id();
        assert_eq!(runtime_process(me, "docker-proxy"), None);
    }

    #[test]
    fn listings_from_the_docker_api() {
        let id = "251d2c1ecce4c3eee6073dceb855c71999ffc5a02f6d98e43b5b1fcf584bca01";
        let body = format!(
            r#"[{{"Id":"{id}","Names":["/web1"],"Image":"portctl-busybox:test",
            "Ports":[{{"IP":"127.0.0.1","PrivatePort":8080,"PublicPort":18080,"Type":"tcp"}},{{"PrivatePort":53,"Type":"udp"}}],
            "NetworkSettings":{{"Networks":{{"bridge":{{"IPAddress":"172.17.0.2"}}}}}}}},
            {{"Names":["/no-id"]}}, {{"Id":"../../x","Names":["/bad"]}}, 7]"#
        );
        let listed = parse_listing(body.as_bytes());
        assert_eq!(
            listed.len(),
            1,
            "no id, or an id that is not one, is dropped"
        );
        assert_eq!(listed[0].name.as_deref(), Some("web1"));
        assert_eq!(listed[0].ports.len(), 1);
        assert_eq!(listed[0].ips, ["172.17.0.2".parse::<IpAddr>().unwrap()]);
        let on = |addr: &str| {
            listed[0]
                .publishing(addr.parse().unwrap(), Proto::Tcp)
                .is_some()
        };
        assert!(on("127.0.0.1:18080"));
        assert!(!on("127.0.0.2:18080"), "another address is another binding");
        assert!(!on("0.0.0.0:18080"));
        assert!(listed[0]
            .publishing("127.0.0.1:18080".parse().unwrap(), Proto::Udp)
            .is_none());
        assert!(parse_listing(b"{\"message\":\"nope\"}").is_empty());
        assert!(parse_listing(b"\xff").is_empty());
    }

    #[test]
    fn ids_from_outside_are_cut_on_character_boundaries() {
        assert_eq!(short_id("251d2c1ecce4c3eee6073dceb855c719"), "251d2c1ecce4");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
        assert_eq!(short_id("short"), "short");
        let c = Container {
            runtime: Runtime::Docker,
            id: Some("日本語のコンテナ識別子です".into()),
            name: None,
            image: None,
            port: None,
            pod_uid: None,
            pod: None,
            namespace: None,
            api: None,
        };
        // Thirteen characters, cut after twelve, whatever their bytes.
        assert_eq!(c.label(), "日本語のコンテナ識別子で");
        assert_eq!(stop_command(&c), "docker stop '日本語のコンテナ識別子で'");
        assert!(matches!(
            stop(&c, Duration::from_secs(1)),
            Err(ApiError::NoId)
        ));
    }

    #[test]
    fn kubelet_names_give_the_pod_and_namespace() {
        let k =
            kubelet_name("k8s_web_web-7d4b9c_shop_0b8e6f3c-1b1a-4b0e-9d2a-3f5c1e2d4a6b_0").unwrap();
        assert_eq!(
            (k.container.as_str(), k.pod.as_str(), k.namespace.as_str()),
            ("web", "web-7d4b9c", "shop")
        );
        assert!(k.same_pod("0b8e6f3c_1b1a_4b0e_9d2a_3f5c1e2d4a6b"));
        assert!(!k.same_pod("11111111-1b1a-4b0e-9d2a-3f5c1e2d4a6b"));
        assert_eq!(kubelet_name("web1"), None);
        assert_eq!(kubelet_name("k8s_a_b_c"), None);
        assert_eq!(kubelet_name("k8s_a_b_c_d_x"), None);
    }

    #[test]
    fn stop_commands_name_the_container() {
        let c = Container {
            runtime: Runtime::Docker,
            id: Some("251d2c1ecce4c3eee6073dceb855c719".into()),
            name: None,
            image: None,
            port: Some(80),
            pod_uid: None,
            pod: None,
            namespace: None,
            api: None,
        };
        assert_eq!(stop_command(&c), "docker stop 251d2c1ecce4");
        let named = Container {
            name: Some("web".into()),
            runtime: Runtime::Podman,
            ..c.clone()
        };
        assert_eq!(stop_command(&named), "podman stop web");
        let pod = Container {
            runtime: Runtime::Kubernetes,
            pod: Some("web-7d4b9c".into()),
            namespace: Some("shop".into()),
            ..named.clone()
        };
        assert_eq!(stop_command(&pod), "kubectl delete pod -n shop web-7d4b9c");
        let unnamed = Container {
            pod: None,
            ..pod.clone()
        };
        assert_eq!(stop_command(&unnamed), "kubectl delete pod POD");
        // What the API says is quoted, so pasting it runs nothing else.
        let hostile = Container {
            name: Some("web $(touch x) 'y'".into()),
            runtime: Runtime::Podman,
            ..c.clone()
        };
        assert_eq!(
            stop_command(&hostile),
            r"podman stop 'web $(touch x) '\''y'\'''"
        );
        let dashed = Container {
            name: Some("-rf".into()),
            ..c.clone()
        };
        assert_eq!(stop_command(&dashed), "docker stop -- '-rf'");
        // Neither name nor id: a placeholder, not the runtime's name
        // (a container may well be called `docker`).
        let anonymous = Container {
            name: None,
            id: None,
            ..c.clone()
        };
        assert_eq!(stop_command(&anonymous), "docker stop CONTAINER");
        let pod = Container {
            pod: Some("a;b".into()),
            namespace: Some("`id`".into()),
            ..pod
        };
        assert_eq!(stop_command(&pod), "kubectl delete pod -n '`id`' 'a;b'");
    }

    /// A reader that hands out its bytes a piece at a time.
    struct Pieces(Vec<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.0.first_mut() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    #[test]
    fn replies_are_read_whole_within_their_limits() {
        let reply = |parts: &[&str]| {
            read_reply(
                &mut Pieces(parts.iter().map(|p| p.as_bytes().to_vec()).collect()),
                64,
            )
        };
        let (status, body) = reply(&[
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-",
            "Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
        ])
        .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"[1,2]"[..]));
        let long = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n{}",
            "x".repeat(65)
        );
        assert!(matches!(reply(&[&long]), Err(ApiError::TooLong(64))));
        assert!(matches!(
            reply(&["HTTP/1.1 200 OK\r\n"]),
            Err(ApiError::Io(_))
        ));
        assert!(matches!(
            reply(&["garbage\r\n\r\n"]),
            Err(ApiError::Malformed(_))
        ));
    }
}
