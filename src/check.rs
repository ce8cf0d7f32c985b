//! `check` and `free`: whether a port can be bound, decided by binding it
//! as a server would, and who holds it, from the socket table.

use crate::cli::{CheckArgs, FreeArgs};
use crate::exit::{Error, Exit, Result};
use crate::model::{Proto, Socket, TcpState};
use crate::output::{self, write_array, Cell, Column, Format, Output, Style};
use crate::parse::PortRange;
use crate::process;
use crate::sockets::{self, Scope, TableQuery};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket as RawSocket, Type};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// What one bind attempt found.
#[derive(Debug)]
pub enum BindOutcome {
    Free,
    InUse,
    /// EACCES: a system port without privileges.
    Denied,
    /// EADDRNOTAVAIL: the address is not on this machine.
    NotLocal,
    /// The address family is not available here (IPv6 turned off).
    NoFamily,
    Failed(io::Error),
}

/// Binds `addr` the way servers do — SO_REUSEADDR for TCP, then listen —
/// and lets go at once. IPv6 is bound v6-only so `::` and `0.0.0.0` are
/// judged separately. UDP gets no SO_REUSEADDR: two UDP sockets with it
/// can share a port, and that port is not free.
pub fn try_bind(addr: SocketAddr, proto: Proto) -> BindOutcome {
    match bind_like_a_server(addr, proto) {
        Ok(_) => BindOutcome::Free,
        Err(e) => match e.kind() {
            io::ErrorKind::AddrInUse => BindOutcome::InUse,
            io::ErrorKind::PermissionDenied => BindOutcome::Denied,
            io::ErrorKind::AddrNotAvailable => BindOutcome::NotLocal,
            _ if family_unsupported(&e) => BindOutcome::NoFamily,
            _ => BindOutcome::Failed(e),
        },
    }
}

/// A socket bound the way servers bind: SO_REUSEADDR and listen for TCP,
/// v6-only for IPv6.
fn bind_like_a_server(addr: SocketAddr, proto: Proto) -> io::Result<RawSocket> {
    let kind = match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let socket = RawSocket::new(Domain::for_address(addr), kind, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if proto == Proto::Tcp {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    if proto == Proto::Tcp {
        socket.listen(1)?;
    }
    Ok(socket)
}

#[cfg(unix)]
fn family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

#[cfg(not(unix))]
fn family_unsupported(_: &io::Error) -> bool {
    false
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
    Unbindable(String),
}

/// Binds `port` on every address; the first address that says no decides.
pub fn probe(port: u16, proto: Proto, addresses: &[IpAddr]) -> Verdict {
    let mut verdict = Verdict::Free;
    for &ip in addresses {
        match try_bind(SocketAddr::new(ip, port), proto) {
            BindOutcome::Free | BindOutcome::NoFamily => {}
            BindOutcome::InUse => return Verdict::InUse,
            BindOutcome::Denied => {
                verdict = Verdict::Unbindable(format!(
                    "{port} is a system port: binding it needs root or CAP_NET_BIND_SERVICE"
                ))
            }
            BindOutcome::NotLocal => {
                verdict = Verdict::Unbindable(format!("{ip} is not an address of this machine"))
            }
            BindOutcome::Failed(e) => {
                verdict = Verdict::Unbindable(format!("cannot bind {ip}: {e}"))
            }
        }
    }
    verdict
}

/// A socket holding a port, and its owner where visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub state: Option<TcpState>,
    /// TCP LISTEN or unconnected UDP: a server, not a client.
    #[serde(skip)]
    pub listening: bool,
}

impl Holder {
    /// `python3 (pid 1234) on 0.0.0.0:9999 LISTEN`.
    pub fn describe(&self) -> String {
        let who = match (&self.process, self.pid) {
            (Some(name), Some(pid)) => format!("{} (pid {pid})", output::sanitize(name)),
            (None, Some(pid)) => format!("pid {pid}"),
            _ => "a process you cannot see".to_string(),
        };
        let at = crate::list::endpoint(SocketAddr::new(self.local_addr, self.local_port), false);
        match self.state {
            Some(state) => format!("{who} on {at} {state}"),
            None => format!("{who} on {at}"),
        }
    }
}

/// Who holds each of `keys` (port, transport): the listeners where there
/// are any, otherwise every socket bound to the port (TIME_WAIT aside,
/// which never blocks a SO_REUSEADDR server). One table read and one owner
/// scan serve every key. `host` narrows to sockets that conflict with it.
pub fn find_holders(
    keys: &[(u16, Proto)],
    host: Option<IpAddr>,
    scope: Scope,
) -> Result<HashMap<(u16, Proto), Vec<Holder>>> {
    let mut result: HashMap<(u16, Proto), Vec<Holder>> = HashMap::new();
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
    };
    let mut table = sockets::read_table(&query)?;
    let mut held: Vec<Socket> = std::mem::take(&mut table.sockets);
    held.retain(|s| {
        keys.contains(&(s.local.port(), s.proto)) && host.is_none_or(|h| conflicts(s.local.ip(), h))
    });
    let owners = sockets::find_owners(&table, &held, scope);
    let names = process::names(&owners.pids_of(&held));
    for key in keys {
        let on_port: Vec<&Socket> = held
            .iter()
            .filter(|s| (s.local.port(), s.proto) == *key)
            .collect();
        let listeners: Vec<&Socket> = on_port
            .iter()
            .copied()
            .filter(|s| s.is_listening())
            .collect();
        let chosen = if listeners.is_empty() {
            on_port
        } else {
            listeners
        };
        let mut holders = Vec::new();
        for socket in chosen {
            let pids = owners.of(socket);
            let base = Holder {
                pid: None,
                process: None,
                local_addr: socket.local.ip(),
                local_port: socket.local.port(),
                state: socket.state,
                listening: socket.is_listening(),
            };
            if pids.is_empty() {
                holders.push(base.clone());
            }
            for &pid in pids {
                holders.push(Holder {
                    pid: Some(pid),
                    process: names.get(&pid).cloned(),
                    ..base.clone()
                });
            }
        }
        holders.dedup();
        result.insert(*key, holders);
    }
    Ok(result)
}

/// Whether a socket bound to `bound` keeps a server from binding `wanted`:
/// the same address, or either side a wildcard of a family that overlaps.
fn conflicts(bound: IpAddr, wanted: IpAddr) -> bool {
    bound == wanted || bound.is_unspecified() || wanted.is_unspecified()
}

/// The three answers `check` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Free,
    InUse,
    Unbindable,
}

/// One line of `check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub port: u16,
    pub proto: Proto,
    pub free: bool,
    pub status: Status,
    pub holders: Vec<Holder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Probes every (port, transport), in order.
fn probe_all(args: &CheckArgs, addresses: &[IpAddr]) -> Vec<(u16, Proto, Verdict)> {
    let protos = args.transport.protos();
    let mut verdicts = Vec::new();
    for range in &args.ports {
        for port in range.ports() {
            for &proto in &protos {
                verdicts.push((port, proto, probe(port, proto, addresses)));
            }
        }
    }
    verdicts
}

pub fn run_check(args: &CheckArgs, output: Output) -> Result<Exit> {
    let addresses = check_addresses(args.host);
    let mut verdicts = probe_all(args, &addresses);
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        let mut told = false;
        while verdicts.iter().any(|(_, _, v)| *v != Verdict::Free) && Instant::now() < deadline {
            if !told {
                let busy: Vec<String> = verdicts
                    .iter()
                    .filter(|(_, _, v)| *v != Verdict::Free)
                    .map(|(port, proto, _)| format!("{port}/{proto}"))
                    .collect();
                let _ = writeln!(
                    io::stderr(),
                    "waiting up to {:.0?} for {} to be free...",
                    args.timeout,
                    busy.join(", ")
                );
                told = true;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
            );
            verdicts = probe_all(args, &addresses);
        }
    }
    let held: Vec<(u16, Proto)> = verdicts
        .iter()
        .filter(|(_, _, v)| *v == Verdict::InUse)
        .map(|(port, proto, _)| (*port, *proto))
        .collect();
    let mut holders = find_holders(&held, args.host, Scope::FirstOwner)?;
    let records: Vec<CheckRecord> = verdicts
        .into_iter()
        .map(|(port, proto, verdict)| {
            let holders = holders.remove(&(port, proto)).unwrap_or_default();
            let (status, reason) = match verdict {
                Verdict::Free => (Status::Free, None),
                Verdict::Unbindable(reason) => (Status::Unbindable, Some(reason)),
                Verdict::InUse => (Status::InUse, Some(in_use_reason(&holders))),
            };
            CheckRecord {
                port,
                proto,
                free: status == Status::Free,
                status,
                holders,
                reason,
            }
        })
        .collect();
    let exit = if records.iter().all(|r| r.free) {
        Exit::Ok
    } else {
        Exit::Negative
    };
    let stdout = io::stdout().lock();
    if output.format == Format::Json {
        write_array(stdout, &records)?;
    } else {
        write_check_text(stdout, output, &records)?;
    }
    Ok(exit)
}

/// Says who holds a port, or why that cannot be said.
pub fn in_use_reason(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "in use, but no socket holding it is visible here (another network namespace?)"
            .to_string();
    }
    if holders.iter().all(|h| h.pid.is_none()) {
        return "held by a process you cannot see; run with sudo to name it".to_string();
    }
    let described: Vec<String> = holders.iter().map(Holder::describe).collect();
    format!("in use by {}", described.join("; "))
}

const CHECK_COLUMNS: [Column; 4] = [
    Column::new("PORT", 5),
    Column::new("PROTO", 5),
    Column::new("STATUS", 11),
    Column::new("DETAIL", 0),
];

fn write_check_text<W: Write>(out: W, output: Output, records: &[CheckRecord]) -> io::Result<()> {
    let mut table = output.table(out, &CHECK_COLUMNS);
    for r in records {
        let (status, style) = match r.status {
            Status::Free => ("free", Style::Good),
            Status::InUse => ("in-use", Style::Bad),
            Status::Unbindable => ("unbindable", Style::Warn),
        };
        table.push(vec![
            Cell::new(r.port.to_string()),
            Cell::new(r.proto.as_str()),
            Cell::styled(status, style),
            Cell::new(r.reason.clone().unwrap_or_default()),
        ])?;
    }
    table.finish()
}

/// One line of `free --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeRecord {
    pub port: u16,
    pub proto: Proto,
}

pub fn run_free(args: &FreeArgs, output: Output) -> Result<Exit> {
    let proto = if args.udp { Proto::Udp } else { Proto::Tcp };
    let addresses = check_addresses(args.host);
    let wanted = args.count as usize;
    let ports = match args.range {
        Some(range) => pick_in_range(range, proto, &addresses, wanted),
        None => pick_from_os(proto, &addresses, wanted)?,
    };
    if ports.len() < wanted {
        let range = args
            .range
            .map_or("the OS's ephemeral range".to_string(), |r| r.to_string());
        return Err(Error::negative(format!(
            "only {} of the {wanted} {proto} ports asked for are free in {range}",
            ports.len()
        )));
    }
    let mut stdout = io::stdout().lock();
    if output.format == Format::Json {
        write_array(
            &mut stdout,
            ports.iter().map(|&port| FreeRecord { port, proto }),
        )?;
    } else {
        for port in &ports {
            writeln!(stdout, "{port}")?;
        }
        stdout.flush()?;
    }
    Ok(Exit::Ok)
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
/// until all are chosen so they are distinct, and keeps only those free on
/// the other addresses too.
fn pick_from_os(proto: Proto, addresses: &[IpAddr], wanted: usize) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut found = Vec::new();
    let attempts = wanted * 4 + 16;
    for _ in 0..attempts {
        if found.len() == wanted {
            break;
        }
        let socket = bind_like_a_server(SocketAddr::new(addresses[0], 0), proto)
            .map_err(|e| Error::failure(format!("cannot bind {}: {e}", addresses[0])))?;
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .ok_or_else(|| Error::failure("the OS did not say which port it chose"))?;
        held.push(socket);
        if probe(port, proto, &addresses[1..]) == Verdict::Free {
            found.push(port);
        }
    }
    Ok(found)
}
