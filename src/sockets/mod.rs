//! The live socket table and the processes that own its sockets.
//!
//! One door for every OS: `read_table` and `find_owners` have the same
//! signature in each platform module, chosen in the `cfg` block below.
//! Linux is the fully tested platform; macOS and Windows use netstat2.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(any(target_os = "macos", target_os = "windows"))]
mod netstat2;
#[cfg(any(target_os = "macos", target_os = "windows"))]
use self::netstat2 as platform;

use crate::exit::{Error, Result};
use crate::model::{Proto, Socket, TcpState};
#[cfg(not(target_os = "linux"))]
use std::collections::HashMap;
use std::collections::HashSet;

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
}

impl TableQuery {
    pub fn all() -> Self {
        TableQuery {
            tcp: true,
            udp: true,
            ipv4: true,
            ipv6: true,
            tcp_states: None,
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
}

/// The sockets read, and any owners the platform learnt with them.
#[derive(Debug, Default)]
pub struct Table {
    pub sockets: Vec<Socket>,
    /// Owners reported together with the table by netstat2, keyed by the
    /// synthetic inode it gave each socket; Linux scans `/proc` instead.
    #[cfg(not(target_os = "linux"))]
    known: HashMap<u64, Vec<u32>>,
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
    platform::read_table(query).map_err(Error::failure)
}

/// Reads the table and the owners of all its sockets, concurrently where
/// the platform allows.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners)> {
    platform::read_table_with_owners(query).map_err(Error::failure)
}

/// How thoroughly to look for owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every owner of every socket (list, kill).
    Every,
    /// One owner per socket is enough (naming a port's holder).
    FirstOwner,
}

/// Finds the owners of `sockets` (those with an inode; TIME_WAIT and
/// request sockets have none).
pub fn find_owners<'a>(
    table: &Table,
    sockets: impl IntoIterator<Item = &'a Socket>,
    scope: Scope,
) -> Owners {
    let inodes: HashSet<u64> = sockets
        .into_iter()
        .map(|s| s.inode)
        .filter(|&inode| inode != 0)
        .collect();
    platform::find_owners(table, &inodes, scope)
}
