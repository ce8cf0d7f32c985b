//! Stopping what listens on a port, shared by `kill` and `top`: which
//! processes are the targets (listeners only, never the clients that
//! merely connect), which are never signalled, and the SIGTERM, wait,
//! SIGKILL sequence.
//!
//! A target is a `Proc`: its PID and its start. Every signal goes through
//! `platform::send_signal`, which reaches that very process or nothing, so
//! a PID handed to another process while a confirmation waited, or during
//! the grace period, is never signalled.

use crate::facts::bind::{check_addresses, probe, Verdict};
use crate::facts::containers::Container;
use crate::facts::port_holders::find_holders;
use crate::facts::process::{self, Proc};
use crate::facts::socket_record::SocketRecord;
use crate::facts::sockets;
use crate::facts::why_busy::{self, Lingering, Note};
use crate::model::{Proto, Signal, TcpState};
use crate::platform::{self, Delivery, ReadError, Scope, TableQuery};
use std::io;
use std::time::{Duration, Instant};

/// Why what holds a port is not stopped.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(transparent)]
    Table(#[from] ReadError),
    /// A container runtime's own process holds it: stopping it stops (or
    /// breaks) every container it serves.
    #[error("port {port} is held by {process}, a container runtime's own process: portctl never stops it")]
    RuntimeProcess {
        port: u16,
        process: String,
        /// The container it publishes the port for, where known.
        container: Option<Box<Container>>,
    },
    /// Its owner cannot be seen from here.
    #[error("port {port} is held by a process that cannot be seen here")]
    Hidden { port: u16, user: Option<String> },
    /// PID 1 (0 and 4 on Windows), portctl itself or its parent.
    #[error("refusing to signal pid {}: portctl never stops {what}, itself or its parent", .target.pid)]
    Protected {
        target: Proc,
        what: &'static str,
        note: Option<&'static str>,
    },
}

/// The listeners of `port`, with their owners' units and containers.
pub fn listening_records(port: u16, protos: &[Proto]) -> Result<Vec<SocketRecord>, ReadError> {
    let keys: Vec<(u16, Proto)> = protos.iter().map(|p| (port, *p)).collect();
    Ok(find_holders(&keys, None, Scope::Every)?
        .into_values()
        .flatten()
        .filter(SocketRecord::is_listening)
        .collect())
}

/// The processes listening on `port`, each with its start. Hidden owners
/// are an error, since nothing can be done about them from here; so is a
/// container runtime's own process, which serves every container it runs.
pub fn listeners(port: u16, protos: &[Proto]) -> Result<Vec<Proc>, StopError> {
    let holders = listening_records(port, protos)?;
    if let Some(runtime) = holders.iter().find(|h| h.held_by_runtime()) {
        return Err(StopError::RuntimeProcess {
            port,
            process: runtime.process.clone().unwrap_or_default(),
            container: runtime.container.clone().map(Box::new),
        });
    }
    if holders.iter().any(|h| h.pid.is_none()) {
        let user = holders.iter().find_map(|h| h.user.clone());
        return Err(StopError::Hidden { port, user });
    }
    let mut pids: Vec<(u32, Option<String>)> = holders
        .iter()
        .flat_map(|h| {
            let pids = if h.pids.is_empty() {
                h.pid.into_iter().collect()
            } else {
                h.pids.clone()
            };
            // Names are known for the first owner; others are looked up.
            pids.into_iter().map(|pid| {
                (
                    pid,
                    (Some(pid) == h.pid).then(|| h.process.clone()).flatten(),
                )
            })
        })
        .collect();
    pids.sort();
    pids.dedup_by_key(|(pid, _)| *pid);
    let unnamed: Vec<u32> = pids
        .iter()
        .filter(|(_, name)| name.is_none())
        .map(|(pid, _)| *pid)
        .collect();
    let names = process::names(&unnamed);
    Ok(pids
        .into_iter()
        .map(|(pid, name)| Proc::now(pid, name.or_else(|| names.get(&pid).cloned())))
        .collect())
}

/// What is left on a port once its servers are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Nothing holds it.
    Free,
    /// Only connections in TIME_WAIT, which no process owns: the stop is
    /// done, and the note says what they mean for the next server.
    Lingering(Note),
    /// Something still holds it.
    Held,
}

impl Release {
    /// Whether the servers are gone: the port is free, or only the kernel
    /// keeps closing connections on it.
    pub fn released(&self) -> bool {
        !matches!(self, Release::Held)
    }
}

/// Whether anything but connections in TIME_WAIT still holds `port`.
pub fn release(port: u16, protos: &[Proto]) -> Release {
    let addresses = check_addresses(None);
    let busy = protos
        .iter()
        .any(|p| probe(port, *p, &addresses) == Verdict::InUse);
    let lingering = time_wait_note(port, protos, busy);
    if !busy {
        return lingering.map_or(Release::Free, Release::Lingering);
    }
    // A bind refused: by a server still there, or by TIME_WAIT left by one
    // that did not set SO_REUSEADDR.
    let keys: Vec<(u16, Proto)> = protos.iter().map(|p| (port, *p)).collect();
    let only_lingering = find_holders(&keys, None, Scope::FirstOwner).is_ok_and(|held| {
        held.values()
            .flatten()
            .all(|h| h.state == Some(TcpState::TimeWait))
    });
    match lingering {
        Some(note) if only_lingering => Release::Lingering(note),
        _ => Release::Held,
    }
}

/// The TIME_WAIT note for `port`: what they mean for a server binding it
/// (`blocked`: a SO_REUSEADDR bind was refused).
fn time_wait_note(port: u16, protos: &[Proto], blocked: bool) -> Option<Note> {
    if !protos.contains(&Proto::Tcp) {
        return None;
    }
    let query = TableQuery {
        udp: false,
        tcp_states: Some(vec![TcpState::TimeWait]),
        ..TableQuery::all()
    };
    let sockets = sockets::read_table(&query).ok()?.sockets;
    let effect = if blocked {
        Lingering::BlocksEveryBind
    } else {
        Lingering::ReuseAddrBinds
    };
    why_busy::time_wait(port, Proto::Tcp, &sockets, effect)
}

/// Waits up to `limit` for the servers of `port` to be gone.
pub fn wait_released(port: u16, protos: &[Proto], limit: Duration) -> Release {
    let deadline = Instant::now() + limit;
    loop {
        let now = release(port, protos);
        if now.released() || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a port's listeners are stopped: how long SIGTERM gets to free the
/// port, and whether SIGKILL follows for those still listening.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub timeout: Duration,
    pub force: bool,
}

/// What a stop did: every signal sent (in order), every process that
/// could not be signalled and why, and what is left on the port.
#[derive(Debug)]
pub struct Outcome {
    pub sent: Vec<(Proc, Signal)>,
    pub failed: Vec<(Proc, io::Error)>,
    pub release: Release,
}

/// SIGTERM to every target, a wait for the port, then SIGKILL to those
/// still listening when the plan says `force`. A target that cannot be
/// signalled does not keep the others from it: its failure is kept with
/// the signals that were sent. A target gone meanwhile (or whose PID is
/// another process's now) is passed over.
pub fn stop(
    targets: &[Proc],
    port: u16,
    protos: &[Proto],
    plan: Plan,
) -> Result<Outcome, StopError> {
    let mut outcome = Outcome {
        sent: Vec::new(),
        failed: Vec::new(),
        release: Release::Held,
    };
    for target in targets {
        let done = match signal(target, Signal::Term, &mut outcome) {
            // A process the polite step cannot ask (no window, on
            // Windows) is ended at once when the plan forces.
            Err(e) if plan.force && e.kind() == io::ErrorKind::Unsupported => {
                signal(target, Signal::Kill, &mut outcome)
            }
            done => done,
        };
        if let Err(e) = done {
            outcome.failed.push((target.clone(), e));
        }
    }
    if outcome.sent.is_empty() && !outcome.failed.is_empty() {
        outcome.release = release(port, protos);
        return Ok(outcome);
    }
    outcome.release = wait_released(port, protos, plan.timeout);
    if !outcome.release.released() && plan.force {
        for now in listeners(port, protos)? {
            // Only what was agreed to: the same PID and the same start.
            let Some(agreed) = targets.iter().find(|t| t.same(&now)) else {
                continue;
            };
            if let Err(e) = signal(agreed, Signal::Kill, &mut outcome) {
                outcome.failed.push((agreed.clone(), e));
            }
        }
        outcome.release = wait_released(port, protos, Duration::from_secs(2));
    }
    Ok(outcome)
}

/// Sends `signal` to `target` alone, noting it when it was sent.
fn signal(target: &Proc, signal: Signal, outcome: &mut Outcome) -> io::Result<()> {
    if platform::send_signal(target.pid, target.start, signal)? == Delivery::Sent {
        outcome.sent.push((target.clone(), signal));
    }
    Ok(())
}

/// The agreed `targets` that still listen on `port`: a confirmation may
/// have waited long, and a PID reused in the meantime is not the process
/// that was agreed to.
pub fn still_listening(
    mut targets: Vec<Proc>,
    port: u16,
    protos: &[Proto],
) -> Result<Vec<Proc>, StopError> {
    let now = listeners(port, protos)?;
    targets.retain(|t| now.iter().any(|n| t.same(n)));
    Ok(targets)
}

/// Refuses the system's own processes (PID 1; PIDs 0 and 4 on Windows),
/// portctl itself and its parent.
pub fn refuse_protected(targets: &[Proc]) -> Result<(), StopError> {
    let me = std::process::id();
    let parent = platform::parent_pid();
    match targets.iter().find(|t| {
        platform::is_system_process(t.pid, t.process.as_deref())
            || t.pid == me
            || Some(t.pid) == parent
    }) {
        Some(target) => Err(StopError::Protected {
            target: target.clone(),
            what: platform::system_processes(),
            note: platform::holder_note(target.pid),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portctl_its_parent_and_the_system_are_refused() {
        let me = Proc::now(std::process::id(), Some("portctl".into()));
        assert!(matches!(
            refuse_protected(&[me]),
            Err(StopError::Protected { .. })
        ));
        // The system's own: PID 1 on Unix, PIDs 0 and 4 on Windows.
        let system = [(1, "init"), (4, "System"), (0, "System Idle Process")]
            .into_iter()
            .find(|(pid, name)| platform::is_system_process(*pid, Some(name)))
            .expect("some system process");
        let system = Proc::now(system.0, Some(system.1.into()));
        assert!(matches!(
            refuse_protected(&[system]),
            Err(StopError::Protected { .. })
        ));
    }

    #[test]
    fn a_target_whose_start_changed_is_never_signalled() {
        // This process, but said to have started at another time: a
        // reused PID. Nothing may reach it.
        let me = Proc::now(std::process::id(), None);
        let Some(start) = me.start else {
            return; // no exact starts on this OS (platform::process_start)
        };
        let other = Proc {
            start: Some(start + 1),
            ..me
        };
        let mut outcome = Outcome {
            sent: Vec::new(),
            failed: Vec::new(),
            release: Release::Held,
        };
        signal(&other, Signal::Kill, &mut outcome).unwrap();
        assert!(outcome.sent.is_empty());
    }
}
