//! Plain data shared by the commands: protocols, socket states, sockets.
//! No I/O here, and nothing about how the data is printed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// The transports portctl inspects and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// TCP states, named as `netstat` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
}

impl TcpState {
    pub const ALL: [TcpState; 11] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// Accepts `time-wait`, `TIME_WAIT`, `timewait`, `listening`...
    pub fn parse(text: &str) -> Option<TcpState> {
        let squashed: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        // The names Windows' netstat prints.
        match squashed.as_str() {
            "LISTENING" => return Some(TcpState::Listen),
            "SYNRECEIVED" => return Some(TcpState::SynRecv),
            "CLOSED" => return Some(TcpState::Close),
            _ => {}
        }
        TcpState::ALL
            .into_iter()
            .find(|s| s.as_str().replace('_', "") == squashed)
    }
}

/// One socket from the kernel's table, before owners are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `None` for UDP, which has no connection state.
    pub state: Option<TcpState>,
    /// The socket's inode, which links it to the file descriptors of its
    /// owners; 0 where the kernel has none (TIME_WAIT, SYN_RECV).
    pub inode: u64,
    pub uid: Option<u32>,
    /// For IPv6: whether the socket takes IPv6 only (`IPV6_V6ONLY`), where
    /// the OS says; a dual-stack `[::]` socket holds the IPv4 port too.
    pub v6only: Option<bool>,
    /// Time left before a TIME_WAIT socket goes away, where the OS says.
    pub time_wait_left: Option<std::time::Duration>,
    /// A TCP connection's own counters, where asked for and the OS keeps
    /// them.
    pub traffic: Option<Traffic>,
}

/// What a TCP connection has moved, as the kernel counts it for every
/// socket (`tcp_info`): no capture, no root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// Bytes sent, retransmissions included where the OS counts so
    /// (`tcpi_bytes_sent`; acknowledged bytes on kernels before 4.19).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The smoothed round-trip time.
    pub rtt: std::time::Duration,
    /// Segments sent again, in all.
    pub retransmits: u32,
}

impl Socket {
    pub fn family(&self) -> Family {
        match self.local {
            SocketAddr::V4(_) => Family::Ipv4,
            SocketAddr::V6(_) => Family::Ipv6,
        }
    }

    /// TCP LISTEN, or UDP with no peer (what `ss -l` shows).
    pub fn is_listening(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == Some(TcpState::Listen),
            Proto::Udp => self.remote.port() == 0,
        }
    }
}

/// `kill`'s two steps: ask the process to stop, then end it. How the OS
/// names them (SIGTERM and SIGKILL, or WM_CLOSE and TerminateProcess on
/// Windows) is the presentation's business (`output::words`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_parse_loosely() {
        assert_eq!(TcpState::parse("time-wait"), Some(TcpState::TimeWait));
        assert_eq!(TcpState::parse("LISTEN"), Some(TcpState::Listen));
        assert_eq!(TcpState::parse("established"), Some(TcpState::Established));
        assert_eq!(TcpState::parse("fin_wait1"), Some(TcpState::FinWait1));
        assert_eq!(TcpState::parse("syn-recv"), Some(TcpState::SynRecv));
        assert_eq!(TcpState::parse("bogus"), None);
        // As Windows' netstat prints them.
        assert_eq!(TcpState::parse("LISTENING"), Some(TcpState::Listen));
        assert_eq!(TcpState::parse("SYN_RECEIVED"), Some(TcpState::SynRecv));
        assert_eq!(TcpState::parse("FIN_WAIT_2"), Some(TcpState::FinWait2));
        assert_eq!(TcpState::parse("CLOSED"), Some(TcpState::Close));
    }

    #[test]
    fn states_serialize_as_netstat_prints_them() {
        for s in TcpState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
