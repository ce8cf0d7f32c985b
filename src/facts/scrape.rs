//! One scrape of this machine's sockets for Prometheus: counts by
//! transport, family and state; one info sample per listener with its
//! process, user, unit and container; whether the ports asked about are
//! free; and what the scrape cost. `metrics` prints it, `serve metrics`
//! serves it.

use crate::facts::bind::{check_addresses, probe, Verdict};
use crate::exit::Result;
use crate::model::Proto;
use crate::output::prometheus::{self, Family, Sample};
use crate::facts::process;
use crate::facts::socket_record::{Lookups, Snapshot};
use crate::facts::sockets;
use crate::platform::TableQuery;
use std::collections::BTreeMap;
use std::time::Instant;

/// The whole exposition text, for `ports` watched for freedom.
pub fn scrape(ports: &[u16]) -> Result<String> {
    let started = Instant::now();
    let (mut table, owners) = sockets::read_table_with_owners(&TableQuery::all())?;
    let sockets = std::mem::take(&mut table.sockets);
    let listeners: Vec<_> = sockets.iter().filter(|s| s.is_listening()).collect();
    let names = process::names(&owners.pids_of(listeners.iter().copied()));

    let mut counts: BTreeMap<(Proto, &'static str, &'static str), u64> = BTreeMap::new();
    for s in &sockets {
        let family = match s.family() {
            crate::model::Family::Ipv4 => "ipv4",
            crate::model::Family::Ipv6 => "ipv6",
        };
        let state = s.state.map_or("", |st| st.as_str());
        *counts.entry((s.proto, family, state)).or_default() += 1;
    }
    let counted = Family {
        name: "portctl_sockets",
        help: "Sockets on this machine by transport, address family and TCP state (empty for UDP).",
        samples: counts
            .into_iter()
            .map(|((proto, family, state), n)| Sample {
                labels: vec![
                    ("proto", proto.to_string()),
                    ("family", family.into()),
                    ("state", state.into()),
                ],
                value: n as f64,
            })
            .collect(),
    };

    let snapshot = Snapshot {
        sockets: listeners.into_iter().cloned().collect(),
        owners,
        names,
    };
    drop(sockets);
    let mut lookups = Lookups::new(true);
    let info = Family {
        name: "portctl_listener_info",
        help: "A listening socket (TCP LISTEN or unconnected UDP) and who holds it; always 1.",
        samples: snapshot
            .sockets
            .iter()
            .map(|s| {
                let r = snapshot.record(s, &mut lookups);
                let container = r
                    .container
                    .as_ref()
                    .and_then(|c| c.name.clone().or_else(|| c.id.clone()))
                    .unwrap_or_default();
                Sample {
                    labels: vec![
                        ("proto", r.proto.to_string()),
                        ("address", r.local_addr.to_string()),
                        ("port", r.local_port.to_string()),
                        ("process", r.process.unwrap_or_default()),
                        ("user", r.user.unwrap_or_default()),
                        ("unit", r.unit.unwrap_or_default()),
                        ("container", container),
                    ],
                    value: 1.0,
                }
            })
            .collect(),
    };

    let addresses = check_addresses(None);
    let free = Family {
        name: "portctl_port_free",
        help: "1 when a server could bind the port right now (a real bind), 0 when not.",
        samples: ports
            .iter()
            .flat_map(|&port| [Proto::Tcp, Proto::Udp].map(|proto| (port, proto)))
            .map(|(port, proto)| Sample {
                labels: vec![("proto", proto.to_string()), ("port", port.to_string())],
                value: f64::from(u8::from(probe(port, proto, &addresses) == Verdict::Free)),
            })
            .collect(),
    };

    let duration = Family {
        name: "portctl_scrape_duration_seconds",
        help: "How long reading the socket table and its owners took.",
        samples: vec![Sample {
            labels: Vec::new(),
            value: started.elapsed().as_secs_f64(),
        }],
    };
    let mut text = String::with_capacity(4096);
    prometheus::write(&mut text, &[counted, info, free, duration]);
    Ok(text)
}
