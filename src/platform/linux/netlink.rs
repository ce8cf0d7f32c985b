//! The kernel's socket table over netlink sock_diag, the interface `ss`
//! uses. netstat2 0.11 reads the same source but drops the peer of
//! connected UDP sockets and ends a table silently on a netlink error, so
//! portctl talks to sock_diag itself through netlink-packet-sock-diag.

use crate::model::{Proto, Socket, TcpState};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{
    nlas::Nla, ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
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
        // TCP_BOUND_INACTIVE: bound without listen() (`ss -B`).
        13 => TcpState::Close,
        _ => return None,
    })
}

/// Every TCP state bit, NEW_SYN_RECV included.
pub const ALL_STATES: u32 = (1 << 13) - 2;

/// Sockets bound to a port without listening or connecting. Kernels since
/// 6.8 dump them on request (`ss -B`); older ones ignore the bit.
pub const BOUND_INACTIVE: u32 = 1 << 13;

/// A dump the kernel says changed under it (`NLM_F_DUMP_INTR`) is read
/// again, this many times at most.
const DUMP_TRIES: usize = 3;

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
/// whole). A netlink error is returned, never turned into a short table;
/// a dump interrupted by a concurrent change is read again.
pub fn dump(ipv6: bool, proto: Proto, states: u32, out: &mut Vec<Socket>) -> io::Result<()> {
    let before = out.len();
    for _ in 0..DUMP_TRIES {
        out.truncate(before);
        if dump_once(ipv6, proto, states, out)? == Dump::Consistent {
            return Ok(());
        }
    }
    Err(io::Error::other(
        "the table kept changing while it was read (NLM_F_DUMP_INTR)",
    ))
}

#[derive(Debug, PartialEq, Eq)]
enum Dump {
    Consistent,
    Interrupted,
}

fn dump_once(ipv6: bool, proto: Proto, states: u32, out: &mut Vec<Socket>) -> io::Result<Dump> {
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
    let mut interrupted = false;
    loop {
        let len = socket.recv(&mut &mut buffer[..], 0)?;
        let mut offset = 0;
        while offset < len {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&buffer[offset..len])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let mut socket = socket_of(proto, &response);
                    if socket.state == Some(TcpState::TimeWait) {
                        socket.time_wait_left = expires(&buffer[offset..len]);
                    }
                    out.push(socket);
                }
                NetlinkPayload::Done(_) if interrupted => return Ok(Dump::Interrupted),
                NetlinkPayload::Done(_) => return Ok(Dump::Consistent),
                NetlinkPayload::Error(e) => {
                    return Err(e
                        .code
                        .map(|c| io::Error::from_raw_os_error(-c.get()))
                        .unwrap_or_else(|| io::Error::other("netlink error")));
                }
                _ => {}
            }
            offset = next_message(offset, message.header.length, len)?;
        }
    }
}

/// Where the message after one of `length` bytes at `offset` starts
/// (messages are 4-byte aligned). A length that cannot move forward or
/// runs past the datagram is a malformed reply, not a reason to spin.
fn next_message(offset: usize, length: u32, len: usize) -> io::Result<usize> {
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    let aligned = length.checked_add(3).map(|l| l & !3);
    match aligned.and_then(|l| offset.checked_add(l)) {
        Some(next) if length >= 16 && next <= len.next_multiple_of(4) => Ok(next),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed netlink message length {length} at offset {offset} of {len}"),
        )),
    }
}

/// `idiag_expires` of a raw sock_diag reply, in milliseconds: the time a
/// TIME_WAIT socket has left. netlink-packet-sock-diag reads it for the
/// other timers only, so it is taken from the bytes: after the 16-byte
/// netlink header, 4 bytes of family/state/timer/retransmits and the
/// 48-byte socket id.
fn expires(message: &[u8]) -> Option<std::time::Duration> {
    const AT: usize = 16 + 4 + 48;
    let bytes: [u8; 4] = message.get(AT..AT + 4)?.try_into().ok()?;
    Some(std::time::Duration::from_millis(u64::from(
        u32::from_ne_bytes(bytes),
    )))
}

fn socket_of(proto: Proto, response: &InetResponse) -> Socket {
    let h = &response.header;
    let id = &h.socket_id;
    let state = match proto {
        Proto::Tcp => tcp_state(h.state),
        Proto::Udp => None,
    };
    let v6only = response.nlas.iter().find_map(|nla| match nla {
        Nla::SkV6Only(v6only) => Some(*v6only),
        _ => None,
    });
    Socket {
        proto,
        local: SocketAddr::new(id.source_address, id.source_port),
        remote: SocketAddr::new(id.destination_address, id.destination_port),
        state,
        inode: u64::from(h.inode),
        uid: Some(h.uid),
        v6only,
        time_wait_left: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lengths_that_cannot_advance_are_errors() {
        assert_eq!(next_message(0, 72, 144).unwrap(), 72);
        assert_eq!(next_message(0, 70, 144).unwrap(), 72);
        assert!(next_message(0, 0, 144).is_err());
        assert!(next_message(0, 8, 144).is_err());
        assert!(next_message(72, 200, 144).is_err());
        assert!(next_message(0, u32::MAX, 144).is_err());
    }

    #[test]
    fn bound_inactive_sockets_read_as_close() {
        assert_eq!(tcp_state(13), Some(TcpState::Close));
        assert_eq!(tcp_state(10), Some(TcpState::Listen));
        assert_eq!(tcp_state(14), None);
    }
}
