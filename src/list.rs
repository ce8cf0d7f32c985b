//! `portctl list`: the socket table with owners, filtered and printed.

use crate::cli::ListArgs;
use crate::exit::{Exit, Result};
use crate::model::{Family, Proto, Socket, TcpState};
use crate::output::{self, write_array, Cell, Column, Format, Output, Style};
use crate::process::{self, Users};
use crate::registry;
use crate::sockets::{self, Owners, TableQuery};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// One socket as `list --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRecord {
    pub proto: Proto,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// `null` for UDP.
    pub state: Option<TcpState>,
    /// `null` where the owner cannot be seen.
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub user: Option<String>,
    pub inode: u64,
    /// The registered service of the socket's server-side port.
    pub service: Option<String>,
    /// Every process sharing the socket, when more than one does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
}

/// Everything known about the sockets of one scan.
pub struct Snapshot {
    pub sockets: Vec<Socket>,
    pub owners: Owners,
    pub names: HashMap<u32, String>,
}

impl Snapshot {
    pub fn record(&self, socket: &Socket, users: &mut Users) -> SocketRecord {
        let pids = self.owners.of(socket);
        let pid = pids.first().copied();
        SocketRecord {
            proto: socket.proto,
            family: socket.family(),
            local_addr: socket.local.ip(),
            local_port: socket.local.port(),
            remote_addr: socket.remote.ip(),
            remote_port: socket.remote.port(),
            state: socket.state,
            pid,
            process: pid.and_then(|p| self.names.get(&p).cloned()),
            // TIME_WAIT and request sockets report uid 0 but belong to no one.
            user: socket
                .uid
                .filter(|_| socket.inode != 0)
                .and_then(|uid| users.name(uid).map(str::to_string)),
            inode: socket.inode,
            service: service_of(socket).map(str::to_string),
            pids: if pids.len() > 1 {
                pids.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Sockets that have an inode but no visible owner.
    pub fn unowned(&self) -> usize {
        self.sockets
            .iter()
            .filter(|s| s.inode != 0 && self.owners.of(s).is_empty())
            .count()
    }
}

/// The service a socket serves or talks to: the local port for a
/// listener, otherwise the lower registered port of the two ends.
fn service_of(socket: &Socket) -> Option<&'static str> {
    let transport = socket.proto.into();
    if socket.is_listening() {
        return registry::service_name(socket.local.port(), transport);
    }
    let (a, b) = (socket.local.port(), socket.remote.port());
    let (low, high) = (a.min(b), a.max(b));
    registry::service_name(low, transport).or_else(|| registry::service_name(high, transport))
}

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

pub fn run(args: &ListArgs, output: Output) -> Result<Exit> {
    if args.summary {
        return summary(args, output);
    }
    if let Some(every) = args.watch {
        return watch(args, every, output);
    }
    let snapshot = snapshot(args)?;
    if snapshot.owners.hidden && snapshot.unowned() > 0 {
        output::hint(&format!(
            "{} sockets belong to processes you cannot inspect; run with sudo to see their owners",
            snapshot.unowned()
        ));
    }
    let mut users = Users::default();
    let stdout = io::stdout().lock();
    let out = io::BufWriter::with_capacity(64 * 1024, stdout);
    match output.format {
        Format::Json => write_array(
            out,
            snapshot
                .sockets
                .iter()
                .map(|socket| snapshot.record(socket, &mut users)),
        )?,
        _ => write_text(out, output, &snapshot, &mut users)?,
    }
    Ok(Exit::Ok)
}

/// One row of `list --summary --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub proto: Proto,
    /// `null` for UDP.
    pub state: Option<TcpState>,
    pub count: usize,
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
    let mut counts: HashMap<(Proto, Option<TcpState>), usize> = HashMap::new();
    for s in &sockets {
        *counts.entry((s.proto, s.state)).or_default() += 1;
    }
    let mut rows: Vec<SummaryRow> = counts
        .into_iter()
        .map(|((proto, state), count)| SummaryRow {
            proto,
            state,
            count,
        })
        .collect();
    rows.sort_by(|a, b| (a.proto, b.count, a.state).cmp(&(b.proto, a.count, b.state)));
    let stdout = io::stdout().lock();
    if output.is_json() {
        write_array(stdout, &rows)?;
        return Ok(Exit::Ok);
    }
    const SUMMARY: [Column; 3] = [
        Column::new("PROTO", 5),
        Column::new("STATE", 11),
        Column::new("COUNT", 0),
    ];
    let mut table = output.table(stdout, &SUMMARY);
    for row in &rows {
        table.push(vec![
            Cell::new(row.proto.as_str()),
            Cell::new(row.state.map_or("-", TcpState::as_str)),
            Cell::new(row.count.to_string()),
        ])?;
    }
    table.push(vec![
        Cell::new("all"),
        Cell::new("-"),
        Cell::styled(sockets.len().to_string(), Style::Bold),
    ])?;
    table.finish()?;
    Ok(Exit::Ok)
}

/// One line of `list --watch --json`: a socket that opened or closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// `open` or `close`.
    pub event: String,
    #[serde(flatten)]
    pub socket: SocketRecord,
}

/// A socket's identity across scans.
type SocketKey = (Proto, SocketAddr, SocketAddr, u64);

fn key(s: &SocketRecord) -> SocketKey {
    (
        s.proto,
        SocketAddr::new(s.local_addr, s.local_port),
        SocketAddr::new(s.remote_addr, s.remote_port),
        s.inode,
    )
}

/// Redraws the table every `every` on a terminal; otherwise prints what
/// opened and closed since the last scan (the first scan counts as opened).
/// Runs until interrupted.
fn watch(args: &ListArgs, every: std::time::Duration, output: Output) -> Result<Exit> {
    let every = every.max(std::time::Duration::from_millis(100));
    let mut users = Users::default();
    let mut previous: HashMap<SocketKey, SocketRecord> = HashMap::new();
    loop {
        let snapshot = snapshot(args)?;
        let current: HashMap<SocketKey, SocketRecord> = snapshot
            .sockets
            .iter()
            .map(|s| {
                let record = snapshot.record(s, &mut users);
                (key(&record), record)
            })
            .collect();
        let mut out = io::BufWriter::new(io::stdout().lock());
        if output.format == Format::Table {
            // Home and clear, then the whole table again.
            write!(out, "\x1b[H\x1b[2J")?;
            writeln!(
                out,
                "every {:.1}s, {} sockets (Ctrl+C to stop)",
                every.as_secs_f64(),
                current.len()
            )?;
            write_text(&mut out, output, &snapshot, &mut users)?;
        } else {
            let mut closed: Vec<&SocketRecord> = previous
                .iter()
                .filter(|(k, _)| !current.contains_key(*k))
                .map(|(_, r)| r)
                .collect();
            let mut opened: Vec<&SocketRecord> = current
                .iter()
                .filter(|(k, _)| !previous.contains_key(*k))
                .map(|(_, r)| r)
                .collect();
            closed.sort_by_key(|r| key(r));
            opened.sort_by_key(|r| key(r));
            for (event, records) in [("close", closed), ("open", opened)] {
                for record in records {
                    if output.is_json() {
                        output::write_line(
                            &mut out,
                            &WatchEvent {
                                event: event.into(),
                                socket: record.clone(),
                            },
                        )?;
                    } else {
                        writeln!(
                            out,
                            "{event:<5} {:<5} {:<21} {:<21} {:<11} {:<7} {}",
                            record.proto,
                            endpoint(SocketAddr::new(record.local_addr, record.local_port), false),
                            endpoint(
                                SocketAddr::new(record.remote_addr, record.remote_port),
                                true
                            ),
                            record.state.map_or("-", TcpState::as_str),
                            record.pid.map_or("-".to_string(), |p| p.to_string()),
                            output::sanitize(record.process.as_deref().unwrap_or("-")),
                        )?;
                    }
                }
            }
        }
        out.flush()?;
        drop(out);
        previous = current;
        std::thread::sleep(every);
    }
}

const COLUMNS: [Column; 8] = [
    Column::new("PROTO", 5),
    Column::new("LOCAL", 21),
    Column::new("REMOTE", 21),
    Column::new("STATE", 11),
    Column::new("SERVICE", 10),
    Column::new("USER", 8),
    Column::new("PID", 7),
    Column::new("PROCESS", 0),
];

fn write_text<W: Write>(
    out: W,
    output: Output,
    snapshot: &Snapshot,
    users: &mut Users,
) -> io::Result<()> {
    let mut table = output.table(out, &COLUMNS);
    for socket in &snapshot.sockets {
        let record = snapshot.record(socket, users);
        let proto = match record.family {
            Family::Ipv4 => record.proto.as_str().to_string(),
            Family::Ipv6 => format!("{}6", record.proto),
        };
        let state_style = match record.state {
            Some(TcpState::Listen) => Style::Good,
            Some(TcpState::Established) => Style::Normal,
            Some(_) => Style::Dim,
            None => Style::Normal,
        };
        let pid = match (&record.pid, record.pids.len()) {
            (Some(pid), n) if n > 1 => format!("{pid}+{}", n - 1),
            (Some(pid), _) => pid.to_string(),
            (None, _) => String::new(),
        };
        table.push(vec![
            Cell::new(proto),
            Cell::new(endpoint(socket.local, false)),
            Cell::new(endpoint(socket.remote, true)),
            Cell::styled(record.state.map_or("", TcpState::as_str), state_style),
            Cell::new(record.service.unwrap_or_default()),
            Cell::new(record.user.unwrap_or_default()),
            Cell::new(pid),
            Cell::styled(record.process.unwrap_or_default(), Style::Bold),
        ])?;
    }
    table.finish()
}

/// `127.0.0.1:80`, `[::1]:80`; a wildcard peer is `*` as in `ss`.
pub fn endpoint(addr: SocketAddr, peer: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    if peer && addr.port() == 0 {
        format!("{ip}:*")
    } else {
        format!("{ip}:{}", addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_bracket_ipv6_and_star_wildcard_peers() {
        assert_eq!(
            endpoint("127.0.0.1:80".parse().unwrap(), false),
            "127.0.0.1:80"
        );
        assert_eq!(endpoint("[::1]:80".parse().unwrap(), false), "[::1]:80");
        assert_eq!(endpoint("0.0.0.0:0".parse().unwrap(), true), "0.0.0.0:*");
    }

    #[test]
    fn services_come_from_the_server_side_port() {
        let socket = |local: &str, remote: &str, state| Socket {
            proto: Proto::Tcp,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            inode: 1,
            uid: None,
        };
        let listener = socket("0.0.0.0:22", "0.0.0.0:0", Some(TcpState::Listen));
        assert_eq!(service_of(&listener), Some("ssh"));
        let client = socket(
            "10.0.0.1:51234",
            "10.0.0.2:443",
            Some(TcpState::Established),
        );
        assert_eq!(service_of(&client), Some("https"));
    }
}
