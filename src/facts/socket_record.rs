//! A socket as every command reports it: the JSON names of a socket live
//! here, and `Snapshot` turns a table and its owners into these records.

use crate::facts::cgroup::{self, ContainerId};
use crate::facts::containers::{self, Container, RuntimeProcess, Runtimes};
use crate::facts::process::Users;
use crate::facts::registry;
use crate::model::{Family, Proto, Socket, TcpState, Traffic};
use crate::platform::{self, Owners};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One socket with its owner, as `list --json` prints it (and `check`'s
/// holders, and `who`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketRecord {
    pub proto: Proto,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// `null` for UDP.
    pub state: Option<TcpState>,
    /// `null` where the owner cannot be seen.
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub user: Option<String>,
    pub inode: u64,
    /// The registered service of the socket's server-side port.
    pub service: Option<String>,
    /// Every process sharing the socket, when more than one does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// The systemd unit or scope the owner runs in.
    pub unit: Option<String>,
    /// The container behind the socket: the owner's own, or the one a
    /// runtime's proxy forwards the port to.
    pub container: Option<Container>,
    /// The owner is a container runtime's own process (a proxy or daemon
    /// publishing a container's port), checked, not guessed from its
    /// name (`containers::runtime_process`). Known where units and
    /// containers are looked up.
    #[serde(skip)]
    pub runtime: Option<RuntimeProcess>,
    /// A TCP connection's counters, where the table was read with them
    /// (none for UDP, listeners and TIME_WAIT).
    #[serde(skip)]
    pub traffic: Option<Traffic>,
    /// `list --info`: the counters as JSON fields, `null` where there are
    /// none; absent unless asked for.
    #[serde(flatten)]
    pub info: Option<InfoFields>,
}

/// `bytes_sent`, `bytes_received`, `rtt_ms`, `retransmits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InfoFields {
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    #[serde(rename = "rtt_ms", serialize_with = "milliseconds")]
    pub rtt: Option<Duration>,
    pub retransmits: Option<u32>,
}

impl InfoFields {
    fn of(traffic: Option<Traffic>) -> InfoFields {
        InfoFields {
            bytes_sent: traffic.map(|t| t.bytes_sent),
            bytes_received: traffic.map(|t| t.bytes_received),
            rtt: traffic.map(|t| t.rtt),
            retransmits: traffic.map(|t| t.retransmits),
        }
    }
}

fn milliseconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

impl SocketRecord {
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.local_addr, self.local_port)
    }

    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.remote_addr, self.remote_port)
    }

    /// Whether its owner is a container runtime's own process.
    pub fn held_by_runtime(&self) -> bool {
        self.runtime.is_some()
    }

    /// TCP LISTEN, or UDP with no peer: a server, not a client.
    pub fn is_listening(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == Some(TcpState::Listen),
            Proto::Udp => self.remote_port == 0,
        }
    }
}

/// Everything known about the sockets of one scan.
pub struct Snapshot {
    pub sockets: Vec<Socket>,
    pub owners: Owners,
    pub names: HashMap<u32, String>,
}

impl Snapshot {
    /// Every socket as a record, with units and containers looked up
    /// afresh, in a round of runtime questions of its own: one reading of
    /// `top`, one scrape.
    pub fn records_afresh(&self) -> Vec<SocketRecord> {
        containers::new_round();
        let mut lookups = Lookups::new(true);
        self.sockets
            .iter()
            .map(|s| self.record(s, &mut lookups))
            .collect()
    }

    pub fn record(&self, socket: &Socket, lookups: &mut Lookups) -> SocketRecord {
        let pids = self.owners.of(socket);
        let pid = pids.first().copied();
        let process = pid.and_then(|p| self.names.get(&p).cloned());
        // TIME_WAIT and request sockets report uid 0 but belong to no one.
        // A table without uids (Windows) names its owner's user instead.
        let user = match socket.uid {
            Some(uid) => (socket.inode != 0).then(|| lookups.users.name(uid).to_string()),
            None => pid.and_then(|p| lookups.users.of_process(p).map(str::to_string)),
        };
        let (unit, container, runtime) = match (pid, &process) {
            (Some(pid), Some(name)) if lookups.attribute => {
                lookups.attribution(pid, name, socket.local, socket.proto)
            }
            _ => (None, None, None),
        };
        SocketRecord {
            proto: socket.proto,
            family: socket.family(),
            local_addr: socket.local.ip(),
            local_port: socket.local.port(),
            remote_addr: socket.remote.ip(),
            remote_port: socket.remote.port(),
            state: socket.state,
            pid,
            process,
            user,
            inode: socket.inode,
            service: service_of(socket).map(str::to_string),
            pids: if pids.len() > 1 {
                pids.to_vec()
            } else {
                Vec::new()
            },
            unit,
            container,
            runtime,
            traffic: socket.traffic.filter(|_| !socket.is_listening()),
            info: lookups
                .info
                .then(|| InfoFields::of(socket.traffic.filter(|_| !socket.is_listening()))),
        }
    }

    /// Sockets that have an inode but no visible owner.
    pub fn unowned(&self) -> usize {
        self.sockets
            .iter()
            .filter(|s| s.inode != 0 && self.owners.of(s).is_empty())
            .count()
    }
}

/// What one run learns once and reuses while turning sockets into
/// records: user names, and each owner's unit and container (its cgroup
/// read once per PID; a runtime's API asked only when one of its
/// processes is among the owners, once per run).
#[derive(Debug, Default)]
pub struct Lookups {
    pub users: Users,
    /// Whether to find units and containers at all.
    pub attribute: bool,
    /// Whether records carry `list --info`'s fields.
    pub info: bool,
    places: HashMap<u32, Place>,
    runtimes: Runtimes,
    /// The owners' names at the last `keep_only`.
    seen: HashMap<u32, String>,
}

/// Where one owning process runs, read once per PID.
#[derive(Debug, Default)]
struct Place {
    unit: Option<String>,
    /// The container its cgroup names, where no unprivileged user could
    /// have made that cgroup.
    container: Option<ContainerId>,
    /// A runtime's own process: which, its command line (for the proxy's
    /// target) and the user it runs as (for a rootless runtime's socket).
    runtime: Option<(RuntimeProcess, Vec<String>, Option<u32>)>,
}

impl Place {
    fn of(pid: u32, process: &str) -> Place {
        let placement = cgroup::parse(&platform::process_cgroup(pid).unwrap_or_default());
        let container = placement
            .container
            .filter(|claim| {
                platform::cgroup_owned_by_root(&claim.hierarchy, &claim.path) == Some(true)
            })
            .map(|claim| claim.container);
        // A runtime's own process never runs inside one of its
        // containers (conmon's scope names the container it watches): a
        // container's program called `docker-proxy` is the container's.
        let runtime = containers::runtime_process(pid, process)
            .filter(|kind| container.is_none() || *kind == RuntimeProcess::Conmon)
            .map(|kind| {
                (
                    kind,
                    platform::process_cmdline(pid).unwrap_or_default(),
                    platform::process_uid(pid),
                )
            });
        Place {
            unit: placement.unit,
            container,
            runtime,
        }
    }
}

impl Lookups {
    /// With units and containers when `attribute`.
    pub fn new(attribute: bool) -> Self {
        Lookups {
            attribute,
            ..Default::default()
        }
    }

    /// Forgets what was learned of processes that own nothing in this
    /// scan, or own it under another name than in the last: kept across
    /// the scans of `list --watch`, a PID that comes back may be another
    /// process.
    pub fn keep_only(&mut self, snapshot: &Snapshot) {
        let same: HashSet<u32> = snapshot
            .names
            .iter()
            .filter(|(pid, name)| self.seen.get(pid) == Some(name))
            .map(|(pid, _)| *pid)
            .collect();
        self.places.retain(|pid, _| same.contains(pid));
        self.users.keep_only(|pid| same.contains(&pid));
        self.seen = snapshot.names.clone();
        // Containers come and go between scans, and a runtime's API that
        // stalled once may answer now: asked again, with a new budget.
        self.runtimes = Runtimes::default();
        containers::new_round();
    }

    fn attribution(
        &mut self,
        pid: u32,
        process: &str,
        local: SocketAddr,
        proto: Proto,
    ) -> (Option<String>, Option<Container>, Option<RuntimeProcess>) {
        let place = self
            .places
            .entry(pid)
            .or_insert_with(|| Place::of(pid, process));
        if place.container.is_none() && place.runtime.is_none() {
            return (place.unit.clone(), None, None);
        }
        let runtime = place
            .runtime
            .as_ref()
            .map(|(kind, cmdline, uid)| (*kind, cmdline.as_slice(), *uid));
        let container = self
            .runtimes
            .attribute(runtime, place.container.as_ref(), local, proto);
        (
            place.unit.clone(),
            container,
            runtime.map(|(kind, ..)| kind),
        )
    }
}

/// The service a socket serves or talks to: the local port for a
/// listener, otherwise the lower registered port of the two ends.
fn service_of(socket: &Socket) -> Option<&'static str> {
    let transport = socket.proto.into();
    if socket.is_listening() {
        return registry::service_name(socket.local.port(), transport);
    }
    let (a, b) = (socket.local.port(), socket.remote.port());
    let (low, high) = (a.min(b), a.max(b));
    registry::service_name(low, transport).or_else(|| registry::service_name(high, transport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_forgets_the_places_of_processes_gone_from_a_scan() {
        let mut lookups = Lookups::new(true);
        let scan = |names: &[(u32, &str)]| Snapshot {
            sockets: Vec::new(),
            owners: Owners::default(),
            names: names.iter().map(|&(p, n)| (p, n.to_string())).collect(),
        };
        lookups.keep_only(&scan(&[(10, "sshd"), (20, "nginx"), (30, "redis")]));
        for pid in [10, 20, 30] {
            lookups.places.insert(pid, Place::default());
        }
        // 10 is gone; 30 came back as another program.
        lookups.keep_only(&scan(&[(20, "nginx"), (30, "python3")]));
        assert_eq!(lookups.places.keys().collect::<Vec<_>>(), [&20]);
    }

    #[test]
    fn services_come_from_the_server_side_port() {
        let socket = |local: &str, remote: &str, state| Socket {
            proto: Proto::Tcp,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            inode: 1,
            uid: None,
            v6only: None,
            time_wait_left: None,
            traffic: None,
        };
        let listener = socket("0.0.0.0:22", "0.0.0.0:0", Some(TcpState::Listen));
        assert_eq!(service_of(&listener), Some("ssh"));
        let client = socket(
            "10.0.0.1:51234",
            "10.0.0.2:443",
            Some(TcpState::Established),
        );
        assert_eq!(service_of(&client), Some("https"));
    }
}
