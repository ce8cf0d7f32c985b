//! `portctl list`: the socket table with owners, filtered and printed.

use crate::cli::ListArgs;
use crate::exit::{Exit, Result};
use crate::facts::connections::{Connections, EventKind, Source};
use crate::facts::process;
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets::{self, summarize};
use crate::model::{Family, Proto, Socket, TcpState};
use crate::output::rows::{columns, row, Shape};
use crate::output::{self, words, write_array, Cell, Column, Format, Output, Style};
use crate::platform::TableQuery;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The table query the flags allow the kernel to filter by.
pub fn table_query(args: &ListArgs) -> TableQuery {
    let listening_only = args.listening && args.state.is_empty();
    TableQuery {
        tcp: args.transport.wants_tcp(),
        // UDP has no state: `--state` is about TCP alone.
        udp: args.transport.wants_udp() && args.state.is_empty(),
        ipv4: args.ipv4 || !args.ipv6,
        ipv6: args.ipv6 || !args.ipv4,
        tcp_states: if listening_only {
            Some(vec![TcpState::Listen])
        } else if args.state.is_empty() {
            None
        } else {
            Some(args.state.clone())
        },
        bound_inactive: false,
        traffic: args.info,
    }
}

/// Filters that need only the socket itself.
fn keep_socket(args: &ListArgs, socket: &Socket) -> bool {
    (!args.listening || socket.is_listening())
        && args.port.is_none_or(|range| {
            range.contains(socket.local.port()) || range.contains(socket.remote.port())
        })
}

/// Reads the table, applies every filter, and finds owners and names.
pub fn snapshot(args: &ListArgs) -> Result<Snapshot> {
    let (mut table, owners) = sockets::read_table_with_owners(&table_query(args))?;
    let mut kept = std::mem::take(&mut table.sockets);
    kept.retain(|s| keep_socket(args, s));
    let names = process::names(&owners.pids_of(&kept));
    let process_filter = args.process.as_ref().map(|p| p.to_lowercase());
    if args.pid.is_some() || process_filter.is_some() {
        kept.retain(|s| {
            let pids = owners.of(s);
            args.pid.is_none_or(|want| pids.contains(&want))
                && process_filter.as_ref().is_none_or(|want| {
                    pids.iter().any(|p| {
                        names
                            .get(p)
                            .is_some_and(|n| n.to_lowercase().contains(want.as_str()))
                    })
                })
        });
    }
    kept.sort_unstable_by(|a, b| {
        (a.proto, a.family(), a.local.port(), a.local.ip(), a.remote).cmp(&(
            b.proto,
            b.family(),
            b.local.port(),
            b.local.ip(),
            b.remote,
        ))
    });
    Ok(Snapshot {
        sockets: kept,
        owners,
        names,
    })
}

/// The columns `list`'s flags ask for.
fn shape(args: &ListArgs) -> Shape {
    Shape {
        wide: args.wide,
        info: args.info,
        rates: false,
    }
}

/// What each record needs looked up: units and containers for JSON and
/// `-w`, the counters' fields for `--info`.
fn lookups_for(args: &ListArgs, output: Output) -> Lookups {
    let mut lookups = Lookups::new(output.is_json() || args.wide);
    lookups.info = args.info;
    lookups
}

pub fn run(args: &ListArgs, output: Output) -> Result<Exit> {
    if args.summary {
        return summary(args, output);
    }
    if let Some(every) = args.watch {
        return watch(args, every, output);
    }
    let snapshot = snapshot(args)?;
    if snapshot.owners.hidden && snapshot.unowned() > 0 {
        output::hint(&words::unowned_hint(snapshot.unowned()));
    }
    let mut lookups = lookups_for(args, output);
    let stdout = io::stdout().lock();
    let printed = match output.format {
        Format::Json => write_array(
            stdout,
            snapshot
                .sockets
                .iter()
                .map(|socket| snapshot.record(socket, &mut lookups)),
        ),
        _ => {
            let out = io::BufWriter::with_capacity(64 * 1024, stdout);
            write_text(out, output, &snapshot, &mut lookups, shape(args))
        }
    };
    output::deliver(Exit::Ok, printed)
}

/// Counts by transport and state. Needs no owners unless `--pid` or
/// `--process` asks for them, so it costs one netlink dump.
fn summary(args: &ListArgs, output: Output) -> Result<Exit> {
    let sockets = if args.pid.is_some() || args.process.is_some() {
        snapshot(args)?.sockets
    } else {
        let mut sockets = sockets::read_table(&table_query(args))?.sockets;
        sockets.retain(|s| keep_socket(args, s));
        sockets
    };
    let rows = summarize(&sockets);
    let stdout = io::stdout().lock();
    if output.is_json() {
        return output::deliver(Exit::Ok, write_array(stdout, &rows));
    }
    output::deliver(
        Exit::Ok,
        write_summary(stdout, output, &rows, sockets.len()),
    )
}

fn write_summary<W: Write>(
    out: W,
    output: Output,
    rows: &[sockets::SummaryRow],
    total: usize,
) -> io::Result<()> {
    const SUMMARY: [Column; 3] = [
        Column::new("PROTO", 5),
        Column::new("STATE", 11),
        Column::new("COUNT", 0),
    ];
    let mut table = output.table(out, &SUMMARY);
    for row in rows {
        table.push(vec![
            Cell::new(row.proto.as_str()),
            Cell::new(row.state.map_or("-", words::state)),
            Cell::new(row.count.to_string()),
        ])?;
    }
    table.push(vec![
        Cell::new("all"),
        Cell::new("-"),
        Cell::styled(total.to_string(), Style::Bold),
    ])?;
    table.finish()
}

/// What happened to a socket between two scans of `list --watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchEventKind {
    /// Gone since the last scan.
    Close,
    /// New since the last scan (the first scan counts as new).
    Open,
    /// Still there, in another TCP state (ESTABLISHED → CLOSE_WAIT).
    Change,
}

impl WatchEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventKind::Close => "close",
            WatchEventKind::Open => "open",
            WatchEventKind::Change => "change",
        }
    }
}

/// One line of `list --watch --json`: a socket that opened, closed or
/// changed state, with its fields as they are now (as they were, for a
/// close).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchEvent {
    pub event: WatchEventKind,
    #[serde(flatten)]
    pub socket: SocketRecord,
}

/// A socket's identity across scans; its state may change, it stays the
/// same socket.
type SocketKey = (Proto, SocketAddr, SocketAddr, u64);

fn key(s: &SocketRecord) -> SocketKey {
    (s.proto, s.local(), s.remote(), s.inode)
}

/// What changed from `previous` to `current`, closes first, each kind in
/// socket order.
fn changes(
    previous: &HashMap<SocketKey, SocketRecord>,
    current: &HashMap<SocketKey, SocketRecord>,
) -> Vec<WatchEvent> {
    let closed = previous
        .iter()
        .filter(|(k, _)| !current.contains_key(*k))
        .map(|(_, r)| (WatchEventKind::Close, r));
    let opened_or_changed = current.iter().filter_map(|(k, r)| match previous.get(k) {
        None => Some((WatchEventKind::Open, r)),
        Some(before) if before.state != r.state => Some((WatchEventKind::Change, r)),
        Some(_) => None,
    });
    let mut events: Vec<WatchEvent> = closed
        .chain(opened_or_changed)
        .map(|(event, r)| WatchEvent {
            event,
            socket: r.clone(),
        })
        .collect();
    events.sort_by_key(|e| (e.event, key(&e.socket)));
    events
}

/// Redraws the table every `every` on a terminal; otherwise prints what
/// opened, closed or changed state since the last scan. Runs until
/// interrupted.
fn watch(args: &ListArgs, every: Duration, output: Output) -> Result<Exit> {
    let every = every.max(Duration::from_millis(100));
    if output.format == Format::Table {
        return redraw(args, every, output);
    }
    let mut lookups = lookups_for(args, output);
    let mut events = Events::new(args);
    loop {
        let snapshot = snapshot(args)?;
        lookups.keep_only(&snapshot);
        let current: HashMap<SocketKey, SocketRecord> = snapshot
            .sockets
            .iter()
            .map(|s| {
                let record = snapshot.record(s, &mut lookups);
                (key(&record), record)
            })
            .collect();
        let found = events.scanned(current);
        if let Err(e) = print_events(output, &found, shape(args)) {
            return output::deliver(Exit::Ok, Err(e));
        }
        // Until the next scan, the kernel's record (where portctl may read
        // it) reports the connections that open and close meanwhile.
        let deadline = Instant::now() + every;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let traced = events.follow(left.min(Duration::from_millis(100)));
            if let Err(e) = print_events(output, &traced, shape(args)) {
                return output::deliver(Exit::Ok, Err(e));
            }
        }
    }
}

/// `list --watch` on a terminal: the whole table again every `every`.
fn redraw(args: &ListArgs, every: Duration, output: Output) -> Result<Exit> {
    let mut lookups = lookups_for(args, output);
    loop {
        let snapshot = snapshot(args)?;
        lookups.keep_only(&snapshot);
        let mut out = io::BufWriter::new(io::stdout().lock());
        // Home and clear, then the whole table again.
        let printed = write!(out, "\x1b[H\x1b[2J")
            .and_then(|()| {
                writeln!(
                    out,
                    "every {:.1}s, {} sockets (Ctrl+C to stop)",
                    every.as_secs_f64(),
                    snapshot.sockets.len()
                )
            })
            .and_then(|()| write_text(&mut out, output, &snapshot, &mut lookups, shape(args)))
            .and_then(|()| out.flush());
        if let Err(e) = printed {
            return output::deliver(Exit::Ok, Err(e));
        }
        drop(out);
        std::thread::sleep(every);
    }
}

fn print_events(output: Output, events: &[WatchEvent], shape: Shape) -> io::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    write_events(&mut out, output, events, shape)?;
    out.flush()
}

/// The sockets `list --watch` has reported, from scans and, between them,
/// from the kernel's record of TCP changes: a connection that opens and
/// closes between two scans is reported with its process, once.
struct Events<'a> {
    args: &'a ListArgs,
    /// What the last scan found.
    scanned: HashMap<SocketKey, SocketRecord>,
    /// Connections the kernel's record reported open that no scan has
    /// found yet, by their two ends.
    traced: HashMap<(SocketAddr, SocketAddr), SocketRecord>,
    follower: Option<Connections>,
    /// Records the kernel dropped, as last said on stderr.
    lost: u64,
}

impl<'a> Events<'a> {
    fn new(args: &'a ListArgs) -> Events<'a> {
        let connections = args.transport.wants_tcp() && !args.listening;
        let follower = match Connections::open(false) {
            (c, None) if connections && c.source() == Source::Kernel => Some(c),
            _ => None,
        };
        Events {
            args,
            scanned: HashMap::new(),
            traced: HashMap::new(),
            follower,
            lost: 0,
        }
    }

    /// What changed since the last scan, leaving out what the kernel's
    /// record already reported.
    fn scanned(&mut self, current: HashMap<SocketKey, SocketRecord>) -> Vec<WatchEvent> {
        let mut found = changes(&self.scanned, &current);
        found.retain(|e| {
            let ends = (e.socket.local(), e.socket.remote());
            !(e.event == WatchEventKind::Open
                && e.socket.proto == Proto::Tcp
                && self.traced.remove(&ends).is_some())
        });
        self.scanned = current;
        found
    }

    /// The connections that opened or closed in the kernel's record
    /// within `wait`; nothing (after the wait) where it cannot be read.
    fn follow(&mut self, wait: Duration) -> Vec<WatchEvent> {
        let Some(follower) = self.follower.as_mut() else {
            std::thread::sleep(wait);
            return Vec::new();
        };
        let Ok(traced) = follower.next(wait) else {
            self.follower = None;
            return Vec::new();
        };
        let lost = follower.lost();
        if lost > self.lost {
            output::warn(&format!(
                "the kernel dropped {} records (its buffer was full): some short connections are missing",
                lost - self.lost
            ));
            self.lost = lost;
        }
        let mut found = Vec::new();
        for e in traced {
            if !self.wanted(&e.socket) {
                continue;
            }
            let ends = (e.socket.local(), e.socket.remote());
            match e.kind {
                EventKind::Connect | EventKind::Accept => {
                    let known = self
                        .scanned
                        .values()
                        .any(|r| r.proto == Proto::Tcp && (r.local(), r.remote()) == ends);
                    if !known && !self.traced.contains_key(&ends) {
                        self.traced.insert(ends, e.socket.clone());
                        found.push(WatchEvent {
                            event: WatchEventKind::Open,
                            socket: e.socket,
                        });
                    }
                }
                EventKind::Close => {
                    let socket = self.traced.remove(&ends).or_else(|| {
                        let k = self
                            .scanned
                            .iter()
                            .find(|(_, r)| r.proto == Proto::Tcp && (r.local(), r.remote()) == ends)
                            .map(|(k, _)| *k)?;
                        self.scanned.remove(&k)
                    });
                    if let Some(socket) = socket {
                        found.push(WatchEvent {
                            event: WatchEventKind::Close,
                            socket,
                        });
                    }
                }
            }
        }
        found
    }

    /// The filters `list` applies, on a traced connection.
    fn wanted(&self, r: &SocketRecord) -> bool {
        let args = self.args;
        let family = match r.family {
            Family::Ipv4 => args.ipv4 || !args.ipv6,
            Family::Ipv6 => args.ipv6 || !args.ipv4,
        };
        family
            && args.state.is_empty()
            && args
                .port
                .is_none_or(|p| p.contains(r.local_port) || p.contains(r.remote_port))
            && args.pid.is_none_or(|pid| r.pid == Some(pid))
            && args.process.as_ref().is_none_or(|want| {
                r.process
                    .as_ref()
                    .is_some_and(|n| n.to_lowercase().contains(&want.to_lowercase()))
            })
    }
}

/// Events as JSON lines, or as plain rows: the event, then the columns
/// `list` prints.
fn write_events<W: Write>(
    out: &mut W,
    output: Output,
    events: &[WatchEvent],
    shape: Shape,
) -> io::Result<()> {
    if output.is_json() {
        return events
            .iter()
            .try_for_each(|event| output::write_line(&mut *out, event));
    }
    let columns: Vec<Column> = std::iter::once(Column::new("EVENT", 6))
        .chain(columns(shape))
        .collect();
    let mut table = output.table(out, &columns);
    for event in events {
        let mut cells = vec![Cell::new(event.event.as_str())];
        cells.extend(row(&event.socket, shape, None));
        table.push(cells)?;
    }
    table.finish()
}

fn write_text<W: Write>(
    out: W,
    output: Output,
    snapshot: &Snapshot,
    lookups: &mut Lookups,
    shape: Shape,
) -> io::Result<()> {
    let columns = columns(shape);
    let mut table = output.table(out, &columns);
    for socket in &snapshot.sockets {
        table.push(row(&snapshot.record(socket, lookups), shape, None))?;
    }
    table.finish()
}
