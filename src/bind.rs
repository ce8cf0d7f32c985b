//! Binding as servers do: the sockets `serve` and `free` keep, the probe
//! that decides whether a port is free, and the kernel's rules for which
//! bound addresses overlap.

use crate::model::Proto;
use crate::parse::PortRange;
use crate::platform;
use socket2::{Domain, Socket as RawSocket, Type};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A socket bound the way servers bind by default: the OS's own reuse
/// rule (`platform::prepare_server`: SO_REUSEADDR for TCP on Unix,
/// SO_EXCLUSIVEADDRUSE on Windows), `listen` for TCP, and for IPv6 the
/// system's own dual-stack setting, so `[::]` conflicts with `0.0.0.0`
/// exactly when a server's would.
pub fn bind_server(addr: SocketAddr, proto: Proto, backlog: i32) -> io::Result<RawSocket> {
    let kind = match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let socket = RawSocket::new(Domain::for_address(addr), kind, None)?;
    platform::prepare_server(&socket, proto)?;
    socket.bind(&addr.into())?;
    if proto == Proto::Tcp {
        socket.listen(backlog)?;
    }
    Ok(socket)
}

/// What one bind attempt found.
#[derive(Debug)]
pub enum BindOutcome {
    Free,
    InUse,
    /// EACCES (WSAEACCES): what it means is the OS's to say
    /// (`platform::bind_denied`).
    Denied,
    /// EADDRNOTAVAIL: the address is not on this machine.
    NotLocal,
    /// The address family is not available here (IPv6 turned off).
    NoFamily,
    Failed(io::Error),
}

/// Binds `addr` as a server would and lets go at once.
pub fn try_bind(addr: SocketAddr, proto: Proto) -> BindOutcome {
    match bind_server(addr, proto, 1) {
        Ok(_) => BindOutcome::Free,
        Err(e) => match e.kind() {
            io::ErrorKind::AddrInUse => BindOutcome::InUse,
            io::ErrorKind::PermissionDenied => BindOutcome::Denied,
            io::ErrorKind::AddrNotAvailable => BindOutcome::NotLocal,
            _ if platform::family_unsupported(&e) => BindOutcome::NoFamily,
            _ => BindOutcome::Failed(e),
        },
    }
}

/// The addresses a check covers: the one asked for, or the IPv4 and IPv6
/// wildcards (a port free on both is free on every address).
pub fn check_addresses(host: Option<IpAddr>) -> Vec<IpAddr> {
    match host {
        Some(ip) => vec![ip],
        None => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
    }
}

/// The answer for one port and transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Free,
    InUse,
    Unbindable(Unbindable),
}

/// What "access denied" from a bind means where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A system port without the privilege to bind it (Unix); `start` is
    /// the first unprivileged port where the OS says.
    Privileged { start: Option<u16> },
    /// Another socket holds the port and refuses to share it (Windows'
    /// SO_EXCLUSIVEADDRUSE; any holder under Wine).
    Held,
    /// The port lies in a range the OS excluded from binding (Windows).
    Excluded,
}

/// Why a port that nobody holds still cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbindable {
    /// Below the unprivileged start (`start`, where the OS says), and no
    /// privilege to bind it.
    Privileged { port: u16, start: Option<u16> },
    /// In a range Windows excluded from binding: Hyper-V, WSL and Docker
    /// reserve such ranges, and nothing is listed as holding them.
    Excluded { port: u16, proto: Proto },
    /// The address is not one of this machine's.
    NotLocal { ip: IpAddr },
    /// Anything else the OS said.
    Failed { ip: IpAddr, error: String },
}

impl fmt::Display for Unbindable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unbindable::Privileged { port, start } => {
                match start {
                    Some(start) if *start != 1024 => write!(
                        f,
                        "{port} is below net.ipv4.ip_unprivileged_port_start ({start}): binding it needs root or CAP_NET_BIND_SERVICE"
                    ),
                    _ => write!(
                        f,
                        "{port} is a system port: binding it needs root or CAP_NET_BIND_SERVICE"
                    ),
                }
            }
            Unbindable::Excluded { port, proto } => write!(
                f,
                "{port}/{proto} lies in a port range Windows excluded from binding (Hyper-V, WSL and Docker reserve them; no process holds it): `netsh int ipv4 show excludedportrange protocol={proto}` lists the ranges"
            ),
            Unbindable::NotLocal { ip } => write!(f, "{ip} is not an address of this machine"),
            Unbindable::Failed { ip, error } => write!(f, "cannot bind {ip}: {error}"),
        }
    }
}

/// Binds `port` on every address; the first address that says no decides.
pub fn probe(port: u16, proto: Proto, addresses: &[IpAddr]) -> Verdict {
    let mut verdict = Verdict::Free;
    for &ip in addresses {
        let why = match try_bind(SocketAddr::new(ip, port), proto) {
            BindOutcome::Free | BindOutcome::NoFamily => continue,
            BindOutcome::InUse => return Verdict::InUse,
            BindOutcome::Denied => match platform::bind_denied(port, proto) {
                Denied::Held => return Verdict::InUse,
                Denied::Privileged { start } => Unbindable::Privileged { port, start },
                Denied::Excluded => Unbindable::Excluded { port, proto },
            },
            BindOutcome::NotLocal => Unbindable::NotLocal { ip },
            BindOutcome::Failed(e) => Unbindable::Failed {
                ip,
                error: e.to_string(),
            },
        };
        verdict = Verdict::Unbindable(why);
    }
    verdict
}

/// `wanted` distinct ports free on every one of `addresses`: inside
/// `range`, or handed out by the OS.
pub fn pick_free(
    proto: Proto,
    addresses: &[IpAddr],
    range: Option<PortRange>,
    wanted: usize,
) -> io::Result<Vec<u16>> {
    match range {
        Some(range) => Ok(pick_in_range(range, proto, addresses, wanted)),
        None => pick_from_os(proto, addresses, wanted),
    }
}

/// Walks the range from a varying start, so parallel callers rarely race
/// for the same port, and keeps each port free on every address.
fn pick_in_range(range: PortRange, proto: Proto, addresses: &[IpAddr], wanted: usize) -> Vec<u16> {
    let len = range.port_count() as u64;
    let start = u64::from(std::process::id()).wrapping_mul(2_654_435_761) % len;
    let mut found = Vec::new();
    for i in 0..len {
        let port = range.low + ((start + i) % len) as u16;
        if probe(port, proto, addresses) == Verdict::Free {
            found.push(port);
            if found.len() == wanted {
                break;
            }
        }
    }
    found
}

/// Asks the OS for ports (bind to 0) on the first address, holding each
/// until a round is chosen so they are distinct, then lets go and keeps
/// those free on every address (a dual-stack `[::]` probe would collide
/// with the held socket itself).
fn pick_from_os(proto: Proto, addresses: &[IpAddr], wanted: usize) -> io::Result<Vec<u16>> {
    let mut found: Vec<u16> = Vec::new();
    for _ in 0..4 {
        let mut held = Vec::new();
        let mut candidates = Vec::new();
        let mut attempts = (wanted - found.len()) * 2 + 8;
        while candidates.len() < wanted - found.len() && attempts > 0 {
            attempts -= 1;
            let socket = bind_server(SocketAddr::new(addresses[0], 0), proto, 1)?;
            let port = socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .ok_or_else(|| io::Error::other("the OS did not say which port it chose"))?;
            held.push(socket);
            if !found.contains(&port) && !candidates.contains(&port) {
                candidates.push(port);
            }
        }
        drop(held);
        found.extend(
            candidates
                .into_iter()
                .filter(|&port| probe(port, proto, addresses) == Verdict::Free),
        );
        if found.len() == wanted {
            break;
        }
    }
    Ok(found)
}

/// Whether a socket bound to `bound` keeps a server from binding `wanted`
/// on the same port: the same address (an IPv4-mapped `::ffff:a.b.c.d` is
/// `a.b.c.d`), or a wildcard on either side that covers the other. A
/// `[::]` socket covers IPv4 too unless it is IPv6-only; `v6only` is the
/// bound socket's setting where known, and a server binding `[::]` gets the
/// system's default.
pub fn conflicts(bound: IpAddr, v6only: Option<bool>, wanted: IpAddr) -> bool {
    let default_v6only = platform::ipv6_only_by_default();
    let (bound, wanted) = (bound.to_canonical(), wanted.to_canonical());
    bound == wanted
        || covers(bound, v6only.unwrap_or(default_v6only), wanted)
        || covers(wanted, default_v6only, bound)
}

/// Whether a socket bound to the wildcard `wild` takes `other`'s port too.
fn covers(wild: IpAddr, v6only: bool, other: IpAddr) -> bool {
    wild.is_unspecified()
        && match (wild, other) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (IpAddr::V6(_), IpAddr::V4(_)) => !v6only,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn overlapping_addresses() {
        let dual = Some(false);
        let v6only = Some(true);
        // Same address, written two ways.
        assert!(conflicts(ip("::ffff:127.0.0.1"), dual, ip("127.0.0.1")));
        assert!(conflicts(ip("127.0.0.1"), None, ip("::ffff:127.0.0.1")));
        // Wildcards of one family.
        assert!(conflicts(ip("0.0.0.0"), None, ip("127.0.0.1")));
        assert!(conflicts(ip("127.0.0.1"), None, ip("0.0.0.0")));
        assert!(conflicts(ip("::"), v6only, ip("::1")));
        // A dual-stack [::] holds IPv4; an IPv6-only one does not.
        assert!(conflicts(ip("::"), dual, ip("127.0.0.1")));
        assert!(!conflicts(ip("::"), v6only, ip("127.0.0.1")));
        assert!(!conflicts(ip("::"), v6only, ip("0.0.0.0")));
        // Different addresses, no wildcard.
        assert!(!conflicts(ip("127.0.0.1"), None, ip("127.0.0.2")));
        assert!(!conflicts(ip("0.0.0.0"), None, ip("::1")));
        assert!(!conflicts(ip("::1"), v6only, ip("127.0.0.1")));
    }

    #[test]
    fn unbindable_reasons_read_as_sentences() {
        let privileged = |start| Unbindable::Privileged { port: 80, start }.to_string();
        assert!(privileged(Some(1024)).contains("80 is a system port"));
        assert!(privileged(None).contains("80 is a system port"));
        assert!(privileged(Some(2000)).contains("below net.ipv4.ip_unprivileged_port_start (2000)"));
        let excluded = Unbindable::Excluded {
            port: 50000,
            proto: Proto::Tcp,
        }
        .to_string();
        assert!(excluded.contains("50000/tcp lies in a port range Windows excluded"));
        assert!(excluded.contains("netsh int ipv4 show excludedportrange protocol=tcp"));
        assert!(!excluded.contains("root"));
        assert!(Unbindable::NotLocal {
            ip: ip("192.0.2.1")
        }
        .to_string()
        .contains("not an address of this machine"));
    }
}
