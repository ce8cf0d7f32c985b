//! `portctl kill PORT`: stop what listens on a port — never the clients
//! that merely connect to it.

use crate::bind::{check_addresses, probe, Verdict};
use crate::cli::KillArgs;
use crate::containers::{self, Container};
use crate::exit::{Error, Exit, Result};
use crate::holders::{find_holders, ContainerText, HiddenOwner};
use crate::model::{Proto, Signal};
use crate::output::{self, Output};
use crate::platform;
use crate::record::SocketRecord;
use crate::sockets::Scope;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

/// What `kill --json` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillReport {
    pub port: u16,
    /// Each signal sent, in order.
    pub signals: Vec<Signalled>,
    /// Whether the port is free afterwards.
    pub free: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signalled {
    pub pid: u32,
    pub process: Option<String>,
    pub signal: Signal,
}

/// A process listening on the port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    pid: u32,
    name: Option<String>,
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
fn listening_records(port: u16, protos: &[Proto]) -> Result<Vec<SocketRecord>> {
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
fn listeners(port: u16, protos: &[Proto]) -> Result<Vec<Target>> {
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
    let names = crate::process::names(&unnamed);
    for target in &mut targets {
        if target.name.is_none() {
            target.name = names.get(&target.pid).cloned();
        }
    }
    targets.sort();
    targets.dedup_by_key(|t| t.pid);
    Ok(targets)
}

fn port_free(port: u16, protos: &[Proto]) -> bool {
    let addresses = check_addresses(None);
    protos
        .iter()
        .all(|p| probe(port, *p, &addresses) != Verdict::InUse)
}

fn wait_free(port: u16, protos: &[Proto], limit: Duration) -> bool {
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

/// SIGTERM to every target, a wait for the port, then SIGKILL to those
/// still listening with `--force`: the signals sent, and whether the port
/// is free.
fn stop(targets: &[Target], args: &KillArgs, protos: &[Proto]) -> Result<(Vec<Signalled>, bool)> {
    let port = args.port;
    let mut signals = Vec::new();
    let mut signal = |target: &Target, signal: Signal| -> Result<()> {
        platform::send_signal(target.pid, signal)
            .map_err(|e| Error::negative(format!("cannot signal {target}: {e}")))?;
        signals.push(Signalled {
            pid: target.pid,
            process: target.name.clone(),
            signal,
        });
        Ok(())
    };
    for target in targets {
        signal(target, Signal::Term)?;
    }
    let mut free = wait_free(port, protos, args.timeout);
    if !free && args.force {
        for target in listeners(port, protos)? {
            if targets.contains(&target) {
                signal(&target, Signal::Kill)?;
            }
        }
        free = wait_free(port, protos, Duration::from_secs(2));
    }
    Ok((signals, free))
}

/// What the report says after the signals.
fn outcome(args: &KillArgs, protos: &[Proto], free: bool) -> String {
    if free {
        return "the port is free".to_string();
    }
    let mut note = if args.force {
        "the port is still held".to_string()
    } else {
        format!(
            "the port is still held after {:.1}s; --force sends SIGKILL",
            args.timeout.as_secs_f64()
        )
    };
    // A container's first process may ignore SIGTERM: say how its runtime
    // stops it.
    let inside = listening_records(args.port, protos)
        .unwrap_or_default()
        .into_iter()
        .find_map(|r| r.container);
    if let Some(container) = inside {
        note.push_str(&format!(
            "; it runs in {}: `{}` or kill --container stops it",
            ContainerText(&container),
            containers::stop_command(&container)
        ));
    }
    note
}

/// Refuses PID 1, portctl itself and its parent.
fn refuse_protected(targets: &[Target]) -> Result<()> {
    let me = std::process::id();
    let parent = platform::parent_pid();
    match targets
        .iter()
        .find(|t| t.pid == 1 || t.pid == me || Some(t.pid) == parent)
    {
        Some(target) => Err(Error::negative(format!(
            "refusing to signal {target}: portctl never stops PID 1, itself or its parent"
        ))),
        None => Ok(()),
    }
}

/// Asks on the terminal; false when the answer is not yes.
fn confirm(targets: &[Target], port: u16) -> Result<bool> {
    let names: Vec<String> = targets.iter().map(Target::to_string).collect();
    confirm_text(&format!(
        "Stop {} listening on port {port}?",
        names.join(", ")
    ))
}

/// Asks `question [y/N]` on the terminal; refuses without one.
fn confirm_text(question: &str) -> Result<bool> {
    if !io::stdin().is_terminal() {
        return Err(Error::usage(format!(
            "not on a terminal: add --yes to confirm: {question}"
        )));
    }
    let _ = write!(io::stderr(), "{question} [y/N] ");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    let _ = io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn run(args: &KillArgs, output: Output) -> Result<Exit> {
    let protos = args.transport.protos();
    let port = args.port;
    if args.container {
        return stop_container(args, &protos, output);
    }
    let mut targets = listeners(port, &protos)?;
    if targets.is_empty() {
        let free = port_free(port, &protos);
        let answer = if free { Exit::Ok } else { Exit::Negative };
        let report = KillReport {
            port,
            signals: Vec::new(),
            free,
        };
        return output::deliver(
            answer,
            print(
                io::stdout().lock(),
                output,
                &report,
                "nothing listens on this port",
            ),
        );
    }
    refuse_protected(&targets)?;
    if !args.yes {
        if !confirm(&targets, port)? {
            let _ = writeln!(io::stderr(), "nothing done");
            return Ok(Exit::Negative);
        }
        // The prompt may have waited long: signal only what still listens
        // now and was agreed to, never a PID reused in the meantime.
        let now = listeners(port, &protos)?;
        targets.retain(|t| now.contains(t));
    }
    let (signals, free) = stop(&targets, args, &protos)?;
    let note = outcome(args, &protos, free);
    let report = KillReport {
        port,
        signals,
        free,
    };
    let answer = if free { Exit::Ok } else { Exit::Negative };
    output::deliver(answer, print(io::stdout().lock(), output, &report, &note))
}

fn print<W: Write>(mut out: W, output: Output, report: &KillReport, note: &str) -> io::Result<()> {
    if output.is_json() {
        return output::write_line(&mut out, report);
    }
    for s in &report.signals {
        let target = Target {
            pid: s.pid,
            name: s.process.clone(),
        };
        writeln!(out, "sent {} to {target}", s.signal)?;
    }
    writeln!(out, "port {}: {note}", report.port)?;
    out.flush()
}

/// `kill --container`: stops the container behind the port through its
/// runtime's API, after the same confirmation as any kill.
fn stop_container(args: &KillArgs, protos: &[Proto], output: Output) -> Result<Exit> {
    let port = args.port;
    let records = listening_records(port, protos)?;
    let Some(container) = records.iter().find_map(|r| r.container.clone()) else {
        return Err(Error::negative(format!(
            "no container is behind port {port}: nothing to stop with --container"
        )));
    };
    let what = ContainerText(&container).to_string();
    if !args.yes && !confirm_text(&format!("Stop {what} (port {port})?"))? {
        let _ = writeln!(io::stderr(), "nothing done");
        return Ok(Exit::Negative);
    }
    containers::stop(&container, args.timeout)
        .map_err(|e| Error::failure(format!("cannot stop {what}: {e}")))?;
    let free = wait_free(port, protos, args.timeout);
    let report = ContainerReport {
        port,
        container,
        stopped: true,
        free,
    };
    let answer = if free { Exit::Ok } else { Exit::Negative };
    let mut out = io::stdout().lock();
    let printed = if output.is_json() {
        output::write_line(&mut out, &report)
    } else {
        writeln!(out, "stopped {what}").and_then(|()| {
            writeln!(
                out,
                "port {port}: {}",
                if free {
                    "the port is free"
                } else {
                    "the port is still held"
                }
            )
        })
    };
    output::deliver(answer, printed)
}

/// What `kill --container --json` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub port: u16,
    pub container: Container,
    pub stopped: bool,
    pub free: bool,
}
