//! The whole story of one port, as `who` tells it and `top` shows it:
//! every socket on the port with its owner's command line, start and
//! parents, unit and container, and the notes on why the port is or is not
//! bindable beyond them.

use crate::facts::bind;
use crate::facts::process::{self, Proc};
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::facts::why_busy::{self, Note};
use crate::model::{Proto, Socket};
use crate::platform::{self, ReadError, TableQuery};
use serde::Serialize;
use std::collections::HashMap;

/// A port, its sockets and its notes (`who`; `output::json` words the
/// notes for `--json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    pub port: u16,
    pub sockets: Vec<WhoSocket>,
    pub notes: Vec<Note>,
}

/// A socket on the port with everything known about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhoSocket {
    #[serde(flatten)]
    pub socket: SocketRecord,
    /// The owner's full command line.
    pub cmdline: Option<Vec<String>>,
    /// When the owner started (RFC 3339).
    pub started: Option<String>,
    /// The owner's parents, nearest first, up to PID 1.
    pub parents: Vec<Proc>,
}

/// One process's story, read once however many sockets it holds.
#[derive(Debug, Clone, Default)]
struct Owner {
    cmdline: Option<Vec<String>>,
    started: Option<String>,
    parents: Vec<Proc>,
}

fn owner(pid: u32) -> Owner {
    let Some(facts) = platform::process_facts(pid) else {
        return Owner::default();
    };
    Owner {
        started: facts
            .started
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        parents: process::parents(&facts),
        cmdline: Some(facts.cmdline),
    }
}

/// Every socket on `port` (listeners first), its owner's story, and the
/// notes.
pub fn story(port: u16, protos: &[Proto]) -> Result<Story, ReadError> {
    let (snapshot, records) = sockets_on(port, protos)?;
    let tcp = bind::probe(port, Proto::Tcp, &bind::check_addresses(None));
    let notes = why_busy::notes(
        port,
        protos,
        &snapshot.sockets,
        &records,
        &platform::port_settings(),
        &tcp,
    );
    let mut stories: HashMap<u32, Owner> = HashMap::new();
    let sockets = records
        .into_iter()
        .map(|socket| {
            let owner = socket
                .pid
                .map(|pid| stories.entry(pid).or_insert_with(|| owner(pid)).clone())
                .unwrap_or_default();
            WhoSocket {
                socket,
                cmdline: owner.cmdline,
                started: owner.started,
                parents: owner.parents,
            }
        })
        .collect();
    Ok(Story {
        port,
        sockets,
        notes,
    })
}

/// The sockets bound to local `port` (every state, bound-inactive ones
/// too) and their records.
fn sockets_on(port: u16, protos: &[Proto]) -> Result<(Snapshot, Vec<SocketRecord>), ReadError> {
    let query = TableQuery {
        tcp: protos.contains(&Proto::Tcp),
        udp: protos.contains(&Proto::Udp),
        ipv4: true,
        ipv6: true,
        tcp_states: None,
        bound_inactive: true,
        // Each connection's bytes and round trip.
        traffic: true,
    };
    let mut on_port: Vec<Socket> = sockets::read_table(&query)?.sockets;
    on_port.retain(|s| s.local.port() == port);
    // Listeners first, then the rest in a stable order.
    on_port.sort_by_key(|s| (!s.is_listening(), s.proto, s.state, s.local, s.remote));
    on_port.dedup_by_key(|s| (s.proto, s.local, s.remote, s.inode));
    let owners = sockets::find_owners(&on_port, platform::Scope::Every);
    let names = process::names(&owners.pids_of(&on_port));
    let snapshot = Snapshot {
        sockets: on_port,
        owners,
        names,
    };
    let mut lookups = Lookups::new(true);
    lookups.info = true;
    let records = snapshot
        .sockets
        .iter()
        .map(|s| snapshot.record(s, &mut lookups))
        .collect();
    Ok((snapshot, records))
}
