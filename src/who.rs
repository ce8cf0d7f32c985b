//! `portctl who PORT`: the whole story of one port — every socket on it
//! with its process, parents, unit and container, and why the port is or
//! is not bindable beyond them.

use crate::bind::{self, Verdict};
use crate::cli::WhoArgs;
use crate::exit::{Exit, Result};
use crate::holders::{ContainerText, HiddenOwner};
use crate::model::{Proto, Socket, TcpState};
use crate::notes::{self, Note};
use crate::output::{self, endpoint, sanitize, Output};
use crate::platform;
use crate::process::{self, Parent};
use crate::record::{Lookups, Snapshot, SocketRecord};
use crate::sockets::{self, TableQuery};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, Write};

/// `who --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Story {
    pub port: u16,
    pub sockets: Vec<WhoSocket>,
    pub notes: Vec<Note>,
}

/// A socket on the port with everything known about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoSocket {
    #[serde(flatten)]
    pub socket: SocketRecord,
    /// The owner's full command line.
    pub cmdline: Option<Vec<String>>,
    /// When the owner started (RFC 3339).
    pub started: Option<String>,
    /// The owner's parents, nearest first, up to PID 1.
    pub parents: Vec<Parent>,
}

/// One process's story, read once however many sockets it holds.
#[derive(Debug, Clone, Default)]
struct Owner {
    cmdline: Option<Vec<String>>,
    started: Option<String>,
    parents: Vec<Parent>,
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

pub fn run(args: &WhoArgs, output: Output) -> Result<Exit> {
    let protos = args.transport.protos();
    let story = story(args.port, &protos)?;
    let answer = if story.sockets.is_empty() {
        Exit::Negative
    } else {
        Exit::Ok
    };
    let out = io::stdout().lock();
    let printed = if output.is_json() {
        output::write_line(out, &story)
    } else {
        write_story(out, &story, &protos)
    };
    output::deliver(answer, printed)
}

/// Every socket on `port` (listeners first), its owner's story, and the
/// notes.
fn story(port: u16, protos: &[Proto]) -> Result<Story> {
    let (snapshot, records) = sockets_on(port, protos)?;
    let tcp_bindable = bind::probe(port, Proto::Tcp, &bind::check_addresses(None)) == Verdict::Free;
    let notes = notes::notes(
        port,
        protos,
        &snapshot.sockets,
        &records,
        &platform::port_settings(),
        tcp_bindable,
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
fn sockets_on(port: u16, protos: &[Proto]) -> Result<(Snapshot, Vec<SocketRecord>)> {
    let query = TableQuery {
        tcp: protos.contains(&Proto::Tcp),
        udp: protos.contains(&Proto::Udp),
        ipv4: true,
        ipv6: true,
        tcp_states: None,
        bound_inactive: true,
    };
    let mut on_port: Vec<Socket> = sockets::read_table(&query)?.sockets;
    on_port.retain(|s| s.local.port() == port);
    // Listeners first, then the rest in a stable order.
    on_port.sort_by_key(|s| (!s.is_listening(), s.proto, s.state, s.local, s.remote));
    on_port.dedup_by_key(|s| (s.proto, s.local, s.remote, s.inode));
    let owners = sockets::find_owners(&on_port, sockets::Scope::Every);
    let names = process::names(&owners.pids_of(&on_port));
    let snapshot = Snapshot {
        sockets: on_port,
        owners,
        names,
    };
    let mut lookups = Lookups::new(true);
    let records = snapshot
        .sockets
        .iter()
        .map(|s| snapshot.record(s, &mut lookups))
        .collect();
    Ok((snapshot, records))
}

/// The story as text: most important first — what holds the port, the
/// connections on it, then the notes.
fn write_story<W: Write>(mut out: W, story: &Story, protos: &[Proto]) -> io::Result<()> {
    let port = story.port;
    let servers: Vec<&WhoSocket> = story
        .sockets
        .iter()
        .filter(|s| s.socket.is_listening() || s.socket.state == Some(TcpState::Close))
        .collect();
    if story.sockets.is_empty() {
        let transports: Vec<&str> = protos.iter().map(|p| p.as_str()).collect();
        writeln!(out, "{port}/{} is not in use", transports.join("+"))?;
    }
    for s in &servers {
        writeln!(out, "{}", headline(port, s))?;
        if let Some(cmdline) = &s.cmdline {
            let line: Vec<String> = cmdline.iter().map(|a| sanitize(a).into_owned()).collect();
            writeln!(out, "  command: {}", line.join(" "))?;
        }
        if let Some(started) = &s.started {
            writeln!(out, "  started: {started}")?;
        }
        if !s.parents.is_empty() {
            let chain: Vec<String> = s
                .parents
                .iter()
                .map(|p| {
                    format!(
                        "{} ({})",
                        sanitize(p.process.as_deref().unwrap_or("?")),
                        p.pid
                    )
                })
                .collect();
            writeln!(out, "  parents: {}", chain.join(" < "))?;
        }
    }
    let others = story.sockets.len() - servers.len();
    if others > 0 {
        let mut by_state: Vec<(String, usize)> = Vec::new();
        for s in story
            .sockets
            .iter()
            .filter(|s| !servers.iter().any(|v| std::ptr::eq(*v, *s)))
        {
            let state = s.socket.state.map_or("UDP", TcpState::as_str).to_string();
            match by_state.iter_mut().find(|(k, _)| *k == state) {
                Some((_, n)) => *n += 1,
                None => by_state.push((state, 1)),
            }
        }
        let counts: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
        writeln!(
            out,
            "{others} other socket{} on {port}: {}",
            if others == 1 { "" } else { "s" },
            counts.join(", ")
        )?;
    }
    for note in &story.notes {
        writeln!(out, "note: {}", note.text)?;
    }
    out.flush()
}

/// `8080/tcp is published by container web (docker, image nginx) port 80;
/// held by docker-proxy (pid 4242, root) under dockerd`, or
/// `8080/tcp is held by nginx (pid 77, www-data) on 0.0.0.0:8080, unit nginx.service`.
fn headline(port: u16, s: &WhoSocket) -> String {
    let r = &s.socket;
    let proto = r.proto;
    let holder = match (&r.process, r.pid) {
        (Some(name), Some(pid)) => {
            let user = r
                .user
                .as_deref()
                .map(|u| format!(", {}", sanitize(u)))
                .unwrap_or_default();
            format!("{} (pid {pid}{user})", sanitize(name))
        }
        (None, Some(pid)) => format!("pid {pid}"),
        _ => HiddenOwner::of(std::slice::from_ref(r), "name it").to_string(),
    };
    let under = s
        .parents
        .first()
        .and_then(|p| p.process.as_deref())
        .map(|p| format!(" under {}", sanitize(p)))
        .unwrap_or_default();
    let at = endpoint(r.local(), false);
    let how = if r.state == Some(TcpState::Close) {
        "bound (not listening)"
    } else {
        "held"
    };
    let proxy = r.held_by_runtime();
    // The address first: a hidden owner's description ends in advice.
    match (&r.container, proxy) {
        (Some(c), true) => {
            let from = c
                .port
                .map(|p| format!(" from its port {p}"))
                .unwrap_or_default();
            format!(
                "{port}/{proto} is published by {}{from}; {how} on {at} by {holder}{under}",
                ContainerText(c)
            )
        }
        (Some(c), false) => format!(
            "{port}/{proto} is {how} on {at} by {holder}, inside {}",
            ContainerText(c)
        ),
        (None, _) => {
            let unit = r
                .unit
                .as_deref()
                .map(|u| format!(", unit {}", sanitize(u)))
                .unwrap_or_default();
            format!("{port}/{proto} is {how} on {at} by {holder}{under}{unit}")
        }
    }
}
