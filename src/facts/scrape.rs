//! One scrape of this machine's sockets, for Prometheus and for
//! `metrics --json`: counts by transport, family and state; every
//! listener with its process, user, unit and container; whether the ports
//! asked about are free; and what the scrape cost. `output::prometheus`
//! writes it in the exposition format.

use crate::facts::bind::{check_addresses, fit, probe, Verdict};
use crate::facts::process;
use crate::facts::socket_record::{Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::model::{Family, Proto, Socket, TcpState};
use crate::platform::{Owners, ReadError, TableQuery};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Everything one scrape found.
#[derive(Debug, Clone, Serialize)]
pub struct Scrape {
    /// Sockets by transport, family and TCP state.
    pub sockets: Vec<SocketCount>,
    /// Every listening socket (TCP LISTEN, unconnected UDP) and its owner.
    pub listeners: Vec<SocketRecord>,
    /// What each TCP listener's live connections have moved.
    pub traffic: Vec<ListenerTraffic>,
    /// Whether each port asked about could be bound right now.
    pub ports: Vec<PortFree>,
    /// How long reading the table and its owners took.
    #[serde(rename = "scrape_duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketCount {
    pub proto: Proto,
    pub family: Family,
    /// `null` for UDP.
    pub state: Option<TcpState>,
    pub count: u64,
}

/// A TCP listener and the connections it accepted that are still open:
/// their bytes summed, and each one's round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerTraffic {
    pub address: IpAddr,
    pub port: u16,
    pub connections: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Each connection's smoothed round trip.
    #[serde(skip)]
    pub rtts: Vec<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortFree {
    pub port: u16,
    pub proto: Proto,
    /// A real bind, as `check` does.
    pub free: bool,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Reads the table once and describes it, with `ports` probed for
/// freedom.
pub fn scrape(ports: &[u16]) -> Result<Scrape, ReadError> {
    let started = Instant::now();
    let query = TableQuery {
        traffic: true,
        ..TableQuery::all()
    };
    let (mut table, owners) = sockets::read_table_with_owners(&query)?;
    let all = std::mem::take(&mut table.sockets);
    let counts = count(&all);
    let traffic = listener_traffic(&all);
    let listeners = listener_records(all, owners);
    Ok(Scrape {
        sockets: counts,
        listeners,
        traffic,
        ports: probe_ports(ports),
        duration: started.elapsed(),
    })
}

/// Each TCP listener's accepted connections that are still open (the same
/// local port, on an address the listener covers), summed. A connection
/// counts once, for the most specific listener that covers it (its own
/// address before a wildcard, its own family's wildcard before the
/// other's). Labels stay per listener, never per connection.
fn listener_traffic(sockets: &[Socket]) -> Vec<ListenerTraffic> {
    let mut out: Vec<ListenerTraffic> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.is_listening())
        .map(|l| ListenerTraffic {
            address: l.local.ip(),
            port: l.local.port(),
            connections: 0,
            bytes_sent: 0,
            bytes_received: 0,
            rtts: Vec::new(),
        })
        .collect();
    // Two sockets of one listener (SO_REUSEPORT) are one series.
    out.sort_by_key(|t| (t.port, t.address));
    out.dedup_by(|b, a| (a.port, a.address) == (b.port, b.address));
    let mut covers: HashMap<u16, Vec<(usize, IpAddr, Option<bool>)>> = HashMap::new();
    for l in sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.is_listening())
    {
        if let Ok(at) =
            out.binary_search_by_key(&(l.local.port(), l.local.ip()), |t| (t.port, t.address))
        {
            covers
                .entry(l.local.port())
                .or_default()
                .push((at, l.local.ip(), l.v6only));
        }
    }
    for c in sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && !s.is_listening())
    {
        let (Some(traffic), Some(listeners)) = (c.traffic, covers.get(&c.local.port())) else {
            continue;
        };
        let best = listeners
            .iter()
            .filter_map(|&(at, ip, v6only)| Some((fit(ip, v6only, c.local.ip())?, at)))
            .min();
        if let Some((_, at)) = best {
            let t = &mut out[at];
            t.connections += 1;
            t.bytes_sent = t.bytes_sent.saturating_add(traffic.bytes_sent);
            t.bytes_received = t.bytes_received.saturating_add(traffic.bytes_received);
            t.rtts.push(traffic.rtt);
        }
    }
    out
}

/// Counts by transport, family and state, in that order.
fn count(sockets: &[Socket]) -> Vec<SocketCount> {
    let mut counts: BTreeMap<(Proto, Family, Option<TcpState>), u64> = BTreeMap::new();
    for s in sockets {
        *counts.entry((s.proto, s.family(), s.state)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((proto, family, state), count)| SocketCount {
            proto,
            family,
            state,
            count,
        })
        .collect()
}

/// The listening sockets among `sockets`, with owners, units and
/// containers.
fn listener_records(mut sockets: Vec<Socket>, owners: Owners) -> Vec<SocketRecord> {
    sockets.retain(Socket::is_listening);
    let names = process::names(&owners.pids_of(&sockets));
    let snapshot = Snapshot {
        sockets,
        owners,
        names,
    };
    snapshot.records_afresh()
}

/// A real bind of each port, TCP and UDP.
fn probe_ports(ports: &[u16]) -> Vec<PortFree> {
    let addresses = check_addresses(None);
    ports
        .iter()
        .flat_map(|&port| [Proto::Tcp, Proto::Udp].map(|proto| (port, proto)))
        .map(|(port, proto)| PortFree {
            port,
            proto,
            free: probe(port, proto, &addresses) == Verdict::Free,
        })
        .collect()
}
