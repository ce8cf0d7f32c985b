//! Who holds a port: the sockets bound to it and their owners, read once
//! for many ports, and the one place that words why a port is held.

use crate::facts::bind::conflicts;
use crate::platform::ServerBind;
use crate::facts::containers::Container;
use crate::exit::Result;
use crate::model::{Proto, Socket, TcpState};
use crate::output::{endpoint, sanitize};
use crate::platform;
use crate::facts::process;
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::platform::{Scope, TableQuery, Unseen};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// Who holds each of `keys` (port, transport): the listeners where there
/// are any, otherwise every socket bound to the port, bound-but-inactive
/// ones included (TIME_WAIT aside, which never blocks a SO_REUSEADDR
/// server). One table read and one owner scan serve every key. `host`
/// narrows to sockets that conflict with a server binding it.
pub fn find_holders(
    keys: &[(u16, Proto)],
    host: Option<IpAddr>,
    scope: Scope,
) -> Result<HashMap<(u16, Proto), Vec<SocketRecord>>> {
    let mut result: HashMap<(u16, Proto), Vec<SocketRecord>> = HashMap::new();
    if keys.is_empty() {
        return Ok(result);
    }
    let mut states = TcpState::ALL.to_vec();
    states.retain(|s| *s != TcpState::TimeWait);
    let query = TableQuery {
        tcp: keys.iter().any(|(_, p)| *p == Proto::Tcp),
        udp: keys.iter().any(|(_, p)| *p == Proto::Udp),
        ipv4: true,
        ipv6: true,
        tcp_states: Some(states),
        bound_inactive: true,
    };
    let mut held: Vec<Socket> = sockets::read_table(&query)?.sockets;
    held.retain(|s| {
        keys.contains(&(s.local.port(), s.proto))
            && host.is_none_or(|h| conflicts(s.local.ip(), s.v6only, h))
    });
    // A socket seen twice (a listener also dumped as bound) is one holder.
    held.sort_unstable_by_key(|s| (s.proto, s.local, s.inode));
    held.dedup_by_key(|s| (s.proto, s.local, s.inode));
    let owners = sockets::find_owners(&held, scope);
    let names = process::names(&owners.pids_of(&held));
    let snapshot = Snapshot {
        sockets: held,
        owners,
        names,
    };
    // TCP ports nothing else holds may be held by TIME_WAIT alone.
    let unheld: Vec<u16> = keys
        .iter()
        .filter(|(port, proto)| {
            *proto == Proto::Tcp
                && !snapshot
                    .sockets
                    .iter()
                    .any(|s| s.local.port() == *port && s.proto == *proto)
        })
        .map(|(port, _)| *port)
        .collect();
    let lingering = time_wait_on(&unheld, host)?;
    let mut lookups = Lookups::new(true);
    for key in keys {
        let on_port = snapshot
            .sockets
            .iter()
            .filter(|s| (s.local.port(), s.proto) == *key);
        let any_listener = on_port.clone().any(Socket::is_listening);
        let mut holders: Vec<SocketRecord> = on_port
            .filter(|s| !any_listener || s.is_listening())
            .map(|s| snapshot.record(s, &mut lookups))
            .collect();
        if holders.is_empty() {
            // Nothing else: connections in TIME_WAIT whose socket did not
            // set SO_REUSEADDR hold the port against every server.
            holders = lingering
                .iter()
                .filter(|s| (s.local.port(), s.proto) == *key)
                .map(|s| snapshot.record(s, &mut lookups))
                .collect();
        }
        result.insert(*key, holders);
    }
    Ok(result)
}

/// TCP connections in TIME_WAIT on `ports` (local), where they conflict
/// with `host`. Read on demand: the kernel filters by state, so this
/// costs little.
pub fn time_wait_on(ports: &[u16], host: Option<IpAddr>) -> Result<Vec<Socket>> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let query = TableQuery {
        udp: false,
        tcp_states: Some(vec![TcpState::TimeWait]),
        ..TableQuery::all()
    };
    let mut sockets = sockets::read_table(&query)?.sockets;
    sockets.retain(|s| {
        ports.contains(&s.local.port()) && host.is_none_or(|h| conflicts(s.local.ip(), s.v6only, h))
    });
    Ok(sockets)
}

/// Why a port is held, as one sentence: who holds it, or why that cannot
/// be said.
pub struct Held<'a>(pub &'a [SocketRecord]);

impl fmt::Display for Held<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holders = self.0;
        if holders.is_empty() {
            return f.write_str(match platform::unseen_owner() {
                // Every socket is in the table there: no namespaces.
                Unseen::NoProcess => "in use, but the system's table shows no socket holding it",
                _ => {
                    "in use, but no socket holding it is visible here (another network namespace?)"
                }
            });
        }
        if holders.iter().all(|h| h.state == Some(TcpState::TimeWait)) {
            let why = match platform::server_bind() {
                ServerBind::ReuseAddr => {
                    "left by a socket without SO_REUSEADDR: no server can bind it"
                }
                ServerBind::Exclusive => {
                    "left by a server that bound it exclusively: no server can bind it exclusively"
                }
            };
            return write!(
                f,
                "held by {} connection{} in TIME_WAIT {why} until they end",
                holders.len(),
                if holders.len() == 1 { "" } else { "s" }
            );
        }
        if holders.iter().all(|h| h.pid.is_none()) {
            return write!(f, "held by {}", HiddenOwner::of(holders, "name it"));
        }
        f.write_str("in use by ")?;
        for (i, holder) in holders.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", Describe(holder))?;
        }
        // What the OS needs said about a holder (Windows' PID 4), once.
        match holders
            .iter()
            .find_map(|h| h.pid.and_then(platform::holder_note))
        {
            Some(note) => write!(f, " ({note})"),
            None => Ok(()),
        }
    }
}

/// `python3 (pid 1234) on 0.0.0.0:9999 LISTEN`.
pub struct Describe<'a>(pub &'a SocketRecord);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        match (&h.process, h.pid) {
            (Some(name), Some(pid)) => write!(f, "{} (pid {pid})", sanitize(name))?,
            (None, Some(pid)) => write!(f, "pid {pid}")?,
            _ => f.write_str("a process you cannot see")?,
        }
        write!(f, " on {}", endpoint(h.local(), false))?;
        match h.state {
            Some(TcpState::Close) => f.write_str(" (bound, not listening)")?,
            Some(state) => write!(f, " {state}")?,
            None => {}
        }
        if let Some(container) = &h.container {
            write!(f, ", {}", ContainerText(container))?;
            if let Some(port) = container.port {
                write!(f, " port {port}")?;
            }
        } else if let Some(unit) = &h.unit {
            write!(f, ", unit {}", sanitize(unit))?;
        }
        Ok(())
    }
}

/// `container web (docker, image nginx:1.27)`.
pub struct ContainerText<'a>(pub &'a Container);

impl fmt::Display for ContainerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        let name = c
            .name
            .clone()
            .or_else(|| c.id.as_ref().map(|id| id[..id.len().min(12)].to_string()))
            .unwrap_or_else(|| "(unknown)".into());
        write!(f, "container {} ({}", sanitize(&name), c.runtime)?;
        if let Some(image) = &c.image {
            write!(f, ", image {}", sanitize(image))?;
        }
        f.write_str(")")
    }
}

/// A holder whose process portctl cannot see. As a normal user that is
/// another user's process, and sudo names it; as root it lives outside
/// this PID namespace or is the kernel's, and sudo would change nothing;
/// on Windows the system reports no process for it.
pub struct HiddenOwner<'a> {
    user: Option<&'a str>,
    /// What sudo would let the user do: "name it", "stop it".
    to: &'a str,
}

impl<'a> HiddenOwner<'a> {
    pub fn of(holders: &'a [SocketRecord], to: &'a str) -> Self {
        HiddenOwner {
            user: holders.iter().find_map(|h| h.user.as_deref()),
            to,
        }
    }
}

impl fmt::Display for HiddenOwner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (platform::unseen_owner(), self.user) {
            (Unseen::Beyond, _) => f.write_str(
                "a process that is not visible here: outside this PID namespace, or the kernel's own socket",
            ),
            (Unseen::NoProcess, _) => {
                f.write_str("no process the system names (it reports PID 0)")
            }
            (Unseen::OtherUser, Some(user)) => write!(
                f,
                "a process of user {} you cannot see; run with sudo to {}",
                sanitize(user),
                self.to
            ),
            (Unseen::OtherUser, None) => {
                write!(f, "a process you cannot see; run with sudo to {}", self.to)
            }
        }
    }
}

/// The hint `list` gives when some sockets have no visible owner.
pub fn unowned_hint(count: usize) -> String {
    let sockets = if count == 1 { "socket" } else { "sockets" };
    match platform::unseen_owner() {
        Unseen::Beyond => format!(
            "{count} {sockets} without a visible owner: outside this PID namespace, or the kernel's own"
        ),
        Unseen::NoProcess => format!(
            "{count} {sockets} the system reports without an owning process (PID 0)"
        ),
        Unseen::OtherUser => format!(
            "{count} {sockets} of processes you cannot inspect; run with sudo to see their owners"
        ),
    }
}
