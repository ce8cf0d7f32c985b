//! Every TCP connection as it opens and closes, with the process behind
//! it: from the kernel's own record of state changes where portctl may
//! read it (`Source::Kernel`), else from scans of the table (`Poll`),
//! which can miss a connection that lives between two scans.
//!
//! From the kernel's record: a `connect` is a socket going from CLOSE to
//! SYN_SENT, in the context of the process that called `connect` (its
//! thread group and name as the kernel had them), told once its next
//! change brings the local port or, as to a peer that drops SYNs, half a
//! second later with the port the table shows; an `accept` is a socket
//! going from SYN_RECV to ESTABLISHED, which the network does in softirq,
//! so it is the listener's owner's; a `close` is the change to CLOSE,
//! matched by the socket's kernel address to its opening for the
//! duration.

use crate::facts::process;
use crate::facts::socket_record::SocketRecord;
use crate::facts::sockets;
use crate::facts::{bind::conflicts, bind::fit, registry};
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

    /// The events still on their way at the end: everything the kernel
    /// recorded up to now, none held back.
    pub fn rest(&mut self) -> Vec<ConnEvent> {
        match self {
            Connections::Kernel(k) => {
                let records = k.changes.rest();
                k.tracker.take(records);
                k.tracker.hand_out(Waited::All)
            }
            Connections::Poll(_) => Vec::new(),
        }
    }

    /// Records the kernel dropped so far (a ring full).
    pub fn lost(&self) -> u64 {
        match self {
            // The kernel's own count where it keeps one: LOST records come
            // only once there is room again, so the last drops have none.
            Connections::Kernel(k) => k.changes.lost().unwrap_or(0).max(k.tracker.lost),
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

/// How long a connect waits for the local port the kernel picks after it
/// (the handshake's next change brings it): past this, as to a peer that
/// drops SYNs, it is told with the port the table shows, if any.
const CONNECT_WAIT: Duration = Duration::from_millis(500);

/// Which waiting connects to hand out.
#[derive(Debug, Clone, Copy)]
enum Waited {
    /// Those that waited `CONNECT_WAIT` by the record's time: every
    /// change up to this time has been taken.
    Until(SystemTime),
    /// All of them: the record ends.
    All,
}

/// An event on its way out. A connect waits for its local port; what
/// came after it waits behind it, so events keep their order in time.
#[derive(Debug)]
struct Queued {
    event: ConnEvent,
    /// The socket whose next change brings the local port.
    awaiting: Option<u64>,
    /// An accept on an address listened on here and in another network
    /// namespace: the socket, and this namespace's listener's owner, whose
    /// it is if this namespace's table has the connection.
    unsure: Option<(u64, Owner)>,
    /// An accept whose listener the tables, read again, will name.
    unowned: Option<u64>,
}

impl Queued {
    /// An event ready to go as it is.
    fn ready(event: ConnEvent) -> Queued {
        Queued {
            event,
            awaiting: None,
            unsure: None,
            unowned: None,
        }
    }

    /// This accept's (or connect's) process is `owner`, and so is its
    /// close's, kept with the opening in `opened`.
    fn owned_by(&mut self, socket: u64, owner: Owner, opened: &mut HashMap<u64, Opened>) {
        let s = &self.event.socket;
        self.event.socket = record(s.local(), s.remote(), s.state, owner.clone());
        if let Some(opened) = opened.get_mut(&socket) {
            opened.owner = owner;
        }
    }
}

/// Who took a connection, as far as the listeners tell.
enum Taker {
    Known(Owner),
    /// Listeners here and elsewhere (or several elsewhere) cover it; the
    /// owner of the one here, if any.
    Unsure(Option<Owner>),
}

/// How often the listeners' owners may be read from the table again.
const LISTENERS_FRESH: Duration = Duration::from_secs(1);

/// Turns the kernel's record into connection events.
pub struct KernelFollower {
    changes: TcpChanges,
    tracker: Tracker,
}

/// What the record has said so far: names, open sockets, listeners.
/// A process's user as far as it is known.
#[derive(Debug, Clone, Default)]
struct KnownUser {
    name: Option<String>,
    /// Read from the process itself since its last exec (which may change
    /// it); otherwise its parent's.
    read: bool,
}

#[derive(Default)]
struct Tracker {
    /// Each process's name as the kernel last gave it.
    names: HashMap<u32, String>,
    /// Each process's user (the record has none): read from the process
    /// when the record began, else inherited from its parent at fork, or
    /// read at its first connection; `None` for one gone before that.
    users: HashMap<u32, KnownUser>,
    user_names: process::Users,
    opened: HashMap<u64, Opened>,
    /// Each listening address's owner and whether it is IPv6 only, from
    /// this network namespace's table (the record tells of every
    /// namespace's listeners, with no word of which).
    listeners: HashMap<SocketAddr, (Owner, Option<bool>)>,
    /// Other network namespaces' listeners and their owners.
    elsewhere: Vec<(SocketAddr, Owner)>,
    /// Listeners as listen(2) made them, by their callers, since the
    /// record began (`learn_listener`).
    learned: HashMap<SocketAddr, Owner>,
    listeners_read: Option<Instant>,
    /// A listener opened or its owner exited since the table was read.
    listeners_stale: bool,
    /// Sockets in a simultaneous open (connecting to themselves): their
    /// SYN_RECV → ESTABLISHED is no accept.
    simultaneous: std::collections::HashSet<u64>,
    lost: u64,
    queue: std::collections::VecDeque<Queued>,
    /// Connects told with the port the table showed while they still
    /// waited for an answer, until their next change.
    told_waiting: HashMap<u64, SocketAddr>,
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
        self.tracker.take(records);
        Ok(self
            .tracker
            .hand_out(Waited::Until(self.changes.caught_up())))
    }
}

impl Tracker {
    /// Takes in `records`: the events they make wait in the queue.
    fn take(&mut self, records: Vec<KernelRecord>) {
        for record in records {
            match record {
                KernelRecord::Change(c) => self.change(c),
                KernelRecord::Running { pid, name, uid } => {
                    self.names.insert(pid, name);
                    let name = uid.map(|uid| self.user_names.name(uid).to_string());
                    self.remember_user(pid, KnownUser { name, read: true });
                }
                KernelRecord::Forked { pid, parent } => {
                    if let Some(name) = self.names.get(&parent).cloned() {
                        self.names.insert(pid, name);
                    }
                    if let Some(user) = self.users.get(&parent).cloned() {
                        self.remember_user(pid, user);
                    }
                }
                KernelRecord::Named { pid, name } => {
                    self.names.insert(pid, name);
                    // An exec may change the user (a set-uid program).
                    if let Some(user) = self.users.get_mut(&pid) {
                        user.read = false;
                    }
                }
                KernelRecord::Exited { pid } => {
                    self.names.remove(&pid);
                    self.users.remove(&pid);
                    let before = self.listeners.len();
                    self.listeners
                        .retain(|_, (owner, _)| owner.pid != Some(pid));
                    self.elsewhere.retain(|(_, owner)| owner.pid != Some(pid));
                    self.listeners_stale |= self.listeners.len() != before;
                }
                KernelRecord::Lost(n) => self.lost = self.lost.saturating_add(n),
            }
        }
    }

    /// The events ready to go, in order: all up to the first connect
    /// still waiting for its port, once those waited long enough have
    /// been given the port the table shows.
    fn hand_out(&mut self, waited: Waited) -> Vec<ConnEvent> {
        let overdue = |q: &Queued| match waited {
            Waited::All => true,
            Waited::Until(now) => now
                .duration_since(q.event.time)
                .is_ok_and(|d| d >= CONNECT_WAIT),
        };
        if self
            .queue
            .iter()
            .any(|q| q.awaiting.is_some() && overdue(q))
        {
            self.ports_from_the_table(overdue);
        }
        if self.queue.iter().any(|q| q.unowned.is_some()) {
            self.owners_from_the_tables();
        }
        if self.queue.iter().any(|q| q.unsure.is_some()) {
            self.confirm_accepts();
        }
        let ready = self
            .queue
            .iter()
            .position(|q| q.awaiting.is_some())
            .unwrap_or(self.queue.len());
        self.queue.drain(..ready).map(|q| q.event).collect()
    }

    /// Gives each overdue connect the local port of the one connecting
    /// socket in the table with its two addresses, where there is one,
    /// and lets it go.
    fn ports_from_the_table(&mut self, overdue: impl Fn(&Queued) -> bool) {
        let query = TableQuery {
            udp: false,
            tcp_states: Some(vec![TcpState::SynSent]),
            ..TableQuery::all()
        };
        let table = sockets::read_table(&query)
            .map(|t| t.sockets)
            .unwrap_or_default();
        // Ports already told: connects in the queue, and those told while
        // still connecting (a client that retries leaves several).
        let mut taken: std::collections::HashSet<SocketAddr> = self
            .queue
            .iter()
            .filter(|q| q.awaiting.is_none() && q.event.kind == EventKind::Connect)
            .map(|q| q.event.socket.local())
            .chain(self.told_waiting.values().copied())
            .collect();
        let mut owners: Option<platform::Owners> = None;
        for q in self.queue.iter_mut().filter(|q| q.awaiting.is_some()) {
            if !overdue(q) {
                continue;
            }
            let Some(socket) = q.awaiting.take() else {
                continue;
            };
            let s = &q.event.socket;
            let (local, remote) = (s.local(), s.remote());
            let candidates: Vec<&Socket> = table
                .iter()
                .filter(|t| {
                    t.remote == remote
                        && (local.ip().is_unspecified() || t.local.ip() == local.ip())
                        && !taken.contains(&t.local)
                })
                .collect();
            // Several to one place: the one its process holds, if only one.
            let mine: Vec<&Socket> = match candidates.as_slice() {
                [_, _, ..] => {
                    let owners =
                        owners.get_or_insert_with(|| sockets::find_owners(&table, Scope::Every));
                    candidates
                        .into_iter()
                        .filter(|t| s.pid.is_some_and(|pid| owners.of(t).contains(&pid)))
                        .collect()
                }
                _ => candidates,
            };
            if let [only] = mine.as_slice() {
                taken.insert(only.local);
                if self.told_waiting.len() < OPEN_MAX {
                    self.told_waiting.insert(socket, only.local);
                }
                q.event.socket = record(only.local, remote, s.state, owner_of(s));
            }
        }
    }

    /// Reads the tables again and gives each accept waiting for them its
    /// listener's owner.
    fn owners_from_the_tables(&mut self) {
        self.listeners_read = Some(Instant::now());
        self.listeners_stale = false;
        self.read_listeners();
        let mut queue = std::mem::take(&mut self.queue);
        for q in queue.iter_mut() {
            if let Some(socket) = q.unowned.take() {
                let local = q.event.socket.local();
                if let Some(taker) = self.taker(local).or_else(|| self.learned_taker(local)) {
                    self.give_owner(q, socket, taker);
                }
            }
        }
        self.queue = queue;
    }

    /// Gives a queued accept of `socket` what `taker` says of its owner.
    fn give_owner(&mut self, q: &mut Queued, socket: u64, taker: Taker) {
        match taker {
            // Named as it is now: a listener's owner may have exec'd
            // since (`free --exec`, a wrapper script).
            Taker::Known(owner) => {
                let owner = self.refreshed(owner);
                q.owned_by(socket, owner, &mut self.opened);
            }
            Taker::Unsure(Some(here)) => q.unsure = Some((socket, here)),
            Taker::Unsure(None) => {}
        }
    }

    /// Each unsure accept is this namespace's listener's when this
    /// namespace's table has its connection (one read for all); else it
    /// stays without an owner (elsewhere, or closed already).
    fn confirm_accepts(&mut self) {
        let query = TableQuery {
            udp: false,
            ..TableQuery::all()
        };
        let here: std::collections::HashSet<(SocketAddr, SocketAddr)> = sockets::read_table(&query)
            .map(|t| t.sockets.iter().map(|s| (s.local, s.remote)).collect())
            .unwrap_or_default();
        for q in self.queue.iter_mut() {
            let Some((socket, owner)) = q.unsure.take() else {
                continue;
            };
            let s = &q.event.socket;
            if here.contains(&(s.local(), s.remote())) {
                q.owned_by(socket, owner, &mut self.opened);
            }
        }
    }

    fn push(&mut self, event: ConnEvent) {
        self.queue.push_back(Queued::ready(event));
    }

    /// Gives the connect waiting for `c`'s socket its port and lets it
    /// go; nothing when it went out already, or was not seen.
    fn arrived(&mut self, c: &TcpChange) {
        self.told_waiting.remove(&c.socket);
        if let Some(q) = self
            .queue
            .iter_mut()
            .rev()
            .find(|q| q.awaiting == Some(c.socket))
        {
            q.awaiting = None;
            let s = &q.event.socket;
            q.event.socket = record(c.local, c.remote, s.state, owner_of(s));
        }
    }

    fn change(&mut self, c: TcpChange) {
        use TcpState::{Close, Established, Listen, SynRecv, SynSent};
        let (Some(old), Some(new)) = (c.old, c.new) else {
            return;
        };
        match (old, new) {
            // connect(2): the caller is the process, but the kernel picks
            // the local port only after this change. The event waits for
            // the socket's next change, which carries the port, and what
            // follows waits behind it (`hand_out`).
            (Close, SynSent) => {
                let owner = self.owner(c.pid);
                self.remember(c.socket, c.time, owner.clone());
                let mut connect = event(EventKind::Connect, &c, &owner, None);
                connect.socket.state = Some(SynSent);
                self.queue.push_back(Queued {
                    awaiting: Some(c.socket),
                    ..Queued::ready(connect)
                });
            }
            // The handshake finished, or failed (refused, timed out).
            (SynSent, new @ (Established | Close)) => {
                self.arrived(&c);
                if new == Close {
                    // Its close follows, as for any connection.
                    if let Some(close) = self.close(&c) {
                        self.push(close);
                    }
                }
            }
            // A new listener, maybe in another network namespace: its
            // owner is read from the tables when a connection arrives.
            // What listen(2) said is kept for one gone by then.
            (_, Listen) => {
                self.listeners_stale = true;
                self.learn_listener(&c);
            }
            // What listen(2) said is kept: an accept taken just before
            // the close may be resolved after it (`owners_from_the_tables`);
            // the next listen(2) at the address replaces it.
            (Listen, Close) => self.listeners_stale = true,
            // A simultaneous open, or a socket connecting to itself: its
            // connect, by the process that called it.
            (SynSent, SynRecv) => {
                if self.simultaneous.len() < OPEN_MAX {
                    self.simultaneous.insert(c.socket);
                }
                self.arrived(&c);
            }
            // ... whose handshake then ends as no accept.
            (SynRecv, Established) if self.simultaneous.remove(&c.socket) => {}
            (SynRecv, Established) => {
                let accept = event(EventKind::Accept, &c, &Owner::default(), None);
                self.remember(c.socket, c.time, Owner::default());
                let mut queued = Queued::ready(accept);
                match self.known_taker(c.local) {
                    Some(Some(taker)) => self.give_owner(&mut queued, c.socket, taker),
                    Some(None) => {}
                    // The tables are read once for all such accepts of a
                    // batch (`owners_from_the_tables`), not once each.
                    None => queued.unowned = Some(c.socket),
                }
                self.queue.push_back(queued);
            }
            (_, Close) => {
                if let Some(close) = self.close(&c) {
                    self.push(close);
                }
            }
            _ => {}
        }
    }

    /// The close of a socket whose opening was seen, with its duration.
    fn close(&mut self, c: &TcpChange) -> Option<ConnEvent> {
        self.simultaneous.remove(&c.socket);
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

    /// `owner` with the name and user its process has now, as the record
    /// tells them.
    fn refreshed(&mut self, owner: Owner) -> Owner {
        match owner.pid {
            Some(pid) if self.names.contains_key(&pid) => self.owner(pid),
            _ => owner,
        }
    }

    /// Process `pid` with its name and user.
    fn owner(&mut self, pid: u32) -> Owner {
        Owner {
            pid: Some(pid),
            process: self.name(pid),
            user: self.user(pid),
        }
    }

    /// The user process `pid` runs as: read from it where not read since
    /// its last exec (and kept), else as inherited.
    fn user(&mut self, pid: u32) -> Option<String> {
        let known = self.users.get(&pid).cloned().unwrap_or_default();
        if known.read {
            return known.name;
        }
        let Some(uid) = platform::process_uid(pid) else {
            return known.name; // gone: its parent's, where known
        };
        let name = Some(self.user_names.name(uid).to_string());
        self.remember_user(
            pid,
            KnownUser {
                name: name.clone(),
                read: true,
            },
        );
        name
    }

    /// Keeps `pid`'s user; bounded like the open sockets (past the bound
    /// the cache starts again).
    fn remember_user(&mut self, pid: u32, user: KnownUser) {
        if self.users.len() >= OPEN_MAX {
            self.users.clear();
        }
        self.users.insert(pid, user);
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
    /// same address, else a wildcard that covers it (its own family's
    /// first; an IPv6-only one never covers IPv4), as the tables have it
    /// (whoever holds it now). The record names no network namespace:
    /// where another namespace listens there too, which took it is not
    /// known, and no owner is given. A listener the tables no longer have
    /// (it lived a millisecond) is the one listen(2) named. `None` when
    /// the tables must be read again first.
    fn known_taker(&self, local: SocketAddr) -> Option<Option<Taker>> {
        if self.listeners_stale {
            return None;
        }
        if let Some(found) = self.taker(local) {
            return Some(Some(found));
        }
        let fresh = self
            .listeners_read
            .is_some_and(|at| at.elapsed() < LISTENERS_FRESH);
        fresh.then(|| self.learned_taker(local))
    }

    /// `None`: no listener known covers `local`.
    fn taker(&self, local: SocketAddr) -> Option<Taker> {
        let here = self
            .listeners
            .iter()
            .filter(|(at, _)| at.port() == local.port())
            .filter_map(|(at, (owner, v6only))| Some((fit(at.ip(), *v6only, local.ip())?, owner)))
            .min_by_key(|(fit, _)| *fit)
            .map(|(_, owner)| owner);
        let there: Vec<&Owner> = self
            .elsewhere
            .iter()
            .filter(|(at, _)| at.port() == local.port() && fit(at.ip(), None, local.ip()).is_some())
            .map(|(_, owner)| owner)
            .collect();
        match (here, there.as_slice()) {
            (None, []) => None,
            (Some(owner), []) => Some(Taker::Known(owner.clone())),
            (None, [first, rest @ ..]) if rest.iter().all(|o| o.pid == first.pid) => {
                Some(Taker::Known((*first).clone()))
            }
            (here, _) => Some(Taker::Unsure(here.cloned())),
        }
    }

    /// A listener as listen(2) made it, owned by its caller: believed
    /// only where the tables, read later, have no listener for an accept
    /// (one that lived a millisecond). The tables come first: a listener
    /// changes hands (fork, SCM_RIGHTS), and one older than the trace may
    /// cover the same address better.
    fn learn_listener(&mut self, c: &TcpChange) {
        if self.learned.len() >= OPEN_MAX {
            self.learned.clear();
        }
        let owner = self.owner(c.pid);
        self.learned.insert(c.local, owner);
    }

    /// The owner of the learned listener that covers `local`, if one
    /// alone does.
    fn learned_taker(&self, local: SocketAddr) -> Option<Taker> {
        let mut covering = self.learned.iter().filter(|(at, _)| {
            at.port() == local.port() && fit(at.ip(), None, local.ip()).is_some()
        });
        match (covering.next(), covering.next()) {
            (Some((_, owner)), None) => Some(Taker::Known(owner.clone())),
            (Some(_), Some(_)) => Some(Taker::Unsure(None)),
            _ => None,
        }
    }

    /// Every TCP listener's owner, from this namespace's table and the
    /// other namespaces' (`platform::listeners_elsewhere`).
    fn read_listeners(&mut self) {
        let query = TableQuery {
            udp: false,
            tcp_states: Some(vec![TcpState::Listen]),
            ..TableQuery::all()
        };
        let Ok(table) = sockets::read_table(&query) else {
            return;
        };
        let elsewhere = platform::listeners_elsewhere();
        let all = || table.sockets.iter().chain(&elsewhere);
        let owners = sockets::find_owners(all(), Scope::FirstOwner);
        let names = process::names(&owners.pids_of(all()));
        let mut owner = |s: &Socket| {
            let pid = owners.of(s).first().copied();
            Owner {
                pid,
                process: pid.and_then(|pid| names.get(&pid).cloned()),
                user: s.uid.map(|uid| self.user_names.name(uid).to_string()),
            }
        };
        let here = table
            .sockets
            .iter()
            .map(|s| (s.local, (owner(s), s.v6only)))
            .collect();
        let there = elsewhere.iter().map(|s| (s.local, owner(s))).collect();
        self.listeners = here;
        self.elsewhere = there;
    }
}

/// The process a record names, as an owner.
fn owner_of(s: &SocketRecord) -> Owner {
    Owner {
        pid: s.pid,
        process: s.process.clone(),
        user: s.user.clone(),
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

    /// The events `records` make that are ready: those before a connect
    /// that still waits for its port, by the record's time.
    fn taken(f: &mut Tracker, records: Vec<KernelRecord>) -> Vec<ConnEvent> {
        f.take(records);
        f.hand_out(Waited::Until(SystemTime::UNIX_EPOCH))
    }

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
    fn forks_inherit_and_a_self_connect_is_a_connect() {
        const PARENT: u32 = 99_999_900;
        const CHILD: u32 = 99_999_901;
        let mut f = Tracker {
            listeners_read: Some(Instant::now()),
            ..Tracker::default()
        };
        let mut own = change(TcpState::SynSent, TcpState::SynRecv, 5, 0, 2001);
        own.local = own.remote;
        let mut established = own.clone();
        established.old = Some(TcpState::SynRecv);
        established.new = Some(TcpState::Established);
        let events = taken(
            &mut f,
            vec![
                KernelRecord::Running {
                    pid: PARENT,
                    name: "bash".into(),
                    uid: Some(0),
                },
                KernelRecord::Forked {
                    pid: CHILD,
                    parent: PARENT,
                },
                KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 5, CHILD, 2000)),
                KernelRecord::Change(own),
                KernelRecord::Change(established),
            ],
        );
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Connect], "no accept for a self-connect");
        let connect = &events[0].socket;
        assert_eq!(connect.pid, Some(CHILD));
        assert_eq!(
            connect.process.as_deref(),
            Some("bash"),
            "a fork's name is its parent's"
        );
        let root = process::Users::default().name(0).to_string();
        assert_eq!(connect.user.as_deref(), Some(root.as_str()), "and its user");
    }

    #[test]
    fn accepts_go_to_the_listener_that_covers_the_address() {
        let owner = |pid: u32| Owner {
            pid: Some(pid),
            process: Some(format!("p{pid}")),
            user: None,
        };
        let mut f = Tracker {
            listeners_read: Some(Instant::now()),
            ..Tracker::default()
        };
        // nginx's layout: 0.0.0.0:80 and an IPv6-only [::]:80.
        f.listeners
            .insert("[::]:80".parse().unwrap(), (owner(6), Some(true)));
        f.listeners
            .insert("0.0.0.0:80".parse().unwrap(), (owner(4), Some(false)));
        f.listeners
            .insert("127.0.0.1:80".parse().unwrap(), (owner(1), Some(false)));
        let pid = |f: &mut Tracker, at: &str| match f.known_taker(at.parse().unwrap()) {
            Some(Some(Taker::Known(owner))) => owner.pid,
            _ => None,
        };
        assert_eq!(
            pid(&mut f, "127.0.0.1:80"),
            Some(1),
            "the same address first"
        );
        assert_eq!(
            pid(&mut f, "10.0.0.1:80"),
            Some(4),
            "an IPv6-only one never takes IPv4"
        );
        assert_eq!(pid(&mut f, "[::1]:80"), Some(6));
        // Another network namespace listens on the port too: the record
        // does not say which took it. Where only it listens, it did.
        f.elsewhere.push(("0.0.0.0:80".parse().unwrap(), owner(9)));
        f.elsewhere
            .push(("127.0.0.1:81".parse().unwrap(), owner(8)));
        assert_eq!(pid(&mut f, "127.0.0.1:80"), None, "ambiguous");
        assert_eq!(pid(&mut f, "127.0.0.1:81"), Some(8));
        assert_eq!(pid(&mut f, "127.0.0.2:81"), None, "not its address");
        f.elsewhere.clear();
        // Its owner exits: it is not believed any more.
        f.take(vec![KernelRecord::Exited { pid: 4 }]);
        assert!(f.listeners_stale);
        assert!(!f.listeners.contains_key(&"0.0.0.0:80".parse().unwrap()));
    }

    #[test]
    fn connects_accepts_and_closes_pair_by_the_kernels_socket() {
        // A PID above any pid_max: no process to read, so what the record
        // said is what counts.
        const GONE: u32 = 99_999_942;
        let mut f = Tracker {
            listeners_read: Some(Instant::now()),
            ..Tracker::default()
        };
        let named = KernelRecord::Named {
            pid: GONE,
            name: "client".into(),
        };
        let mut accepted = change(TcpState::SynRecv, TcpState::Established, 2, 0, 1001);
        accepted.local = "127.0.0.1:8080".parse().unwrap();
        // The listener as this namespace's table has it.
        f.listeners.insert(
            "0.0.0.0:8080".parse().unwrap(),
            (
                Owner {
                    pid: Some(7),
                    process: Some("server".into()),
                    user: Some("www".into()),
                },
                None,
            ),
        );
        let user = |name: &str| KnownUser {
            name: Some(name.into()),
            read: true,
        };
        f.users.insert(7, user("www"));
        f.users.insert(GONE, user("alice"));
        let events = taken(
            &mut f,
            vec![
                named,
                KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 1, GONE, 1000)),
                KernelRecord::Change(accepted),
                KernelRecord::Change(change(
                    TcpState::SynSent,
                    TcpState::Established,
                    1,
                    GONE,
                    1001,
                )),
                KernelRecord::Change(change(TcpState::FinWait2, TcpState::Close, 1, 0, 1003)),
                // A socket whose opening was not seen closes unseen.
                KernelRecord::Change(change(TcpState::Established, TcpState::Close, 9, 0, 1004)),
                KernelRecord::Lost(3),
                KernelRecord::Exited { pid: GONE },
            ],
        );
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Connect, EventKind::Accept, EventKind::Close],
            "in the order of their times"
        );
        let (connect, accept, close) = (&events[0], &events[1], &events[2]);
        assert_eq!(
            connect.socket.local_port, 40000,
            "the port its next change gave"
        );
        assert_eq!(
            connect.time,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1000),
            "a connect is when connect(2) ran"
        );
        assert_eq!(
            (connect.socket.pid, connect.socket.process.as_deref()),
            (Some(GONE), Some("client"))
        );
        assert_eq!(connect.socket.state, Some(TcpState::SynSent));
        assert_eq!(
            (accept.socket.pid, accept.socket.process.as_deref()),
            (Some(7), Some("server")),
            "an accept is the listener's owner's, whatever ran the handshake"
        );
        assert_eq!(close.socket.pid, Some(GONE), "a close is the opener's");
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
            !f.names.contains_key(&GONE),
            "an exited process's name is forgotten"
        );
        // A refused connect: its connect, then its close.
        let refused = taken(
            &mut f,
            vec![
                KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 5, 43, 2000)),
                KernelRecord::Change(change(TcpState::SynSent, TcpState::Close, 5, 0, 2001)),
            ],
        );
        let kinds: Vec<EventKind> = refused.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Connect, EventKind::Close]);
    }

    #[test]
    fn a_waiting_connect_holds_back_what_follows_until_it_is_told() {
        let mut f = Tracker {
            listeners_read: Some(Instant::now()),
            ..Tracker::default()
        };
        let at = |ms| Waited::Until(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let mut waiting = change(TcpState::Close, TcpState::SynSent, 1, 42, 1000);
        // The kernel has not picked the port yet, nor (here) the address.
        waiting.local = "0.0.0.0:0".parse().unwrap();
        waiting.remote = "192.0.2.1:9".parse().unwrap();
        f.take(vec![
            KernelRecord::Change(waiting),
            KernelRecord::Change(change(TcpState::Close, TcpState::SynSent, 2, 43, 1001)),
            KernelRecord::Change(change(TcpState::SynSent, TcpState::Close, 2, 0, 1002)),
        ]);
        assert!(f.hand_out(at(1400)).is_empty(), "all wait behind the first");
        let events = f.hand_out(at(1500));
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Connect, EventKind::Connect, EventKind::Close]
        );
        assert_eq!(
            (events[0].socket.pid, events[0].socket.remote_port),
            (Some(42), 9)
        );
        // Its handshake ends later: no second connect.
        f.take(vec![KernelRecord::Change(change(
            TcpState::SynSent,
            TcpState::Close,
            1,
            0,
            3000,
        ))]);
        let kinds: Vec<EventKind> = f.hand_out(Waited::All).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Close]);
    }
}
