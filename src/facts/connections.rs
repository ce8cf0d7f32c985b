//! Every TCP connection as it opens and closes, with the process behind
//! it: from the kernel's own record of state changes where portctl may
//! read it (`Source::Kernel`), else from scans of the table (`Poll`),
//! which can miss a connection that lives between two scans.
//!
//! From the kernel's record: a `connect` is a socket going from CLOSE to
//! SYN_SENT, in the context of the process that called `connect` (its
//! thread group and name as the kernel had them); an `accept` is a socket
//! going from SYN_RECV to ESTABLISHED, which the network does in softirq,
//! so it is the listener's owner's; a `close` is the change to CLOSE,
//! matched by the socket's kernel address to its opening for the
//! duration.

use crate::facts::process;
use crate::facts::socket_record::SocketRecord;
use crate::facts::sockets;
use crate::facts::{bind::conflicts, registry};
use crate::model::{Family, Proto, Socket, TcpState};
use crate::parse::PortRange;
use crate::platform::{
    self, KernelRecord, ReadError, Scope, TableQuery, TcpChange, TcpChanges, TraceError,
};
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The kernel's record of every change: nothing is missed but what
    /// the kernel says it dropped.
    Kernel,
    /// Scans of the table: a connection shorter than the interval may be
    /// missed, or seen without its process.
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// This machine opened a connection.
    Connect,
    /// A local listener took a connection.
    Accept,
    /// A connection ended.
    Close,
}

/// One connection opening or closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnEvent {
    pub kind: EventKind,
    pub time: SystemTime,
    pub source: Source,
    /// The connection as `list` shows a socket: the state it went to, and
    /// the process behind it.
    pub socket: SocketRecord,
    /// A close: how long since its connect or accept, where seen.
    pub duration: Option<Duration>,
}

/// Which events to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub ipv4: bool,
    pub ipv6: bool,
    /// Local or remote port.
    pub port: Option<PortRange>,
    pub pid: Option<u32>,
    /// A case-insensitive part of the process's name.
    pub process: Option<String>,
}

impl Filter {
    pub fn keeps(&self, e: &ConnEvent) -> bool {
        let s = &e.socket;
        let family = match s.family {
            Family::Ipv4 => self.ipv4 || !self.ipv6,
            Family::Ipv6 => self.ipv6 || !self.ipv4,
        };
        family
            && self
                .port
                .is_none_or(|r| r.contains(s.local_port) || r.contains(s.remote_port))
            && self.pid.is_none_or(|pid| s.pid == Some(pid))
            && self.process.as_ref().is_none_or(|want| {
                s.process
                    .as_ref()
                    .is_some_and(|name| name.to_lowercase().contains(&want.to_lowercase()))
            })
    }
}

/// Follows connections from the best source there is.
pub enum Connections {
    Kernel(Box<KernelFollower>),
    Poll(Box<Poller>),
}

impl Connections {
    /// The kernel's record unless `poll` is asked for or it cannot be
    /// read, and then why not.
    // Where the OS keeps no record, `TcpChanges` has no values and the
    // kernel arm cannot run.
    #[allow(unreachable_code)]
    pub fn open(poll: bool) -> (Connections, Option<TraceError>) {
        if !poll {
            match platform::tcp_changes() {
                Ok(changes) => {
                    return (
                        Connections::Kernel(Box::new(KernelFollower::new(changes))),
                        None,
                    )
                }
                Err(why) => return (Connections::Poll(Box::default()), Some(why)),
            }
        }
        (Connections::Poll(Box::default()), None)
    }

    pub fn source(&self) -> Source {
        match self {
            Connections::Kernel(_) => Source::Kernel,
            Connections::Poll(_) => Source::Poll,
        }
    }

    /// The events since the last call, waiting at most `wait` for some.
    pub fn next(&mut self, wait: Duration) -> Result<Vec<ConnEvent>, FollowError> {
        match self {
            Connections::Kernel(k) => k.next(wait).map_err(FollowError::Kernel),
            Connections::Poll(p) => p.next(wait).map_err(FollowError::Table),
        }
    }

    /// Records the kernel dropped so far (a ring full).
    pub fn lost(&self) -> u64 {
        match self {
            Connections::Kernel(k) => k.tracker.lost,
            Connections::Poll(_) => 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot read the kernel's record of TCP changes")]
    Kernel(#[source] io::Error),
    #[error(transparent)]
    Table(#[from] ReadError),
}

/// A socket whose opening was seen.
#[derive(Debug, Clone)]
struct Opened {
    at: SystemTime,
    owner: Owner,
}

/// The process behind a connection, as far as it is known.
#[derive(Debug, Clone, Default)]
struct Owner {
    pid: Option<u32>,
    process: Option<String>,
    user: Option<String>,
}

/// The most sockets remembered open at once; past it the oldest half is
/// forgotten (their closes then come without a duration).
const OPEN_MAX: usize = 1 << 18;

/// How often the listeners' owners may be read from the table again.
const LISTENERS_FRESH: Duration = Duration::from_secs(1);

/// Turns the kernel's record into connection events.
pub struct KernelFollower {
    changes: TcpChanges,
    tracker: Tracker,
}

/// What the record has said so far: names, open sockets, listeners.
#[derive(Default)]
struct Tracker {
    /// Each process's name as the kernel last gave it.
    names: HashMap<u32, String>,
    /// Each process's user, read once from the process (the record has
    /// none); `None` for one gone before it could be read.
    users: HashMap<u32, Option<String>>,
    user_names: process::Users,
    opened: HashMap<u64, Opened>,
    /// Each listening address's owner: seen listening, or read from the
    /// table.
    listeners: HashMap<SocketAddr, Owner>,
    listeners_read: Option<Instant>,
    lost: u64,
    /// A close that follows the event a change made (a refused connect).
    closes: Vec<ConnEvent>,
}

impl KernelFollower {
    fn new(changes: TcpChanges) -> KernelFollower {
        KernelFollower {
            changes,
            tracker: Tracker::default(),
        }
    }

    fn next(&mut self, wait: Duration) -> io::Result<Vec<ConnEvent>> {
        let records = self.changes.next_batch(wait)?;
        Ok(self.tracker.take(records))
    }
}

impl Tracker {
    /// The events `records` make, in order.
    fn take(&mut self, records: Vec<KernelRecord>) -> Vec<ConnEvent> {
        let mut events = Vec::new();
        for record in records {
            match record {
                KernelRecord::Change(c) => {
                    events.extend(self.change(c));
                    events.append(&mut self.closes);
                }
                KernelRecord::Named { pid, name } => {
                    self.names.insert(pid, name);
                }
                KernelRecord::Exited { pid } => {
                    self.names.remove(&pid);
                    self.users.remove(&pid);
                }
                KernelRecord::Lost(n) => self.lost = self.lost.saturating_add(n),
            }
        }
        events
    }

    fn change(&mut self, c: TcpChange) -> Option<ConnEvent> {
        use TcpState::{Close, Established, Listen, SynRecv, SynSent};
        match (c.old?, c.new?) {
            // connect(2): the caller is the process, but the kernel picks
            // the local port only after this change. The event waits for
            // the socket's next change, which carries the port.
            (Close, SynSent) => {
                let owner = self.owner(c.pid);
                self.remember(c.socket, c.time, owner);
                None
            }
            // The handshake finished, or failed (refused, timed out).
            (SynSent, new @ (Established | Close)) => {
                let opened = self.opened.get(&c.socket)?.clone();
                let mut connect = event(EventKind::Connect, &c, &opened.owner, None);
                connect.time = opened.at;
                connect.socket.state = Some(SynSent);
                if new == Close {
                    // Its close follows, as for any connection.
                    let close = self.close(&c)?;
                    self.closes.push(close);
                }
                Some(connect)
            }
            (_, Listen) => {
                let owner = self.owner(c.pid);
                self.listeners.insert(c.local, owner);
                None
            }
            (Listen, Close) => {
                self.listeners.remove(&c.local);
                None
            }
            (SynRecv, Established) => {
                let owner = self.listener(c.local).unwrap_or_default();
                let accept = event(EventKind::Accept, &c, &owner, None);
                self.remember(c.socket, c.time, owner);
                Some(accept)
            }
            (_, Close) => self.close(&c),
            _ => None,
        }
    }

    /// The close of a socket whose opening was seen, with its duration.
    fn close(&mut self, c: &TcpChange) -> Option<ConnEvent> {
        let opened = self.opened.remove(&c.socket)?;
        let duration = c.time.duration_since(opened.at).ok();
        Some(event(EventKind::Close, c, &opened.owner, duration))
    }

    fn remember(&mut self, socket: u64, at: SystemTime, owner: Owner) {
        if self.opened.len() >= OPEN_MAX {
            let mut times: Vec<SystemTime> = self.opened.values().map(|o| o.at).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.opened.retain(|_, o| o.at > cut);
        }
        self.opened.insert(socket, Opened { at, owner });
    }

    /// Process `pid` with its name and user.
    fn owner(&mut self, pid: u32) -> Owner {
        Owner {
            pid: Some(pid),
            process: self.name(pid),
            user: self.user(pid),
        }
    }

    /// The user process `pid` runs as, read once while it runs. Bounded
    /// like the open sockets: past the bound the cache starts again.
    fn user(&mut self, pid: u32) -> Option<String> {
        if let Some(user) = self.users.get(&pid) {
            return user.clone();
        }
        if self.users.len() >= OPEN_MAX {
            self.users.clear();
        }
        let user = platform::process_uid(pid).map(|uid| self.user_names.name(uid).to_string());
        self.users.insert(pid, user.clone());
        user
    }

    /// The name of process `pid` as the kernel last gave it, else as it is
    /// now (read once, then kept until it exits or is renamed).
    fn name(&mut self, pid: u32) -> Option<String> {
        if let Some(name) = self.names.get(&pid) {
            return Some(name.clone());
        }
        let name = process::names(&[pid]).remove(&pid)?;
        self.names.insert(pid, name.clone());
        Some(name)
    }

    /// The owner of the listener that took a connection on `local`: the
    /// same address, else a wildcard of either family that covers it.
    fn listener(&mut self, local: SocketAddr) -> Option<Owner> {
        let find = |listeners: &HashMap<SocketAddr, Owner>| {
            listeners
                .iter()
                .filter(|(at, _)| at.port() == local.port() && conflicts(at.ip(), None, local.ip()))
                .min_by_key(|(at, _)| at.ip().is_unspecified())
                .map(|(_, owner)| owner.clone())
        };
        if let Some(owner) = find(&self.listeners) {
            return Some(owner);
        }
        if self
            .listeners_read
            .is_some_and(|at| at.elapsed() < LISTENERS_FRESH)
        {
            return None;
        }
        self.listeners_read = Some(Instant::now());
        self.read_listeners();
        find(&self.listeners)
    }

    /// Every TCP listener's owner, from the table.
    fn read_listeners(&mut self) {
        let query = TableQuery {
            udp: false,
            tcp_states: Some(vec![TcpState::Listen]),
            ..TableQuery::all()
        };
        let Ok(table) = sockets::read_table(&query) else {
            return;
        };
        let owners = sockets::find_owners(&table.sockets, Scope::FirstOwner);
        let names = process::names(&owners.pids_of(&table.sockets));
        for s in &table.sockets {
            if let Some(&pid) = owners.of(s).first() {
                let owner = Owner {
                    pid: Some(pid),
                    process: names.get(&pid).cloned(),
                    user: s.uid.map(|uid| self.user_names.name(uid).to_string()),
                };
                self.listeners.insert(s.local, owner);
            }
        }
    }
}

/// A connection event from one change.
fn event(kind: EventKind, c: &TcpChange, owner: &Owner, duration: Option<Duration>) -> ConnEvent {
    ConnEvent {
        kind,
        time: c.time,
        source: Source::Kernel,
        socket: record(c.local, c.remote, c.new, owner.clone()),
        duration,
    }
}

/// A connection as `list` shows a socket.
fn record(
    local: SocketAddr,
    remote: SocketAddr,
    state: Option<TcpState>,
    owner: Owner,
) -> SocketRecord {
    let socket = Socket {
        proto: Proto::Tcp,
        local,
        remote,
        state,
        inode: 0,
        uid: None,
        v6only: None,
        time_wait_left: None,
        traffic: None,
    };
    SocketRecord {
        proto: Proto::Tcp,
        family: socket.family(),
        local_addr: local.ip(),
        local_port: local.port(),
        remote_addr: remote.ip(),
        remote_port: remote.port(),
        state,
        pid: owner.pid,
        process: owner.process,
        user: owner.user,
        inode: 0,
        service: service_of(local.port(), remote.port()),
        pids: Vec::new(),
        unit: None,
        container: None,
        runtime: None,
        traffic: None,
        info: None,
    }
}

/// The service of the lower registered port of the two ends.
fn service_of(a: u16, b: u16) -> Option<String> {
    let tcp = registry::Transport::Tcp;
    registry::service_name(a.min(b), tcp)
        .or_else(|| registry::service_name(a.max(b), tcp))
        .map(str::to_string)
}

/// How often the poller scans.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// Connection events from scans of the table.
#[derive(Default)]
pub struct Poller {
    /// Connections open at the last scan, by their two ends.
    open: HashMap<(SocketAddr, SocketAddr), Opened>,
    /// Those open before the first scan: their opening was not seen.
    before: std::collections::HashSet<(SocketAddr, SocketAddr)>,
    started: bool,
    users: process::Users,
}

impl Poller {
    fn next(&mut self, wait: Duration) -> Result<Vec<ConnEvent>, ReadError> {
        if self.started {
            std::thread::sleep(wait.min(POLL_EVERY));
        }
        let table = sockets::read_table(&TableQuery {
            udp: false,
            ..TableQuery::all()
        })?;
        let now = SystemTime::now();
        let live = |s: &&Socket| {
            !matches!(
                s.state,
                Some(TcpState::Listen | TcpState::TimeWait | TcpState::Close) | None
            )
        };
        let connected: Vec<&Socket> = table.sockets.iter().filter(live).collect();
        let new: Vec<&Socket> = connected
            .iter()
            .copied()
            .filter(|s| !self.open.contains_key(&(s.local, s.remote)))
            .collect();
        let owners = sockets::find_owners(new.iter().copied(), Scope::FirstOwner);
        let names = process::names(&owners.pids_of(new.iter().copied()));
        let listening: Vec<&Socket> = table
            .sockets
            .iter()
            .filter(|s| s.state == Some(TcpState::Listen))
            .collect();
        let mut events = Vec::new();
        // The first scan is what was open already: no events for it.
        let report = self.started;
        for s in &new {
            let pid = owners.of(s).first().copied();
            let owner = Owner {
                pid,
                process: pid.and_then(|p| names.get(&p).cloned()),
                user: s.uid.map(|uid| self.users.name(uid).to_string()),
            };
            let accepted = listening.iter().any(|l| {
                l.local.port() == s.local.port() && conflicts(l.local.ip(), l.v6only, s.local.ip())
            });
            self.open.insert(
                (s.local, s.remote),
                Opened {
                    at: now,
                    owner: owner.clone(),
                },
            );
            if !report {
                self.before.insert((s.local, s.remote));
            } else {
                events.push(ConnEvent {
                    kind: if accepted {
                        EventKind::Accept
                    } else {
                        EventKind::Connect
                    },
                    time: now,
                    source: Source::Poll,
                    socket: record(s.local, s.remote, s.state, owner),
                    duration: None,
                });
            }
        }
        let still: std::collections::HashSet<(SocketAddr, SocketAddr)> =
            connected.iter().map(|s| (s.local, s.remote)).collect();
        let closed: Vec<(SocketAddr, SocketAddr)> = self
            .open
            .keys()
            .filter(|k| !still.contains(k))
            .copied()
            .collect();
        for key in closed {
            let seen_open = !self.before.remove(&key);
            if let Some(o) = self.open.remove(&key) {
                events.push(ConnEvent {
                    kind: EventKind::Close,
                    time: now,
                    source: Source::Poll,
                    socket: record(key.0, key.1, Some(TcpState::Close), o.owner),
                    duration: seen_open.then(|| now.duration_since(o.at).ok()).flatten(),
                });
            }
        }
        self.started = true;
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(old: TcpState, new: TcpState, socket: u64, pid: u32, ms: u64) -> TcpChange {
        TcpChange {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            pid,
            tid: pid,
            socket,
            old: Some(old),
            new: Some(new),
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: "127.0.0.1:8080".parse().unwrap(),
        }
    }

    #[test]
    fn filters_keep_what_was_asked_for() {
        let e = ConnEvent {
            kind: EventKind::Connect,
            time: SystemTime::UNIX_EPOCH,
            source: Source::Kernel,
            socket: record(
                "127.0.0.1:40000".parse().unwrap(),
                "127.0.0.1:8080".parse().unwrap(),
                Some(TcpState::SynSent),
                Owner {
                    pid: Some(42),
                    process: Some("Client".into()),
                    user: None,
                },
            ),
            duration: None,
        };
        assert!(Filter::default().keeps(&e));
        let port = |p| Filter {
            port: Some(PortRange::single(p)),
            ..Filter::default()
        };
        assert!(port(8080).keeps(&e) && port(40000).keeps(&e) && !port(9).keeps(&e));
        let name = |n: &str| Filter {
            process: Some(n.into()),
            ..Filter::default()
        };
        assert!(name("cli").keeps(&e) && !name("server").keeps(&e));
        assert!(!Filter {
            ipv6: true,
            ..Filter::default()
        }
        .keeps(&e));
        assert!(!Filter {
            pid: Some(7),
            ..Filter::default()
        }
        .keeps(&e));
    }

    #[test]
    fn services_come_from_the_lower_registered_port() {
        assert_eq!(service_of(51234, 443).as_deref(), Some("https"));
        assert_eq!(service_of(22, 51234).as_deref(), Some("ssh"));
    }

    #[test]
    fn connects_accepts_and_closes_pair_by_the_kernels_socket() {
        let mut f = Tracker {
            listeners_read: Some(Instant::now()),
            ..Tracker::default()
        };
        let named = KernelRecord::Named {
            pid: 42,
            name: "client".into(),
        };
        let mut accepted = change(TcpState::SynRecv, TcpState::Established, 2, 0, 1001);
        accepted.local = "127.0.0.1:8080".parse().unwrap();
        let mut listen = change(TcpState::Close, TcpState::Listen, 3, 7, 999);
        listen.local = "0.0.0.0:8080".parse().unwrap();
        f.names.insert(7, "server".into());
        f.users.insert(7, Some("www".into()));
        f.users.insert(42, Some("alice".into()));
        let events = f.take(vec![
            named,
            KernelRecord::Change(listen),
            KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 1, 42, 1000)),
            KernelRecord::Change(accepted),
            KernelRecord::Change(change(
                TcpState::SynSent,
                TcpState::Established,
                1,
                42,
                1001,
            )),
            KernelRecord::Change(change(TcpState::FinWait2, TcpState::Close, 1, 0, 1003)),
            // A socket whose opening was not seen closes unseen.
            KernelRecord::Change(change(TcpState::Established, TcpState::Close, 9, 0, 1004)),
            KernelRecord::Lost(3),
            KernelRecord::Exited { pid: 42 },
        ]);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Accept, EventKind::Connect, EventKind::Close]
        );
        let (accept, connect, close) = (&events[0], &events[1], &events[2]);
        assert_eq!(
            connect.time,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1000),
            "a connect is when connect(2) ran"
        );
        assert_eq!(
            (connect.socket.pid, connect.socket.process.as_deref()),
            (Some(42), Some("client"))
        );
        assert_eq!(connect.socket.state, Some(TcpState::SynSent));
        assert_eq!(
            (accept.socket.pid, accept.socket.process.as_deref()),
            (Some(7), Some("server")),
            "an accept is the listener's owner's, whatever ran the handshake"
        );
        assert_eq!(close.socket.pid, Some(42), "a close is the opener's");
        assert_eq!(
            (
                connect.socket.user.as_deref(),
                accept.socket.user.as_deref()
            ),
            (Some("alice"), Some("www"))
        );
        assert_eq!(close.duration, Some(Duration::from_millis(3)));
        assert_eq!(f.lost, 3);
        assert!(
            !f.names.contains_key(&42),
            "an exited process's name is forgotten"
        );
        // A refused connect: its connect, then its close.
        let refused = f.take(vec![
            KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 5, 43, 2000)),
            KernelRecord::Change(change(TcpState::SynSent, TcpState::Close, 5, 0, 2001)),
        ]);
        let kinds: Vec<EventKind> = refused.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Connect, EventKind::Close]);
    }
}
