//! One scrape of this machine's sockets, for Prometheus and for
//! `metrics --json`: counts by transport, family and state; every
//! listener with its process, user, unit and container; whether the ports
//! asked about are free; and what the scrape cost. `output::prometheus`
//! writes it in the exposition format.

use crate::facts::bind::{check_addresses, probe, Verdict};
use crate::facts::process;
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::model::{Family, Proto, Socket, TcpState};
use crate::platform::{Owners, ReadError, TableQuery};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Everything one scrape found.
#[derive(Debug, Clone, Serialize)]
pub struct Scrape {
    /// Sockets by transport, family and TCP state.
    pub sockets: Vec<SocketCount>,
    /// Every listening socket (TCP LISTEN, unconnected UDP) and its owner.
    pub listeners: Vec<SocketRecord>,
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
    let (mut table, owners) = sockets::read_table_with_owners(&TableQuery::all())?;
    let all = std::mem::take(&mut table.sockets);
    let counts = count(&all);
    let listeners = listener_records(all, owners);
    Ok(Scrape {
        sockets: counts,
        listeners,
        ports: probe_ports(ports),
        duration: started.elapsed(),
    })
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
    let mut lookups = Lookups::new(true);
    snapshot
        .sockets
        .iter()
        .map(|s| snapshot.record(s, &mut lookups))
        .collect()
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
