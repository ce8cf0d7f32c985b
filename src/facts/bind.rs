//! Binding as servers do: the sockets `serve` and `free` keep, the probe
//! that decides whether a port is free, and the kernel's rules for which
//! bound addresses overlap.

use crate::facts::sockets;
use crate::model::{Proto, Socket, TcpState};
use crate::parse::PortRange;
use crate::platform;
use crate::platform::{ServerBind, TableQuery};
use socket2::{Domain, Socket as RawSocket, Type};
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

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
    /// EACCES (WSAEACCES): what it means depends on how the OS's servers
    /// bind (`ServerBind`).
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

/// Why a port that nobody holds still cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbindable {
    /// Below the unprivileged start (`start`, where the OS says), and no
    /// privilege to bind it.
    Privileged { port: u16, start: Option<u16> },
    /// In a range Windows excluded from binding: Hyper-V, WSL and Docker
    /// reserve such ranges, and nothing is listed as holding them.
    Excluded { port: u16, proto: Proto, ip: IpAddr },
    /// The address is not one of this machine's.
    NotLocal { ip: IpAddr },
    /// Anything else the OS said.
    Failed { ip: IpAddr, error: String },
    /// Port 0: a bind to it asks the OS for any free port, so no server
    /// can listen on 0 itself.
    PortZero,
}

/// Binds `port` on every address; the first address that says no decides.
/// Where servers bind exclusively (Windows), a port the binds call free
/// is still in use when the table shows a socket that covers it.
pub fn probe(port: u16, proto: Proto, addresses: &[IpAddr]) -> Verdict {
    if port == 0 {
        return Verdict::Unbindable(Unbindable::PortZero);
    }
    let mut verdict = Verdict::Free;
    for &ip in addresses {
        let why = match try_bind(SocketAddr::new(ip, port), proto) {
            BindOutcome::Free | BindOutcome::NoFamily => continue,
            BindOutcome::InUse => return Verdict::InUse,
            BindOutcome::Denied => match access_denied(port, proto, ip) {
                Verdict::Unbindable(why) => why,
                _ => return Verdict::InUse,
            },
            BindOutcome::NotLocal => Unbindable::NotLocal { ip },
            BindOutcome::Failed(e) => Unbindable::Failed {
                ip,
                error: e.to_string(),
            },
        };
        verdict = Verdict::Unbindable(why);
    }
    if verdict == Verdict::Free && held_beside_bind(port, proto, addresses) {
        return Verdict::InUse;
    }
    verdict
}

/// What binding `ip` ran into when the OS said "access denied": the
/// port in use, or why it cannot be bound.
pub fn access_denied(port: u16, proto: Proto, ip: IpAddr) -> Verdict {
    let model = platform::server_bind();
    let held = match model {
        ServerBind::ReuseAddr => Some(false),
        ServerBind::Exclusive => table_holds(port, proto, &[ip], Holders::Any),
    };
    let start = platform::port_settings().unprivileged_start;
    match denied_means(model, held, port, proto, ip, start) {
        Some(why) => Verdict::Unbindable(why),
        None => Verdict::InUse,
    }
}

/// Where servers bind exclusively (Windows), a bind of a specific address
/// may succeed beside a wildcard server of the same user: whether the
/// table shows such a server (a TCP listener, a UDP socket) of `port` on
/// one of `addresses`. Always false where binds see every holder.
pub fn held_beside_bind(port: u16, proto: Proto, addresses: &[IpAddr]) -> bool {
    platform::server_bind() == ServerBind::Exclusive
        && table_holds(port, proto, addresses, Holders::Servers) == Some(true)
}

/// What "access denied" from binding `ip` means: a system port where
/// servers reuse addresses (Unix); where they bind exclusively
/// (Windows), a holder when the table shows one (`held`), an excluded
/// port range when it shows none, and no guess when it cannot be read.
/// `None`: the port is in use.
fn denied_means(
    model: ServerBind,
    held: Option<bool>,
    port: u16,
    proto: Proto,
    ip: IpAddr,
    start: Option<u16>,
) -> Option<Unbindable> {
    match (model, held) {
        (ServerBind::ReuseAddr, _) if port != 0 && port < start.unwrap_or(1024) => {
            Some(Unbindable::Privileged { port, start })
        }
        // Not a system port: something else refuses (SELinux, AppArmor,
        // a BPF bind hook), and it is not portctl's to guess which.
        (ServerBind::ReuseAddr, _) => Some(Unbindable::Failed {
            ip,
            error: format!(
                "permission denied, though {port} is not a system port (a security policy?)"
            ),
        }),
        (ServerBind::Exclusive, Some(true)) => None,
        (ServerBind::Exclusive, Some(false)) => Some(Unbindable::Excluded { port, proto, ip }),
        (ServerBind::Exclusive, None) => Some(Unbindable::Failed {
            ip,
            error: "access denied, and the socket table could not be read to say why".into(),
        }),
    }
}

/// Which sockets of the table count as holding a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holders {
    /// Any but TIME_WAIT: after a refused bind, any of them may be why.
    Any,
    /// Servers only: after a bind that succeeded, a client's connection
    /// clearly did not stand in the way.
    Servers,
}

/// How long one read of the table answers `table_holds`: a range of
/// ports is checked against one read, not one read per port.
const TABLE_FRESH: Duration = Duration::from_millis(500);

/// One read of one transport's table, and when it was made.
struct TableRead {
    at: Instant,
    proto: Proto,
    sockets: Rc<Vec<Socket>>,
}

thread_local! {
    static TABLE: RefCell<Option<TableRead>> = const { RefCell::new(None) };
}

/// The `proto` sockets of the table, read at most every `TABLE_FRESH`.
fn recent_table(proto: Proto) -> Option<Rc<Vec<Socket>>> {
    TABLE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some(read) = cached.as_ref() {
            if read.proto == proto && read.at.elapsed() < TABLE_FRESH {
                return Some(Rc::clone(&read.sockets));
            }
        }
        let query = TableQuery {
            tcp: proto == Proto::Tcp,
            udp: proto == Proto::Udp,
            ..TableQuery::all()
        };
        let sockets = Rc::new(sockets::read_table(&query).ok()?.sockets);
        *cached = Some(TableRead {
            at: Instant::now(),
            proto,
            sockets: Rc::clone(&sockets),
        });
        Some(sockets)
    })
}

/// Whether the table shows a socket on `port` of the kind `holders` that
/// keeps a server from binding one of `addresses`; `None` when the table
/// cannot be read.
fn table_holds(port: u16, proto: Proto, addresses: &[IpAddr], holders: Holders) -> Option<bool> {
    let sockets = recent_table(proto)?;
    Some(sockets.iter().any(|s| {
        s.proto == proto
            && s.local.port() == port
            && match holders {
                Holders::Any => s.state != Some(TcpState::TimeWait),
                Holders::Servers => s.proto == Proto::Udp || s.is_listening(),
            }
            && addresses
                .iter()
                .any(|&ip| conflicts(s.local.ip(), s.v6only, ip))
    }))
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
/// bound socket's setting, and where the OS does not say (Windows'
/// table), it may be dual-stack as Node's and Java's are. A server binding
/// `[::]` gets the system's default.
pub fn conflicts(bound: IpAddr, v6only: Option<bool>, wanted: IpAddr) -> bool {
    let default_v6only = platform::ipv6_only_by_default();
    let (bound, wanted) = (bound.to_canonical(), wanted.to_canonical());
    bound == wanted
        || covers(bound, v6only.unwrap_or(false), wanted)
        || covers(wanted, default_v6only, bound)
}

/// How closely a listener bound to `listener` fits a connection that
/// arrived at `local` on its port, where it covers it at all: 0 the very
/// address, 1 a wildcard of its family, 2 a dual-stack `[::]` for IPv4.
/// The kernel hands a connection to the closest fit.
pub fn fit(listener: IpAddr, v6only: Option<bool>, local: IpAddr) -> Option<u8> {
    let (at, local) = (listener.to_canonical(), local.to_canonical());
    if !conflicts(at, v6only, local) {
        None
    } else if at == local {
        Some(0)
    } else if at.is_ipv4() == local.is_ipv4() {
        Some(1)
    } else {
        Some(2)
    }
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

    #[test]
    fn a_connection_fits_its_own_address_before_a_wildcard() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let local = ip("127.0.0.1");
        assert_eq!(fit(ip("127.0.0.1"), Some(false), local), Some(0));
        assert_eq!(fit(ip("0.0.0.0"), Some(false), local), Some(1));
        assert_eq!(fit(ip("::"), Some(false), local), Some(2));
        assert_eq!(fit(ip("::"), Some(true), local), None, "IPv6 only");
        assert_eq!(fit(ip("127.0.0.2"), Some(false), local), None);
        assert_eq!(fit(ip("::"), Some(true), ip("::1")), Some(1));
    }

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
    fn access_denied_means_what_the_os_binds_by() {
        let any = ip("0.0.0.0");
        let means = |model, held| denied_means(model, held, 8080, Proto::Tcp, any, Some(1024));
        // Unix: a system port; above them, something else that refuses.
        assert_eq!(
            denied_means(
                ServerBind::ReuseAddr,
                Some(false),
                80,
                Proto::Tcp,
                any,
                None
            ),
            Some(Unbindable::Privileged {
                port: 80,
                start: None
            })
        );
        let policy = means(ServerBind::ReuseAddr, Some(false));
        assert!(
            matches!(&policy, Some(Unbindable::Failed { error, .. }) if error.contains("not a system port")),
            "{policy:?}"
        );
        // Windows: a holder in the table, an excluded range without one,
        // and no guess when the table cannot be read.
        assert_eq!(means(ServerBind::Exclusive, Some(true)), None);
        assert_eq!(
            means(ServerBind::Exclusive, Some(false)),
            Some(Unbindable::Excluded {
                port: 8080,
                proto: Proto::Tcp,
                ip: any
            })
        );
        let unread = means(ServerBind::Exclusive, None);
        assert!(
            matches!(&unread, Some(Unbindable::Failed { error, .. }) if error.contains("could not be read")),
            "{unread:?}"
        );
    }

    #[test]
    fn port_zero_is_never_free() {
        let any = check_addresses(None);
        for proto in [Proto::Tcp, Proto::Udp] {
            assert_eq!(
                probe(0, proto, &any),
                Verdict::Unbindable(Unbindable::PortZero)
            );
        }
    }

    #[test]
    fn a_wildcard_whose_v6only_is_unknown_may_hold_ipv4() {
        assert!(conflicts(ip("::"), None, ip("127.0.0.1")));
        assert!(conflicts(ip("::"), None, ip("0.0.0.0")));
        assert!(!conflicts(ip("::"), Some(true), ip("127.0.0.1")));
    }
}
