//! The OS-neutral types every platform module implements and the floors
//! above read: the socket table and its owners, how servers bind, one
//! process's facts, the port settings. Plain data; no OS is named here.

use crate::model::{Proto, Socket, TcpState};
use crate::parse::PortRange;
use std::collections::HashSet;
use std::io;
use std::time::SystemTime;

/// Which parts of the table to read. The kernel filters by transport,
/// family and TCP state, so `check` and `list -l` read less.
#[derive(Debug, Clone)]
pub struct TableQuery {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Only these TCP states; `None` is every state.
    pub tcp_states: Option<Vec<TcpState>>,
    /// Also TCP sockets bound to a port without listening (`ss -B`), where
    /// the OS can report them.
    pub bound_inactive: bool,
    /// Each TCP connection's counters too (`Socket::traffic`).
    pub traffic: bool,
}

impl TableQuery {
    pub fn all() -> Self {
        TableQuery {
            tcp: true,
            udp: true,
            ipv4: true,
            ipv6: true,
            tcp_states: None,
            bound_inactive: false,
            traffic: false,
        }
    }

    /// The (transport, is IPv6) tables to read.
    pub fn tables(&self) -> impl Iterator<Item = (Proto, bool)> + '_ {
        [
            (Proto::Tcp, false),
            (Proto::Tcp, true),
            (Proto::Udp, false),
            (Proto::Udp, true),
        ]
        .into_iter()
        .filter(|(proto, ipv6)| {
            let by_proto = match proto {
                Proto::Tcp => self.tcp,
                Proto::Udp => self.udp,
            };
            by_proto && if *ipv6 { self.ipv6 } else { self.ipv4 }
        })
    }

    /// Whether a TCP socket in `state` was asked for.
    pub fn wants_state(&self, state: Option<TcpState>) -> bool {
        match (&self.tcp_states, state) {
            (Some(states), Some(state)) => states.contains(&state),
            _ => true,
        }
    }
}

/// Why a socket's owner may be missing from the table, as the OS has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// Another user's process, which elevated rights (sudo) would name.
    OtherUser,
    /// Outside this PID namespace, or the kernel's own: with every
    /// privilege nothing more can be seen.
    Beyond,
    /// Another user's process, hidden because portctl runs as root
    /// without the capabilities that read other processes' descriptors
    /// (a container started with `--cap-drop=ALL`).
    #[allow(dead_code)] // only Linux tells capabilities apart
    NoCapabilities {
        /// CAP_SYS_PTRACE is missing (reading another's links).
        ptrace: bool,
        /// CAP_DAC_READ_SEARCH (and CAP_DAC_OVERRIDE) are missing
        /// (listing another's descriptors).
        dac: bool,
    },
    /// The OS reports the socket with no process at all (Windows' PID 0).
    #[allow(dead_code)] // only some OS doors report it
    NoProcess,
}

/// Why the table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Neither the primary source nor the fallback answered for one
    /// table; each is named as its OS door calls it.
    #[error("cannot read the {table} socket table: {primary_source}: {primary}; {fallback_source}: {fallback}")]
    Unreadable {
        table: String,
        primary_source: &'static str,
        primary: io::Error,
        fallback_source: &'static str,
        fallback: io::Error,
    },
    /// The one source there is failed.
    #[error("cannot read the socket table")]
    Os(#[source] io::Error),
    /// This OS has no socket table portctl can read.
    #[error("reading the socket table is not supported on this operating system")]
    Unsupported,
}

/// The sockets read.
#[derive(Debug, Default)]
pub struct Table {
    pub sockets: Vec<Socket>,
}

/// Which processes hold which sockets: two parallel columns sorted by
/// (inode, pid), 12 bytes a pair, looked up by binary search.
#[derive(Debug, Default)]
pub struct Owners {
    inodes: Vec<u64>,
    pids: Vec<u32>,
    /// Some processes could not be inspected (no privileges): a socket
    /// without owner may belong to one of them.
    pub hidden: bool,
}

impl Owners {
    pub fn from_pairs(mut pairs: Vec<(u64, u32)>, hidden: bool) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        let (inodes, pids) = pairs.into_iter().unzip();
        Owners {
            inodes,
            pids,
            hidden,
        }
    }

    /// The (inode, pid) pairs, to add to.
    pub fn into_pairs(self) -> Vec<(u64, u32)> {
        self.inodes.into_iter().zip(self.pids).collect()
    }

    /// Every PID holding any of `sockets`, sorted, each once.
    pub fn pids_of<'a>(&self, sockets: impl IntoIterator<Item = &'a Socket>) -> Vec<u32> {
        let mut pids: Vec<u32> = sockets
            .into_iter()
            .flat_map(|s| self.of(s).iter().copied())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The PIDs holding `socket`, lowest first; empty when unknown.
    pub fn of(&self, socket: &Socket) -> &[u32] {
        let start = self.inodes.partition_point(|&i| i < socket.inode);
        let end = start + self.inodes[start..].partition_point(|&i| i == socket.inode);
        &self.pids[start..end]
    }
}

/// How thoroughly to look for owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every owner of every socket (list, kill).
    Every,
    /// One owner per socket is enough (naming a port's holder).
    FirstOwner,
}

/// The owners a platform is asked to find.
#[derive(Debug)]
pub struct OwnerQuery {
    /// Only these socket inodes; `None` is every socket.
    pub inodes: Option<HashSet<u64>>,
    pub scope: Scope,
}

/// How servers bind on this OS, which decides what a bind probe can
/// trust and what "access denied" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerBind {
    /// SO_REUSEADDR for TCP (Unix): a conflict is "address in use", access
    /// denied is a system port, TIME_WAIT keeps no such server out.
    ReuseAddr,
    /// SO_EXCLUSIVEADDRUSE (Windows): a conflict may come back as access
    /// denied, and a specific address may bind beside a wildcard holder of
    /// the same user, so the socket table has a say too.
    Exclusive,
}

/// What the OS says about one process.
#[derive(Debug, Clone, Default)]
pub struct ProcFacts {
    pub ppid: Option<u32>,
    pub cmdline: Vec<String>,
    pub started: Option<SystemTime>,
    /// The OS's exact token of the start (clock ticks since boot on
    /// Linux): with the PID, it names one process (`process_start`).
    pub start: Option<u64>,
}

/// What became of a signal meant for one process (`send_signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The process is gone, or its PID now names another process: nothing
    /// was sent.
    Gone,
}

/// One TCP state change as the kernel recorded it (`trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpChange {
    /// When it happened, on the wall clock.
    pub time: SystemTime,
    /// The process (thread group) and thread in whose context the change
    /// ran: the caller of `connect` or `close`; noise for a change the
    /// network made (an accepted handshake, in softirq).
    pub pid: u32,
    pub tid: u32,
    /// The socket's address in the kernel: the same for every change of
    /// one socket while it lives.
    pub socket: u64,
    /// `None` for a state portctl has no name for.
    pub old: Option<TcpState>,
    pub new: Option<TcpState>,
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

/// What the kernel's record carries besides the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelRecord {
    Change(TcpChange),
    /// A process took this name (exec, or its main thread renamed).
    Named {
        pid: u32,
        name: String,
    },
    /// A process ended.
    Exited {
        pid: u32,
    },
    /// A process that was running when the record began.
    Running {
        pid: u32,
        name: String,
        uid: Option<u32>,
    },
    /// A process began, a copy of `parent` (its name and user).
    Forked {
        pid: u32,
        parent: u32,
    },
    /// Records the kernel dropped: a ring was full.
    Lost(u64),
}

/// Why the kernel's record of TCP changes cannot be read here.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("reading the kernel's record of TCP changes needs root, or CAP_PERFMON and read access to tracefs")]
    NotPermitted,
    #[error("the kernel's tracing file system is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")]
    NoTracefs,
    #[error("this kernel has no sock:inet_sock_set_state tracepoint (Linux 4.16 and later do)")]
    NoTracepoint,
    #[error("the tracepoint's format is not one portctl reads: {0}")]
    Format(String),
    #[error("following TCP changes as the kernel records them is not supported on this operating system")]
    #[allow(dead_code)] // made by the OS doors that have no such record
    Unsupported,
    #[error("cannot open the kernel's record of TCP changes")]
    Io(#[source] io::Error),
}

/// A job-control signal top cares about (`JobSignals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSignal {
    /// SIGTSTP: the terminal (or `kill -TSTP`) asks the job to stop.
    Stop,
    /// SIGCONT: the job goes on (`fg`, `bg`, `kill -CONT`).
    Continue,
}

/// The program a process runs, as far as its ownership tells whether an
/// unprivileged user could have put it there (`executable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    pub path: std::path::PathBuf,
    /// The file and every directory above it are owned by root and
    /// writable by nobody else: no unprivileged user could have placed
    /// or changed it.
    pub root_owned: bool,
}

/// The first descriptor handed over (sd_listen_fds' SD_LISTEN_FDS_START).
pub const FIRST_FD: i32 = 3;

/// The machine's port settings that decide whether a server may bind a
/// port nobody holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSettings {
    /// `net.ipv4.ip_unprivileged_port_start`: ports below need privilege.
    pub unprivileged_start: Option<u16>,
    /// `net.ipv4.ip_local_port_range`: where outgoing connections take
    /// their local ports.
    pub ephemeral: Option<PortRange>,
    /// `net.ipv4.ip_local_reserved_ports`: never handed out automatically.
    pub reserved: Vec<PortRange>,
    /// Whether this process may bind below the unprivileged start
    /// (CAP_NET_BIND_SERVICE), where known.
    pub may_bind_privileged: Option<bool>,
}

impl PortSettings {
    pub fn parse(
        unprivileged_start: Option<&str>,
        ephemeral: Option<&str>,
        reserved: Option<&str>,
        may_bind_privileged: Option<bool>,
    ) -> Self {
        PortSettings {
            unprivileged_start: unprivileged_start.and_then(|t| t.trim().parse().ok()),
            ephemeral: ephemeral.and_then(|t| {
                let mut ports = t.split_whitespace().map(|p| p.parse::<u16>());
                match (ports.next(), ports.next()) {
                    (Some(Ok(low)), Some(Ok(high))) if low <= high => Some(PortRange { low, high }),
                    _ => None,
                }
            }),
            reserved: reserved.map(parse_port_list).unwrap_or_default(),
            may_bind_privileged,
        }
    }

    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved.iter().any(|r| r.contains(port))
    }

    /// Whether binding `port` needs a privilege this process lacks.
    pub fn needs_privilege(&self, port: u16) -> bool {
        port != 0
            && self.unprivileged_start.is_some_and(|start| port < start)
            && self.may_bind_privileged == Some(false)
    }
}

/// `8080,9000-9010` (the format of `ip_local_reserved_ports`); bad items
/// are skipped.
fn parse_port_list(text: &str) -> Vec<PortRange> {
    text.trim()
        .split(',')
        .filter_map(|item| crate::parse::parse_range(item.trim()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_texts() {
        let s = PortSettings::parse(
            Some("1024\n"),
            Some("32768\t60999\n"),
            Some("8080,9000-9010\n"),
            Some(false),
        );
        assert_eq!(s.unprivileged_start, Some(1024));
        assert_eq!(
            s.ephemeral,
            Some(PortRange {
                low: 32768,
                high: 60999
            })
        );
        assert!(s.is_reserved(8080) && s.is_reserved(9005) && !s.is_reserved(9011));
        assert!(s.needs_privilege(80) && !s.needs_privilege(1024));
        let empty = PortSettings::parse(Some(""), Some("x"), Some("\n"), None);
        assert_eq!(empty, PortSettings::default());
        assert!(!empty.needs_privilege(80));
    }
}
