//! Linux: the table from netlink sock_diag (or `/proc/net` where sock_diag
//! is missing), owners from `/proc/PID/fd`, and the Unix calls.

mod netlink;
// tokio's scheduler calls `pow`: defined here so that libm.so is never
// loaded (glibc only; musl has it inside).
#[cfg(target_env = "gnu")]
mod nolibm;
mod proc;
mod procfd;
mod procnet;
mod trace;

pub use super::unix::{
    current_uid, exec_with_sockets, family_unsupported, holder_note, is_system_process,
    local_stream, parent_pid, path_owner, prepare_server, privileged_ports, process_user,
    raise_fd_limit, read_own_file, send_signal, server_bind, signal_name, state_name, stdout_width,
    stop_self, system_processes, unseen_owner, user_name, JobSignals, LocalStream, Shutdown,
    HANDS_OVER_SOCKETS,
};
pub use proc::{
    cgroup_owned_by_root, executable, missing_capabilities, port_settings, process_cgroup,
    process_cmdline, process_facts, process_names, process_start, process_uid,
};
pub use trace::{tcp_changes, TcpChanges};

use crate::model::{Proto, Socket};
use crate::platform::{OwnerQuery, Owners, ReadError, Scope, Table, TableQuery};
use std::collections::HashSet;
use std::io;

pub fn read_table(query: &TableQuery) -> Result<Table, ReadError> {
    let mut sockets = Vec::new();
    for (proto, ipv6) in query.tables() {
        let mut states = match (proto, &query.tcp_states) {
            (Proto::Tcp, Some(states)) => states.iter().fold(0, |m, s| m | netlink::state_bits(*s)),
            _ => netlink::ALL_STATES,
        };
        if proto == Proto::Tcp && query.bound_inactive {
            states |= netlink::BOUND_INACTIVE;
        }
        let before = sockets.len();
        if let Err(primary) = netlink::dump(ipv6, proto, states, query.traffic, &mut sockets) {
            sockets.truncate(before);
            read_procnet(proto, ipv6, &mut sockets).map_err(|fallback| ReadError::Unreadable {
                table: name(proto, ipv6),
                primary_source: "netlink sock_diag",
                primary,
                fallback_source: "/proc/net",
                fallback,
            })?;
            let mut at = before;
            sockets.retain(|s| {
                at += 1;
                at <= before || query.wants_state(s.state)
            });
        }
    }
    Ok(Table { sockets })
}

fn name(proto: Proto, ipv6: bool) -> String {
    format!("{proto}{}", if ipv6 { "6" } else { "" })
}

/// The TCP listeners of every other network namespace a process here
/// lives in (containers', `unshare -n`'s), from `/proc/PID/net/tcp*` of
/// one process in each: the kernel's record of state changes names no
/// namespace, so an accept at an address is only known to be a listener's
/// here when no other namespace listens there too. At most `NETNS_MAX`
/// namespaces, and `NETNS_BYTES` of each table.
pub fn listeners_elsewhere() -> Vec<Socket> {
    use std::io::Read;
    const NETNS_MAX: usize = 1024;
    const NETNS_BYTES: u64 = 4 << 20;
    let Ok(here) = std::fs::read_link("/proc/self/ns/net") else {
        return Vec::new();
    };
    let mut seen = HashSet::from([here]);
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        if seen.len() > NETNS_MAX {
            break;
        }
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Another user's process without privileges: not readable, passed.
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if !seen.insert(ns) {
            continue;
        }
        for file in ["tcp", "tcp6"] {
            let mut text = String::new();
            let read = std::fs::File::open(format!("/proc/{pid}/net/{file}"))
                .and_then(|f| f.take(NETNS_BYTES).read_to_string(&mut text));
            if read.is_ok() {
                found.extend(
                    procnet::parse(&text, Proto::Tcp)
                        .into_iter()
                        .filter(|s| s.state == Some(crate::model::TcpState::Listen)),
                );
            }
        }
    }
    found
}

/// `/proc/net/tcp` and friends. A missing IPv6 file means IPv6 is off on
/// this machine: an empty table, not an error.
fn read_procnet(proto: Proto, ipv6: bool, out: &mut Vec<Socket>) -> io::Result<()> {
    let path = format!("/proc/net/{}", name(proto, ipv6));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            out.extend(procnet::parse(&text, proto));
            Ok(())
        }
        Err(e) if ipv6 && e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn find_owners(query: &OwnerQuery) -> Owners {
    let mut scan = procfd::scan(query.inodes.as_ref(), query.scope);
    if let Some(wanted) = &query.inodes {
        let found: HashSet<u64> = scan.owners.iter().map(|(inode, _)| *inode).collect();
        let missing: HashSet<u64> = wanted.difference(&found).copied().collect();
        scan.owners.extend(procfd::scan_threads(&missing));
    }
    Owners::from_pairs(scan.owners, scan.unreadable)
}

/// The table and the owner of every socket, read at once: collecting every
/// socket's owner needs no inodes from the table, so the `/proc` scan runs
/// beside the netlink dump instead of after it.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners), ReadError> {
    std::thread::scope(|s| {
        let scan = s.spawn(|| procfd::scan(None, Scope::Every));
        let table = read_table(query);
        let scan = scan.join().unwrap_or_else(|_| procfd::FdScan {
            unreadable: true,
            ..Default::default()
        });
        let table = table?;
        let unreadable = scan.unreadable;
        let owners = Owners::from_pairs(scan.owners, unreadable);
        let missing: HashSet<u64> = table
            .sockets
            .iter()
            .filter(|s| s.inode != 0 && owners.of(s).is_empty())
            .map(|s| s.inode)
            .collect();
        if missing.is_empty() {
            return Ok((table, owners));
        }
        let mut pairs = owners.into_pairs();
        pairs.extend(procfd::scan_threads(&missing));
        Ok((table, Owners::from_pairs(pairs, unreadable)))
    })
}

/// Whether an IPv6 socket bound without `IPV6_V6ONLY` takes IPv4 too: the
/// `net.ipv6.bindv6only` sysctl, 0 (dual-stack) unless changed.
pub fn ipv6_only_by_default() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "1")
}
