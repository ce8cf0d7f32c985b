//! `portctl who PORT`: the whole story of one port — every socket on it
//! with its process, parents, unit and container, and why the port is or
//! is not bindable beyond them.

use crate::cli::WhoArgs;
use crate::exit::{Exit, Result};
use crate::facts::port_story::{story, Story, WhoSocket};
use crate::model::{Proto, TcpState};
use crate::output::{self, endpoint, sanitize, words, Output};
use std::io::{self, Write};

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
        output::write_line(out, &output::story_json(&story))
    } else {
        write_story(out, &story, &protos)
    };
    output::deliver(answer, printed)
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
        if let Some(command) = words::command(s) {
            writeln!(out, "  command: {command}")?;
        }
        if let Some(started) = &s.started {
            writeln!(out, "  started: {started}")?;
        }
        if let Some(chain) = words::parent_chain(s) {
            writeln!(out, "  parents: {chain}")?;
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
            let state = s.socket.state.map_or("UDP", words::state).to_string();
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
        // Each connection with what it moved, the busiest first.
        let mut moving: Vec<&WhoSocket> = story
            .sockets
            .iter()
            .filter(|s| s.socket.traffic.is_some())
            .collect();
        moving.sort_by_key(|s| {
            let t = s.socket.traffic.unwrap_or_default();
            std::cmp::Reverse(t.bytes_sent.saturating_add(t.bytes_received))
        });
        for s in moving.iter().take(CONNECTIONS_SHOWN) {
            writeln!(out, "  {}", connection(s))?;
        }
        if moving.len() > CONNECTIONS_SHOWN {
            writeln!(
                out,
                "  ... and {} more (portctl who {port} --json has every one)",
                moving.len() - CONNECTIONS_SHOWN
            )?;
        }
    }
    for note in &story.notes {
        writeln!(out, "note: {}", words::note(note))?;
    }
    out.flush()
}

/// How many connections `who` lists in text.
const CONNECTIONS_SHOWN: usize = 20;

/// `127.0.0.1:8080 ⇄ 127.0.0.1:51234 ESTABLISHED, python3 (pid 42): sent
/// 20.0 MiB, received 312 B, round trip 0.05 ms`.
fn connection(s: &WhoSocket) -> String {
    let r = &s.socket;
    let mut text = format!(
        "{} ⇄ {} {}",
        endpoint(r.local(), false),
        endpoint(r.remote(), true),
        r.state.map_or("", words::state)
    );
    if r.pid.is_some() {
        text.push_str(&format!(", {}", words::holder(s)));
    }
    if let Some(t) = r.traffic {
        text.push_str(&format!(
            ": sent {}, received {}, round trip {}",
            words::bytes(t.bytes_sent),
            words::bytes(t.bytes_received),
            words::rtt(t.rtt)
        ));
        if t.retransmits > 0 {
            text.push_str(&format!(", {} retransmitted", t.retransmits));
        }
    }
    text
}

/// `8080/tcp is published by container web (docker, image nginx) port 80;
/// held by docker-proxy (pid 4242, root) under dockerd`, or
/// `8080/tcp is held by nginx (pid 77, www-data) on 0.0.0.0:8080, unit nginx.service`.
fn headline(port: u16, s: &WhoSocket) -> String {
    let r = &s.socket;
    let proto = r.proto;
    let holder = words::holder(s);
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
                words::container(c)
            )
        }
        (Some(c), false) => format!(
            "{port}/{proto} is {how} on {at} by {holder}, inside {}",
            words::container(c)
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
