//! The kernel's socket table over netlink sock_diag, the interface `ss`
//! uses. netstat2 0.11 reads the same source but drops the peer of
//! connected UDP sockets and ends a table silently on a netlink error, so
//! portctl talks to sock_diag itself: the request is built with
//! netlink-packet-sock-diag, the replies are read from their bytes (the
//! crate's parser allocates several times per socket, and a dump runs
//! beside the threads of the `/proc` scan).

use crate::model::{Proto, Socket, TcpState, Traffic};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_INFO, INET_DIAG_SKV6ONLY, IPPROTO_TCP, IPPROTO_UDP,
    SOCK_DIAG_BY_FAMILY,
};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{
    protocols::NETLINK_SOCK_DIAG, Socket as NetlinkSocket, SocketAddr as NetlinkAddr,
};
use std::io;
use std::net::{IpAddr, SocketAddr};

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
/// whole); `traffic` asks for each TCP socket's `tcp_info` too. A netlink
/// error is returned, never turned into a short table; a dump interrupted
/// by a concurrent change is read again.
pub fn dump(
    ipv6: bool,
    proto: Proto,
    states: u32,
    traffic: bool,
    out: &mut Vec<Socket>,
) -> io::Result<()> {
    let before = out.len();
    for _ in 0..DUMP_TRIES {
        out.truncate(before);
        if dump_once(ipv6, proto, states, traffic, out)? == Dump::Consistent {
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

fn dump_once(
    ipv6: bool,
    proto: Proto,
    states: u32,
    traffic: bool,
    out: &mut Vec<Socket>,
) -> io::Result<Dump> {
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
            extensions: if traffic && proto == Proto::Tcp {
                ExtensionFlags::INFO
            } else {
                ExtensionFlags::empty()
            },
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
            let message = &buffer[offset..len];
            let header = message
                .get(..NLMSG_HEADER)
                .ok_or_else(|| malformed("a cut header"))?;
            let length = u32_at(header, 0).unwrap_or_default();
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            let flags = u16::from_ne_bytes([header[6], header[7]]);
            let body = usize::try_from(length)
                .ok()
                .and_then(|length| message.get(NLMSG_HEADER..length))
                .ok_or_else(|| malformed("a message longer than its datagram"))?;
            interrupted |= flags & NLM_F_DUMP_INTR != 0;
            match kind {
                SOCK_DIAG_BY_FAMILY => out.push(socket_of(proto, body)?),
                NLMSG_DONE if interrupted => return Ok(Dump::Interrupted),
                NLMSG_DONE => return Ok(Dump::Consistent),
                NLMSG_ERROR => {
                    return Err(match body.get(..4) {
                        Some(&[a, b, c, d]) if i32::from_ne_bytes([a, b, c, d]) < 0 => {
                            io::Error::from_raw_os_error(-i32::from_ne_bytes([a, b, c, d]))
                        }
                        _ => io::Error::other("netlink error"),
                    });
                }
                _ => {}
            }
            offset = next_message(offset, length, len)?;
        }
    }
}

/// The netlink header before every message: length, type, flags,
/// sequence, port.
const NLMSG_HEADER: usize = 16;

/// `struct inet_diag_msg` (linux/inet_diag.h), the fixed part of a reply;
/// its attributes follow.
const INET_DIAG_MSG: usize = 72;

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed sock_diag reply: {what}"),
    )
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
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

/// One socket from the body of a `SOCK_DIAG_BY_FAMILY` reply, an
/// `inet_diag_msg`: family, state, timer, retransmits (bytes 0–3); ports
/// (big-endian) and addresses (4–39); expiry, queues, uid and inode
/// (52–71); then attributes, of which only `INET_DIAG_SKV6ONLY` is read.
fn socket_of(proto: Proto, body: &[u8]) -> io::Result<Socket> {
    let msg = body
        .get(..INET_DIAG_MSG)
        .ok_or_else(|| malformed("a cut inet_diag_msg"))?;
    let port = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    let address = |at: usize| -> io::Result<IpAddr> {
        let bytes: [u8; 16] = msg[at..at + 16].try_into().unwrap_or_default();
        match msg[0] {
            AF_INET => Ok(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
            AF_INET6 => Ok(IpAddr::from(bytes)),
            family => Err(malformed(&format!("address family {family}"))),
        }
    };
    let word = |at: usize| u32_at(msg, at).unwrap_or_default();
    let state = match proto {
        Proto::Tcp => tcp_state(msg[1]),
        Proto::Udp => None,
    };
    Ok(Socket {
        proto,
        local: SocketAddr::new(address(8)?, port(4)),
        remote: SocketAddr::new(address(24)?, port(6)),
        state,
        inode: u64::from(word(68)),
        uid: Some(word(64)),
        v6only: attribute(&body[INET_DIAG_MSG..], INET_DIAG_SKV6ONLY)
            .and_then(|value| value.first())
            .map(|&v6only| v6only != 0),
        // `idiag_expires`, in milliseconds: the time a TIME_WAIT socket
        // has left.
        time_wait_left: (state == Some(TcpState::TimeWait))
            .then(|| std::time::Duration::from_millis(u64::from(word(52)))),
        traffic: match proto {
            Proto::Tcp => attribute(&body[INET_DIAG_MSG..], INET_DIAG_INFO).and_then(tcp_info),
            Proto::Udp => None,
        },
    })
}

/// Where `struct tcp_info` (linux/tcp.h) keeps what portctl reads; a
/// kernel may send a shorter struct, and a field past its end is unknown.
const TCPI_RTT: usize = 68;
const TCPI_TOTAL_RETRANS: usize = 100;
const TCPI_BYTES_ACKED: usize = 120;
const TCPI_BYTES_RECEIVED: usize = 128;
const TCPI_BYTES_SENT: usize = 200;

/// A connection's counters from its `tcp_info`: bytes sent (acknowledged
/// bytes where the kernel predates `tcpi_bytes_sent`, 4.19), received,
/// the smoothed round trip (µs) and the retransmissions.
fn tcp_info(info: &[u8]) -> Option<Traffic> {
    let u32_at = |at: usize| u32_at(info, at);
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(info.get(at..at + 8)?.try_into().ok()?))
    };
    Some(Traffic {
        bytes_sent: u64_at(TCPI_BYTES_SENT).or_else(|| u64_at(TCPI_BYTES_ACKED))?,
        bytes_received: u64_at(TCPI_BYTES_RECEIVED)?,
        rtt: std::time::Duration::from_micros(u64::from(u32_at(TCPI_RTT)?)),
        retransmits: u32_at(TCPI_TOTAL_RETRANS)?,
    })
}

/// The value of the first attribute of `kind` (a 4-byte length and type,
/// then the value, padded to 4 bytes).
fn attribute(mut attributes: &[u8], kind: u16) -> Option<&[u8]> {
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let value = attributes.get(4..length)?;
        if u16::from_ne_bytes([attributes[2], attributes[3]]) == kind {
            return Some(value);
        }
        attributes = attributes.get(length.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn message_lengths_that_cannot_advance_are_errors() {
        assert_eq!(next_message(0, 72, 144).unwrap(), 72);
        assert_eq!(next_message(0, 70, 144).unwrap(), 72);
        assert!(next_message(0, 0, 144).is_err());
        assert!(next_message(0, 8, 144).is_err());
        assert!(next_message(72, 200, 144).is_err());
        assert!(next_message(0, u32::MAX, 144).is_err());
    }

    /// A reply as the kernel writes it: an IPv6 TIME_WAIT socket with an
    /// attribute before `INET_DIAG_SKV6ONLY`.
    #[test]
    fn replies_read_from_their_bytes() {
        let mut body = vec![0u8; INET_DIAG_MSG];
        body[0] = AF_INET6;
        body[1] = 6;
        body[4..6].copy_from_slice(&8080u16.to_be_bytes());
        body[6..8].copy_from_slice(&443u16.to_be_bytes());
        body[8..24].copy_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
        body[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        body[52..56].copy_from_slice(&1500u32.to_ne_bytes());
        body[64..68].copy_from_slice(&1000u32.to_ne_bytes());
        body[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        for (kind, value) in [(8u16, &[0u8, 0][..]), (INET_DIAG_SKV6ONLY, &[1][..])] {
            body.extend((4 + value.len() as u16).to_ne_bytes());
            body.extend(kind.to_ne_bytes());
            body.extend(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let socket = socket_of(Proto::Tcp, &body).unwrap();
        assert_eq!(socket.traffic, None, "no tcp_info asked for");
        assert_eq!(socket.local, "[::1]:8080".parse().unwrap());
        assert_eq!(socket.remote, "[2001:db8::2]:443".parse().unwrap());
        assert_eq!(socket.state, Some(TcpState::TimeWait));
        assert_eq!(
            socket.time_wait_left,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!((socket.uid, socket.inode), (Some(1000), 4242));
        assert_eq!(socket.v6only, Some(true));

        body[0] = AF_INET;
        body[8..12].copy_from_slice(&[127, 0, 0, 1]);
        let socket = socket_of(Proto::Udp, &body[..INET_DIAG_MSG]).unwrap();
        assert_eq!(socket.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((socket.state, socket.v6only), (None, None));
        assert!(socket_of(Proto::Tcp, &body[..INET_DIAG_MSG - 1]).is_err());
    }

    #[test]
    fn tcp_info_gives_the_counters_where_the_kernel_has_them() {
        let mut info = vec![0u8; 232];
        info[TCPI_RTT..TCPI_RTT + 4].copy_from_slice(&1500u32.to_ne_bytes());
        info[TCPI_TOTAL_RETRANS..TCPI_TOTAL_RETRANS + 4].copy_from_slice(&3u32.to_ne_bytes());
        info[TCPI_BYTES_ACKED..TCPI_BYTES_ACKED + 8].copy_from_slice(&900u64.to_ne_bytes());
        info[TCPI_BYTES_RECEIVED..TCPI_BYTES_RECEIVED + 8].copy_from_slice(&20u64.to_ne_bytes());
        info[TCPI_BYTES_SENT..TCPI_BYTES_SENT + 8].copy_from_slice(&1000u64.to_ne_bytes());
        let t = tcp_info(&info).unwrap();
        assert_eq!(
            (t.bytes_sent, t.bytes_received, t.retransmits),
            (1000, 20, 3)
        );
        assert_eq!(t.rtt, std::time::Duration::from_micros(1500));
        // A kernel before 4.19 sends a shorter struct: acknowledged bytes.
        assert_eq!(tcp_info(&info[..TCPI_BYTES_SENT]).unwrap().bytes_sent, 900);
        assert_eq!(tcp_info(&info[..TCPI_BYTES_RECEIVED]), None);
    }

    #[test]
    fn bound_inactive_sockets_read_as_close() {
        assert_eq!(tcp_state(13), Some(TcpState::Close));
        assert_eq!(tcp_state(10), Some(TcpState::Listen));
        assert_eq!(tcp_state(14), None);
    }
}
