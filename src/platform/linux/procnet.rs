//! The fallback table: `/proc/net/{tcp,tcp6,udp,udp6}`, for kernels or
//! sandboxes without sock_diag. Parsing is a pure function over the text.

use crate::model::{Proto, Socket};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Parses one `/proc/net/*` file. Malformed lines are skipped: the file is
/// written by the kernel, and a line cut by a concurrent change is a race,
/// not an error.
pub fn parse(text: &str, proto: Proto) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| parse_line(line, proto))
        .collect()
}

fn parse_line(line: &str, proto: Proto) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 {
        return None;
    }
    let local = parse_endpoint(fields[1])?;
    let remote = parse_endpoint(fields[2])?;
    let code = u8::from_str_radix(fields[3], 16).ok()?;
    let state = match proto {
        Proto::Tcp => Some(super::netlink::tcp_state(code)?),
        Proto::Udp => None,
    };
    Some(Socket {
        proto,
        local,
        remote,
        state,
        uid: fields[7].parse().ok(),
        inode: fields[9].parse().ok()?,
        v6only: None,
        time_wait_left: None,
        traffic: None,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6). The kernel
/// prints each 32-bit word of the address in host byte order.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::model::TcpState;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:270F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 43210 1 0000000000000000 100 0 0 10 0
   1: 0100007F:270F 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 43211 1 0000000000000000 20 4 30 10 -1
   2: garbage
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_ipv4_listen_and_established() {
        let sockets = parse(TCP, Proto::Tcp);
        assert_eq!(sockets.len(), 2, "the garbage line is skipped");
        assert_eq!(sockets[0].local, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(sockets[0].state, Some(TcpState::Listen));
        assert_eq!(sockets[0].uid, Some(1000));
        assert_eq!(sockets[0].inode, 43210);
        assert_eq!(sockets[1].remote, "127.0.0.1:54321".parse().unwrap());
        assert_eq!(sockets[1].state, Some(TcpState::Established));
    }

    #[test]
    fn parses_ipv6() {
        let sockets = parse(TCP6, Proto::Tcp);
        assert_eq!(sockets[0].local, "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn udp_has_no_state() {
        let udp = TCP.replace(" 0A ", " 07 ");
        assert!(parse(&udp, Proto::Udp).iter().all(|s| s.state.is_none()));
    }
}
