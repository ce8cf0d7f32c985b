//! Stopping what listens on a port, shared by `kill` and `top`: which
//! processes are the targets (listeners only, never the clients that merely
//! connect), which are never signalled, and the SIGTERM, wait, SIGKILL
//! sequence.

use crate::facts::bind::{check_addresses, probe, Verdict};
use crate::facts::containers;
use crate::exit::{Error, Result};
use crate::facts::port_holders::{find_holders, ContainerText, HiddenOwner};
use crate::model::{Proto, Signal};
use crate::output;
use crate::platform;
use crate::facts::socket_record::SocketRecord;
use crate::platform::Scope;
use serde::{Deserialize, Serialize};
use std::io;
use std::time::{Duration, Instant, SystemTime};

/// A signal sent to a listener, as `kill --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signalled {
    pub pid: u32,
    pub process: Option<String>,
    pub signal: Signal,
}

/// A process listening on the port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub pid: u32,
    pub name: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} (pid {})", output::sanitize(name), self.pid),
            None => write!(f, "pid {}", self.pid),
        }
    }
}

/// The listeners of `port`, with their owners' units and containers.
pub fn listening_records(port: u16, protos: &[Proto]) -> Result<Vec<SocketRecord>> {
    let keys: Vec<(u16, Proto)> = protos.iter().map(|p| (port, *p)).collect();
    Ok(find_holders(&keys, None, Scope::Every)?
        .into_values()
        .flatten()
        .filter(SocketRecord::is_listening)
        .collect())
}

/// The processes listening on `port`. Hidden owners are an error, since
/// nothing can be done about them from here; so is a container runtime's
/// own process, which serves every container it runs.
pub fn listeners(port: u16, protos: &[Proto]) -> Result<Vec<Target>> {
    let holders = listening_records(port, protos)?;
    if let Some(runtime) = holders.iter().find(|h| h.held_by_runtime()) {
        let name = output::sanitize(runtime.process.as_deref().unwrap_or_default()).into_owned();
        return Err(Error::negative(match &runtime.container {
            Some(container) => format!(
                "port {port} is published by {}: portctl never stops {name}, which serves every container; stop the container with `{}`, or add --container",
                ContainerText(container),
                containers::stop_command(container)
            ),
            None => format!(
                "port {port} is held by {name}, a container runtime's own process: portctl never stops it"
            ),
        }));
    }
    if holders.iter().any(|h| h.pid.is_none()) {
        return Err(Error::negative(format!(
            "port {port} is held by {}",
            HiddenOwner::of(&holders, "stop it")
        )));
    }
    let mut targets: Vec<Target> = holders
        .iter()
        .flat_map(|h| {
            let pids = if h.pids.is_empty() {
                h.pid.into_iter().collect()
            } else {
                h.pids.clone()
            };
            pids.into_iter().map(|pid| Target {
                pid,
                // Names are known for the first owner; others are looked up.
                name: (Some(pid) == h.pid).then(|| h.process.clone()).flatten(),
            })
        })
        .collect();
    let unnamed: Vec<u32> = targets
        .iter()
        .filter(|t| t.name.is_none())
        .map(|t| t.pid)
        .collect();
    let names = crate::facts::process::names(&unnamed);
    for target in &mut targets {
        if target.name.is_none() {
            target.name = names.get(&target.pid).cloned();
        }
    }
    targets.sort();
    targets.dedup_by_key(|t| t.pid);
    Ok(targets)
}

pub fn port_free(port: u16, protos: &[Proto]) -> bool {
    let addresses = check_addresses(None);
    protos
        .iter()
        .all(|p| probe(port, *p, &addresses) != Verdict::InUse)
}

pub fn wait_free(port: u16, protos: &[Proto], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if port_free(port, protos) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
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

/// SIGTERM to every target, a wait for the port, then SIGKILL to those
/// still listening when the plan says `force`: the signals sent, and
/// whether the port is free.
pub fn stop(
    targets: &[Target],
    port: u16,
    protos: &[Proto],
    plan: Plan,
) -> Result<(Vec<Signalled>, bool)> {
    // The targets were alive, as agreed, when this began.
    let began = SystemTime::now();
    let mut signals = Vec::new();
    let mut signal = |target: &Target, signal: Signal| -> io::Result<()> {
        platform::send_signal(target.pid, signal)?;
        signals.push(Signalled {
            pid: target.pid,
            process: target.name.clone(),
            signal,
        });
        Ok(())
    };
    // A process that cannot be asked (no window on Windows) does not keep
    // the others from being asked; if none could be, that is the answer.
    let (mut unasked, mut reached) = (None, 0);
    for target in targets {
        match signal(target, Signal::Term) {
            Err(e) if straight_to_kill(&e, plan) => signal(target, Signal::Kill),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                unasked.get_or_insert(cannot_signal(target, &e));
                continue;
            }
            done => done,
        }
        .map_err(|e| cannot_signal(target, &e))?;
        reached += 1;
    }
    if let Some(error) = unasked.filter(|_| reached == 0) {
        return Err(error);
    }
    let mut free = wait_free(port, protos, plan.timeout);
    if !free && plan.force {
        for target in listeners(port, protos)? {
            if targets.iter().any(|t| same_process(t, &target, began)) {
                signal(&target, Signal::Kill).map_err(|e| cannot_signal(&target, &e))?;
            }
        }
        free = wait_free(port, protos, Duration::from_secs(2));
    }
    Ok((signals, free))
}

/// Whether a listener found after the wait is the agreed process: the
/// same PID and name, or the same PID in a process that started before
/// the stop began (one that renamed itself while draining). A PID reused
/// meanwhile started later; start times may be whole seconds (Windows),
/// hence the second's margin.
fn same_process(agreed: &Target, now: &Target, began: SystemTime) -> bool {
    agreed.pid == now.pid
        && (agreed.name == now.name
            || platform::process_facts(now.pid)
                .and_then(|f| f.started)
                .is_some_and(|started| started + Duration::from_secs(1) <= began))
}

/// A process the polite step cannot ask (on Windows, one without a
/// window: there is no SIGTERM) is ended at once when the plan forces,
/// and otherwise left alone with the reason.
fn straight_to_kill(e: &io::Error, plan: Plan) -> bool {
    plan.force && e.kind() == io::ErrorKind::Unsupported
}

fn cannot_signal(target: &Target, e: &io::Error) -> Error {
    Error::negative(format!("cannot signal {target}: {e}"))
}

/// The agreed `targets` that still listen on `port`: a confirmation may
/// have waited long, and a PID reused in the meantime is never signalled.
pub fn still_listening(
    mut targets: Vec<Target>,
    port: u16,
    protos: &[Proto],
) -> Result<Vec<Target>> {
    let now = listeners(port, protos)?;
    targets.retain(|t| now.contains(t));
    Ok(targets)
}

/// Refuses the system's own processes (PID 1; PIDs 0 and 4 on Windows),
/// portctl itself and its parent.
pub fn refuse_protected(targets: &[Target]) -> Result<()> {
    let me = std::process::id();
    let parent = platform::parent_pid();
    match targets.iter().find(|t| {
        platform::is_system_process(t.pid, t.name.as_deref())
            || t.pid == me
            || Some(t.pid) == parent
    }) {
        Some(target) => Err(Error::negative(format!(
            "refusing to signal {target}: portctl never stops {}, itself or its parent{}",
            platform::system_processes(),
            platform::holder_note(target.pid)
                .map(|note| format!("; {note}"))
                .unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")] // start times are read from /proc
    #[test]
    fn a_renamed_process_is_the_same_and_a_reused_pid_is_not() {
        let named = |name: &str| Target {
            pid: 1,
            name: Some(name.into()),
        };
        let now = SystemTime::now();
        assert!(same_process(&named("init"), &named("init"), now));
        // PID 1 started long before now: renamed, still the same process.
        assert!(same_process(&named("server"), &named("draining"), now));
        // Had the stop begun before PID 1 started, it would be another.
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        assert!(!same_process(
            &named("server"),
            &named("draining"),
            long_ago
        ));
        let other = Target {
            pid: 2,
            name: Some("init".into()),
        };
        assert!(!same_process(&named("init"), &other, now));
    }

    #[test]
    fn a_process_that_cannot_be_asked_is_ended_only_when_forced() {
        let no_window = io::Error::new(io::ErrorKind::Unsupported, "no window");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let plan = |force| Plan {
            timeout: Duration::from_secs(1),
            force,
        };
        assert!(straight_to_kill(&no_window, plan(true)));
        assert!(!straight_to_kill(&no_window, plan(false)));
        assert!(!straight_to_kill(&denied, plan(true)));
    }
}
