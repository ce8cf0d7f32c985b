//! The live socket table and the processes that own its sockets, in the
//! terms every OS shares. How each OS reads them lives in `platform`.

use crate::exit::{Error, Result};
use crate::model::{Proto, Socket, TcpState};
use crate::platform;
use std::collections::HashSet;
use std::fmt;
use std::io;

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
    /// Outside this PID namespace, or the kernel's own: as root nothing
    /// more can be seen.
    Beyond,
    /// The OS reports the socket with no process at all (Windows' PID 0).
    NoProcess,
}

/// Why the table could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Neither the primary source nor the fallback answered for one table.
    Unreadable {
        table: String,
        primary: io::Error,
        fallback: io::Error,
    },
    /// The one source there is failed.
    Os(io::Error),
    /// This OS has no socket table portctl can read.
    Unsupported,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Unreadable {
                table,
                primary,
                fallback,
            } => write!(
                f,
                "cannot read the {table} socket table: netlink sock_diag: {primary}; /proc/net: {fallback}"
            ),
            ReadError::Os(e) => write!(f, "cannot read the socket table: {e}"),
            ReadError::Unsupported => f.write_str(
                "reading the socket table is not supported on this operating system",
            ),
        }
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::failure(e.to_string())
    }
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

/// Reads the socket table. Never comes back silently empty: if neither the
/// primary source nor the fallback can be read, it is an exit-3 failure.
pub fn read_table(query: &TableQuery) -> Result<Table> {
    Ok(platform::read_table(query)?)
}

/// Reads the table and the owners of all its sockets, concurrently where
/// the platform allows.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners)> {
    Ok(platform::read_table_with_owners(query)?)
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

/// Finds the owners of `sockets` (those with an inode; TIME_WAIT and
/// request sockets have none).
pub fn find_owners<'a>(sockets: impl IntoIterator<Item = &'a Socket>, scope: Scope) -> Owners {
    let inodes: HashSet<u64> = sockets
        .into_iter()
        .map(|s| s.inode)
        .filter(|&inode| inode != 0)
        .collect();
    if inodes.is_empty() {
        return Owners::default();
    }
    platform::find_owners(&OwnerQuery {
        inodes: Some(inodes),
        scope,
    })
}
