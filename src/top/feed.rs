//! The background work of `top`: the table read every interval, and the
//! slow answers the keys ask for (a story, a kill's targets, the kill
//! itself), each on a thread of its own that sends an `Event` back, so the
//! keyboard never waits for the OS.

use super::state::{key_of, Event, Reading, SocketKey};
use crate::exit::Result;
use crate::model::Proto;
use crate::process;
use crate::record::{Lookups, Snapshot};
use crate::rows::summarize;
use crate::sockets::{self, TableQuery};
use crate::stopping::{self, Plan, Target};
use crate::story;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

/// How long SIGTERM gets to free the port, as `kill`'s default.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the table every `every` until the receiver is gone.
pub fn readings(every: Duration, events: Sender<Event>) {
    thread::spawn(move || loop {
        let event = match read() {
            Ok(reading) => Event::Reading(reading),
            Err(e) => Event::ReadFailed(e.message),
        };
        if events.send(event).is_err() {
            return;
        }
        thread::sleep(every);
    });
}

/// Every socket with its owner, unit and container. Units and containers
/// are looked up afresh each time: a PID may be reused while top runs.
fn read() -> Result<Reading> {
    let (mut table, owners) = sockets::read_table_with_owners(&TableQuery::all())?;
    let sockets = std::mem::take(&mut table.sockets);
    let names = process::names(&owners.pids_of(&sockets));
    let snapshot = Snapshot {
        sockets,
        owners,
        names,
    };
    let mut lookups = Lookups::new(true);
    Ok(Reading {
        records: snapshot
            .sockets
            .iter()
            .map(|s| snapshot.record(s, &mut lookups))
            .collect(),
        counts: summarize(&snapshot.sockets),
    })
}

/// `who`'s story of the port, and this socket's part in it.
pub fn story(key: SocketKey, events: Sender<Event>) {
    thread::spawn(move || {
        let (proto, local, ..) = key;
        let result = story::story(local.port(), &[proto])
            .map_err(|e| e.message)
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
        let result = stopping::listeners(port, &[proto])
            .and_then(|targets| {
                stopping::refuse_protected(&targets)?;
                Ok(targets)
            })
            .map_err(|e| e.message);
        let _ = events.send(Event::Targets {
            port,
            proto,
            result,
        });
    });
}

/// SIGTERM to the agreed targets that still listen, then a wait for the
/// port, as `kill` without `--force`.
pub fn stop(port: u16, proto: Proto, targets: Vec<Target>, events: Sender<Event>) {
    thread::spawn(move || {
        let plan = Plan {
            timeout: STOP_TIMEOUT,
            force: false,
        };
        let outcome = stopping::still_listening(targets, port, &[proto]).and_then(|targets| {
            if targets.is_empty() {
                return Ok(format!("port {port}/{proto}: nothing listens any more"));
            }
            let (signals, free) = stopping::stop(&targets, port, &[proto], plan)?;
            let sent: Vec<String> = signals
                .iter()
                .map(|s| {
                    let target = Target {
                        pid: s.pid,
                        name: s.process.clone(),
                    };
                    format!("sent {} to {target}", s.signal)
                })
                .collect();
            let after = if free {
                "the port is free".to_string()
            } else {
                format!(
                    "still held after {:.0}s; `portctl kill --force {port}` sends SIGKILL",
                    STOP_TIMEOUT.as_secs_f64()
                )
            };
            Ok(format!("{}; port {port}: {after}", sent.join(", ")))
        });
        let _ = events.send(Event::Stopped(outcome.unwrap_or_else(|e| e.message)));
    });
}
