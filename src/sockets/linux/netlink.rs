//! The kernel's socket table over netlink sock_diag, the interface `ss`
//! uses. netstat2 0.11 reads the same source but drops the peer of
//! connected UDP sockets and ends a table silently on a netlink error, so
//! portctl talks to sock_diag itself through netlink-packet-sock-diag.

use crate::model::{Proto, Socket, TcpState};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{
    protocols::NETLINK_SOCK_DIAG, Socket as NetlinkSocket, SocketAddr as NetlinkAddr,
};
use std::io;
use std::net::SocketAddr;

/// Kernel TCP state numbers (include/net/tcp_states.h).
pub fn tcp_state(code: u8) -> Option<TcpState> {
    Some(match code {
        1 => TcpState::Established,
        2 => TcpState::SynSent,
        // 12 is TCP_NEW_SYN_RECV, a request socket; netstat calls it SYN_RECV.
        3 | 12 => TcpState::SynRecv,
        4 => TcpState::FinWait1,
        5 => TcpState::FinWait2,
        6 => TcpState::TimeWait,
        7 => TcpState::Close,
        8 => TcpState::CloseWait,
        9 => TcpState::LastAck,
        10 => TcpState::Listen,
        11 => TcpState::Closing,
        _ => return None,
    })
}

/// Every TCP state bit, NEW_SYN_RECV included.
pub const ALL_STATES: u32 = (1 << 13) - 2;

/// The bit for a state in a sock_diag request mask.
pub fn state_bits(state: TcpState) -> u32 {
    match state {
        TcpState::Established => 1 << 1,
        TcpState::SynSent => 1 << 2,
        TcpState::SynRecv => (1 << 3) | (1 << 12),
        TcpState::FinWait1 => 1 << 4,
        TcpState::FinWait2 => 1 << 5,
        TcpState::TimeWait => 1 << 6,
        TcpState::Close => 1 << 7,
        TcpState::CloseWait => 1 << 8,
        TcpState::LastAck => 1 << 9,
        TcpState::Listen => 1 << 10,
        TcpState::Closing => 1 << 11,
    }
}

/// Dumps one (family, protocol) table into `out`. `states` is a mask of
/// TCP states (ignored by the kernel's UDP table, which is always dumped
/// whole). A netlink error is returned, never turned into a short table.
pub fn dump(ipv6: bool, proto: Proto, states: u32, out: &mut Vec<Socket>) -> io::Result<()> {
    let mut socket = NetlinkSocket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddr::new(0, 0))?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: if ipv6 { AF_INET6 } else { AF_INET },
            protocol: match proto {
                Proto::Tcp => IPPROTO_TCP,
                Proto::Udp => IPPROTO_UDP,
            },
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_retain(states),
            socket_id: if ipv6 {
                SocketId::new_v6()
            } else {
                SocketId::new_v4()
            },
        })
        .into(),
    );
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket.send(&bytes, 0)?;

    // The kernel fills each datagram up to the reader's buffer, capped at
    // 32 KiB per message; 64 KiB never truncates one.
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let len = socket.recv(&mut &mut buffer[..], 0)?;
        let mut offset = 0;
        while offset < len {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&buffer[offset..len])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let step = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let h = &response.header;
                    let id = &h.socket_id;
                    let state = match proto {
                        Proto::Tcp => tcp_state(h.state),
                        Proto::Udp => None,
                    };
                    out.push(Socket {
                        proto,
                        local: SocketAddr::new(id.source_address, id.source_port),
                        remote: SocketAddr::new(id.destination_address, id.destination_port),
                        state,
                        inode: u64::from(h.inode),
                        uid: Some(h.uid),
                    });
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(e
                        .code
                        .map(|c| io::Error::from_raw_os_error(-c.get()))
                        .unwrap_or_else(|| io::Error::other("netlink error")));
                }
                _ => {}
            }
            if step == 0 {
                break;
            }
            offset += step;
        }
    }
}
