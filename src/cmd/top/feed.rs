//! The background work of `top`: the table read every interval, and the
//! slow answers the keys ask for (a story, a kill's targets, the kill
//! itself), each on a thread of its own that sends an `Event` back, so the
//! keyboard never waits for the OS.

use super::state::{key_of, Event, Reading, SocketKey};
use crate::facts::port_story;
use crate::facts::process::{self, Proc};
use crate::facts::socket_record::Snapshot;
use crate::facts::sockets::{self, summarize};
use crate::facts::stop::{self, Plan, Release};
use crate::model::{Proto, Signal, Socket};
use crate::output::words;
use crate::platform::{Owners, ReadError, Scope, TableQuery};
use std::collections::HashSet;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

/// How long SIGTERM gets to free the port, as `kill`'s default.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the table every `every` until the receiver is gone.
pub fn readings(every: Duration, events: Sender<Event>) {
    thread::spawn(move || {
        let mut reader = Reader {
            started: Instant::now(),
            owners: Vec::new(),
            hidden: false,
            looked_up: HashSet::new(),
            full_scan: None,
        };
        // A way to stage what a bug would do: tests/it/top.rs checks that
        // a panic on this thread ends top with the terminal restored.
        if std::env::var_os("PORTCTL_TEST_PANIC_IN_FEED").is_some() {
            panic!("PORTCTL_TEST_PANIC_IN_FEED is set: the feed thread panics, as a bug would");
        }
        loop {
            let event = match reader.read() {
                Ok(reading) => Event::Reading(reading),
                Err(e) => Event::ReadFailed(e.to_string()),
            };
            if events.send(event).is_err() {
                return;
            }
            thread::sleep(every);
        }
    });
}

/// How often every owner is looked up again, new sockets or not: a
/// socket's holders can change (a server forks and its parent exits).
const FULL_SCAN_EVERY: Duration = Duration::from_secs(10);

/// The owners of the sockets seen so far. Finding owners walks every
/// process's descriptors, which costs in proportion to all the files open
/// on the machine; an idle table has no new sockets, so between full scans
/// only new sockets are looked for.
struct Reader {
    /// When top started: readings are timed from it.
    started: Instant,
    owners: Vec<(u64, u32)>,
    hidden: bool,
    /// Inodes whose owners were looked for (found or not).
    looked_up: HashSet<u64>,
    full_scan: Option<Instant>,
}

impl Reader {
    /// Every socket with its owner, unit and container. Units and
    /// containers are looked up afresh each time: a PID may be reused.
    fn read(&mut self) -> Result<Reading, ReadError> {
        // Each connection's counters too: the rates come from two readings.
        let query = TableQuery {
            traffic: true,
            ..TableQuery::all()
        };
        let sockets = sockets::read_table(&query)?.sockets;
        // When the counters were read: the owner scan after it may take a
        // while, and rates are bytes over the time between two readings.
        let at = self.started.elapsed();
        let owners = self.owners_of(&sockets);
        let names = process::names(&owners.pids_of(&sockets));
        let snapshot = Snapshot {
            sockets,
            owners,
            names,
        };
        Ok(Reading {
            records: snapshot.records_afresh(),
            counts: summarize(&snapshot.sockets),
            at,
        })
    }

    fn owners_of(&mut self, sockets: &[Socket]) -> Owners {
        let due = self
            .full_scan
            .is_none_or(|at| at.elapsed() >= FULL_SCAN_EVERY);
        let current: HashSet<u64> = sockets.iter().map(|s| s.inode).collect();
        if due {
            self.full_scan = Some(Instant::now());
            let owners = sockets::find_owners(sockets, Scope::Every);
            self.hidden = owners.hidden;
            self.owners = owners.into_pairs();
        } else {
            let new = sockets
                .iter()
                .filter(|s| s.inode != 0 && !self.looked_up.contains(&s.inode));
            let found = sockets::find_owners(new, Scope::Every);
            self.hidden |= found.hidden;
            self.owners.retain(|(inode, _)| current.contains(inode));
            self.owners.extend(found.into_pairs());
        }
        self.looked_up = current;
        Owners::from_pairs(self.owners.clone(), self.hidden)
    }
}

/// `who`'s story of the port, and this socket's part in it.
pub fn story(key: SocketKey, events: Sender<Event>) {
    thread::spawn(move || {
        let (proto, local, ..) = key;
        let result = port_story::story(local.port(), &[proto])
            .map_err(|e| e.to_string())
            .and_then(|story| {
                let notes = story.notes;
                story
                    .sockets
                    .into_iter()
                    .find(|s| key_of(&s.socket) == key)
                    .map(|socket| Box::new((socket, notes)))
                    .ok_or_else(|| format!("the socket on {local} is gone"))
            });
        let _ = events.send(Event::Story { key, result });
    });
}

/// The processes `kill` would stop for this port, or why it would refuse.
pub fn targets(port: u16, proto: Proto, events: Sender<Event>) {
    thread::spawn(move || {
        let result = stop::listeners(port, &[proto])
            .and_then(|targets| {
                stop::refuse_protected(&targets)?;
                Ok(targets)
            })
            .map_err(|e| words::refusal(&e));
        let _ = events.send(Event::Targets {
            port,
            proto,
            result,
        });
    });
}

/// SIGTERM to the agreed targets that still listen, then a wait for the
/// port, as `kill` does; forced, SIGKILL to those still listening then.
pub fn stop(
    port: u16,
    proto: Proto,
    targets: Vec<Proc>,
    force: bool,
    events: Sender<Event>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let plan = Plan {
            timeout: STOP_TIMEOUT,
            force,
        };
        let outcome = stop::still_listening(targets, port, &[proto]).and_then(|targets| {
            if targets.is_empty() {
                return Ok(format!(
                    "port {port}/{proto}: what was agreed to no longer listens; nothing sent"
                ));
            }
            let outcome = stop::stop(&targets, port, &[proto], plan)?;
            Ok(status(port, force, &outcome))
        });
        let _ = events.send(Event::Stopped(
            outcome.unwrap_or_else(|e| words::refusal(&e)),
        ));
    })
}

/// What a stop did, in one line: one clause per process, its signals in
/// order, then what is left on the port.
fn status(port: u16, force: bool, outcome: &stop::Outcome) -> String {
    let mut each: Vec<(&Proc, Vec<&str>)> = Vec::new();
    for (target, signal) in &outcome.sent {
        match each.iter_mut().find(|(t, _)| t.pid == target.pid) {
            Some((_, sent)) => sent.push(words::signal(*signal)),
            None => each.push((target, vec![words::signal(*signal)])),
        }
    }
    let mut clauses: Vec<String> = each
        .iter()
        .map(|(target, sent)| format!("sent {} to {}", sent.join(" then "), words::process(target)))
        .collect();
    clauses.extend(outcome.failed.iter().map(|(target, e)| {
        format!(
            "cannot signal {}: {}",
            words::process(target),
            words::signal_failure(e)
        )
    }));
    let killed = outcome.sent.iter().any(|(_, s)| *s == Signal::Kill);
    let after = match &outcome.release {
        Release::Free => "the port is free".to_string(),
        Release::Lingering(note) => format!("no process holds it; {}", words::note(note)),
        Release::Held if outcome.sent.is_empty() => "still held".to_string(),
        Release::Held if killed => format!("still held after {}", words::signal(Signal::Kill)),
        Release::Held if force => "still held, by none of the processes agreed to".to_string(),
        Release::Held => format!(
            "still held after {:.0}s; `portctl kill --force {port}` sends {}",
            STOP_TIMEOUT.as_secs_f64(),
            words::signal(Signal::Kill)
        ),
    };
    format!("{}; port {port}: {after}", clauses.join(", "))
}
