//! macOS and Windows: the table and its owners from netstat2, which asks
//! each OS in its own way (sysctl/proc_pidinfo, GetExtendedTcpTable). The
//! OS reports owners with each socket, so they are kept with the table.

use super::{Owners, Scope, Table, TableQuery};
use crate::model::{Proto, Socket, TcpState};
use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub fn read_table(query: &TableQuery) -> Result<Table, String> {
    let mut families = AddressFamilyFlags::empty();
    if query.ipv4 {
        families |= AddressFamilyFlags::IPV4;
    }
    if query.ipv6 {
        families |= AddressFamilyFlags::IPV6;
    }
    let mut protocols = ProtocolFlags::empty();
    if query.tcp {
        protocols |= ProtocolFlags::TCP;
    }
    if query.udp {
        protocols |= ProtocolFlags::UDP;
    }
    let infos = netstat2::get_sockets_info(families, protocols)
        .map_err(|e| format!("cannot read the socket table: {e}"))?;
    let mut table = Table::default();
    for (i, info) in infos.into_iter().enumerate() {
        // No inode on these systems: number the sockets so owners can be
        // found again by key.
        let key = i as u64 + 1;
        let socket = match info.protocol_socket_info {
            ProtocolSocketInfo::Tcp(t) => Socket {
                proto: Proto::Tcp,
                local: SocketAddr::new(t.local_addr, t.local_port),
                remote: SocketAddr::new(t.remote_addr, t.remote_port),
                state: tcp_state(t.state),
                inode: key,
                uid: None,
            },
            ProtocolSocketInfo::Udp(u) => Socket {
                proto: Proto::Udp,
                local: SocketAddr::new(u.local_addr, u.local_port),
                remote: SocketAddr::new(unspecified_like(u.local_addr), 0),
                state: None,
                inode: key,
                uid: None,
            },
        };
        if let (Some(states), Some(state)) = (&query.tcp_states, socket.state) {
            if !states.contains(&state) {
                continue;
            }
        }
        table.known.insert(key, info.associated_pids);
        table.sockets.push(socket);
    }
    Ok(table)
}

pub fn find_owners(table: &Table, inodes: &HashSet<u64>, _scope: Scope) -> Owners {
    let pairs: Vec<(u64, u32)> = inodes
        .iter()
        .filter_map(|k| table.known.get(k).map(|pids| (k, pids)))
        .flat_map(|(k, pids)| pids.iter().map(move |p| (*k, *p)))
        .collect();
    let hidden = inodes
        .iter()
        .any(|k| table.known.get(k).is_none_or(Vec::is_empty));
    Owners::from_pairs(pairs, hidden)
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

fn tcp_state(state: netstat2::TcpState) -> Option<TcpState> {
    use netstat2::TcpState as N;
    Some(match state {
        N::Closed | N::DeleteTcb => TcpState::Close,
        N::Listen => TcpState::Listen,
        N::SynSent => TcpState::SynSent,
        N::SynReceived => TcpState::SynRecv,
        N::Established => TcpState::Established,
        N::FinWait1 => TcpState::FinWait1,
        N::FinWait2 => TcpState::FinWait2,
        N::CloseWait => TcpState::CloseWait,
        N::Closing => TcpState::Closing,
        N::LastAck => TcpState::LastAck,
        N::TimeWait => TcpState::TimeWait,
        N::Unknown => return None,
    })
}

/// The table and its owners, which these systems report together.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners), String> {
    let table = read_table(query)?;
    let pairs = table
        .known
        .iter()
        .flat_map(|(k, pids)| pids.iter().map(move |p| (*k, *p)))
        .collect();
    let owners = Owners::from_pairs(pairs, false);
    Ok((table, owners))
}
