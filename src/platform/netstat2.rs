//! macOS and Windows: the table and its owners from netstat2, which asks
//! each OS in its own way (sysctl/proc_pidinfo, GetExtendedTcpTable). The
//! OS reports owners with each socket; owners are found again by reading
//! the table again.

use crate::model::{Proto, Socket, TcpState};
use crate::platform::{OwnerQuery, Owners, ReadError, Table, TableQuery};
use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, SocketInfo};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub fn read_table(query: &TableQuery) -> Result<Table, ReadError> {
    Ok(read(query)?.0)
}

pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners), ReadError> {
    let (table, pairs) = read(query)?;
    Ok((table, Owners::from_pairs(pairs, false)))
}

/// Reads the table once more and keeps the owners of the wanted sockets.
pub fn find_owners(query: &OwnerQuery) -> Owners {
    let Ok((_, mut pairs)) = read(&TableQuery::all()) else {
        return Owners::from_pairs(Vec::new(), true);
    };
    if let Some(wanted) = &query.inodes {
        pairs.retain(|(key, _)| wanted.contains(key));
    }
    Owners::from_pairs(pairs, false)
}

/// The sockets asked for and their (key, pid) pairs.
fn read(query: &TableQuery) -> Result<(Table, Vec<(u64, u32)>), ReadError> {
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
        .map_err(|e| ReadError::Os(std::io::Error::other(e.to_string())))?;
    let mut table = Table::default();
    let mut pairs = Vec::new();
    for info in infos {
        let socket = socket_of(&info);
        if !query.wants_state(socket.state) {
            continue;
        }
        // PID 0 is no process: Windows' owner of sockets that have none.
        pairs.extend(
            info.associated_pids
                .iter()
                .filter(|&&pid| pid != 0)
                .map(|&pid| (socket.inode, pid)),
        );
        table.sockets.push(socket);
    }
    Ok((table, pairs))
}

fn socket_of(info: &SocketInfo) -> Socket {
    let (proto, local, remote, state) = match &info.protocol_socket_info {
        ProtocolSocketInfo::Tcp(t) => (
            Proto::Tcp,
            SocketAddr::new(t.local_addr, t.local_port),
            SocketAddr::new(t.remote_addr, t.remote_port),
            tcp_state(t.state),
        ),
        ProtocolSocketInfo::Udp(u) => (
            Proto::Udp,
            SocketAddr::new(u.local_addr, u.local_port),
            SocketAddr::new(unspecified_like(u.local_addr), 0),
            None,
        ),
    };
    // TIME_WAIT has no owner, as on Linux where its inode is 0. Several
    // processes may hold one UDP port and address (mDNS on 5353): the
    // owner is part of the key, so each socket keeps its own.
    let inode = if state == Some(TcpState::TimeWait) {
        0
    } else {
        key(proto, local, remote, info.associated_pids.first().copied())
    };
    Socket {
        proto,
        local,
        remote,
        state,
        inode,
        uid: None,
        v6only: None,
        time_wait_left: None,
        traffic: None,
    }
}

/// These systems give sockets no inode: a key from the socket's identity
/// and its first owner finds it again in a later read.
fn key(proto: Proto, local: SocketAddr, remote: SocketAddr, owner: Option<u32>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (proto, local, remote, owner).hash(&mut hasher);
    hasher.finish().max(1)
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
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
