//! Linux: the table from netlink sock_diag (or `/proc/net` where sock_diag
//! is missing), owners from `/proc/PID/fd`.

mod netlink;
mod procfd;
mod procnet;

use super::{Owners, Scope, Table, TableQuery};
use crate::model::{Proto, Socket};
use std::collections::HashSet;
use std::io;

pub fn read_table(query: &TableQuery) -> Result<Table, String> {
    let mut sockets = Vec::new();
    for (proto, ipv6) in query.tables() {
        let states = match (proto, &query.tcp_states) {
            (Proto::Tcp, Some(states)) => states.iter().fold(0, |m, s| m | netlink::state_bits(*s)),
            _ => netlink::ALL_STATES,
        };
        let before = sockets.len();
        if let Err(netlink_error) = netlink::dump(ipv6, proto, states, &mut sockets) {
            sockets.truncate(before);
            read_procnet(proto, ipv6, &mut sockets).map_err(|proc_error| {
                format!(
                    "cannot read the {} socket table: netlink sock_diag: {netlink_error}; /proc/net: {proc_error}",
                    name(proto, ipv6)
                )
            })?;
            if let (Proto::Tcp, Some(wanted)) = (proto, &query.tcp_states) {
                let mut at = before;
                sockets.retain(|s| {
                    at += 1;
                    at <= before || s.state.is_some_and(|st| wanted.contains(&st))
                });
            }
        }
    }
    Ok(Table { sockets })
}

fn name(proto: Proto, ipv6: bool) -> String {
    format!("{proto}{}", if ipv6 { "6" } else { "" })
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

pub fn find_owners(_table: &Table, inodes: &HashSet<u64>, scope: Scope) -> Owners {
    let scan = procfd::scan(Some(inodes), scope);
    Owners::from_pairs(scan.owners, scan.unreadable)
}

/// The table and the owner of every socket, read at once: collecting every
/// socket's owner needs no inodes from the table, so the `/proc` scan runs
/// beside the netlink dump instead of after it.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners), String> {
    std::thread::scope(|s| {
        let scan = s.spawn(|| procfd::scan(None, Scope::Every));
        let table = read_table(query);
        let scan = scan.join().unwrap_or_else(|_| procfd::FdScan {
            unreadable: true,
            ..Default::default()
        });
        Ok((table?, Owners::from_pairs(scan.owners, scan.unreadable)))
    })
}
