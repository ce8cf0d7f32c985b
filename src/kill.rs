//! `portctl kill PORT`: stop what listens on a port — never the clients
//! that merely connect to it.

use crate::check::{check_addresses, find_holders, probe, Holder, Verdict};
use crate::cli::KillArgs;
use crate::exit::{Error, Exit, Result};
use crate::model::Proto;
use crate::output::{self, Output};
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
    /// `SIGTERM` or `SIGKILL`.
    pub signal: String,
}

/// The processes listening on `port`: (pid, name). Hidden owners are an
/// error, since nothing can be done about them without privileges.
fn listeners(port: u16, protos: &[Proto]) -> Result<Vec<(u32, Option<String>)>> {
    let keys: Vec<(u16, Proto)> = protos.iter().map(|p| (port, *p)).collect();
    let holders: Vec<Holder> = find_holders(&keys, None, Scope::Every)?
        .into_values()
        .flatten()
        .filter(|h| h.listening)
        .collect();
    if holders.iter().any(|h| h.pid.is_none()) {
        return Err(Error::negative(format!(
            "port {port} is held by a process you cannot see; run with sudo to stop it"
        )));
    }
    let mut pids: Vec<(u32, Option<String>)> = holders
        .into_iter()
        .filter_map(|h| Some((h.pid?, h.process)))
        .collect();
    pids.sort();
    pids.dedup_by_key(|(pid, _)| *pid);
    Ok(pids)
}

fn port_free(port: u16, protos: &[Proto]) -> bool {
    let addresses = check_addresses(None);
    protos
        .iter()
        .all(|p| probe(port, *p, &addresses) != Verdict::InUse)
}

/// The signals `kill` sends.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// Sends `signal`; a process already gone is not an error.
#[cfg(unix)]
fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let signal = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) with a checked pid and a valid signal number.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(not(unix))]
fn send(_pid: u32, _signal: Signal) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "signals are not supported on this platform yet",
    ))
}

/// portctl's parent, which it never signals.
#[cfg(unix)]
fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions.
    u32::try_from(unsafe { libc::getppid() }).unwrap_or(0)
}

#[cfg(not(unix))]
fn parent_pid() -> u32 {
    0
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

fn who(pid: u32, name: &Option<String>) -> String {
    match name {
        Some(name) => format!("{} (pid {pid})", output::sanitize(name)),
        None => format!("pid {pid}"),
    }
}

pub fn run(args: &KillArgs, output: Output) -> Result<Exit> {
    let protos = args.transport.protos();
    let port = args.port;
    let targets = listeners(port, &protos)?;
    if targets.is_empty() {
        let free = port_free(port, &protos);
        report(
            output,
            &KillReport {
                port,
                signals: Vec::new(),
                free,
            },
            "nothing listens on this port",
        )?;
        return Ok(if free { Exit::Ok } else { Exit::Negative });
    }
    let me = std::process::id();
    let parent = parent_pid();
    if let Some((pid, name)) = targets
        .iter()
        .find(|(pid, _)| *pid == 1 || *pid == me || *pid == parent)
    {
        return Err(Error::negative(format!(
            "refusing to signal {}: portctl never stops PID 1, itself or its parent",
            who(*pid, name)
        )));
    }
    let names: Vec<String> = targets.iter().map(|(pid, name)| who(*pid, name)).collect();
    if !args.yes {
        if !io::stdin().is_terminal() {
            return Err(Error::usage(format!(
                "not on a terminal: add --yes to stop {} listening on port {port}",
                names.join(", ")
            )));
        }
        let _ = write!(
            io::stderr(),
            "Stop {} listening on port {port}? [y/N] ",
            names.join(", ")
        );
        let _ = io::stderr().flush();
        let mut answer = String::new();
        let _ = io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            let _ = writeln!(io::stderr(), "nothing done");
            return Ok(Exit::Negative);
        }
    }
    let mut signals = Vec::new();
    let mut signal = |pid: u32, name: &Option<String>, signal: Signal| -> Result<()> {
        send(pid, signal)
            .map_err(|e| Error::negative(format!("cannot signal {}: {e}", who(pid, name))))?;
        signals.push(Signalled {
            pid,
            process: name.clone(),
            signal: signal.name().into(),
        });
        Ok(())
    };
    for (pid, name) in &targets {
        signal(*pid, name, Signal::Term)?;
    }
    let mut free = wait_free(port, &protos, args.timeout);
    if !free && args.force {
        for (pid, name) in listeners(port, &protos)? {
            if targets.iter().any(|(p, _)| *p == pid) {
                signal(pid, &name, Signal::Kill)?;
            }
        }
        free = wait_free(port, &protos, Duration::from_secs(2));
    }
    let note = if free {
        "the port is free".to_string()
    } else if args.force {
        "the port is still held".to_string()
    } else {
        format!(
            "the port is still held after {:.1}s; --force sends SIGKILL",
            args.timeout.as_secs_f64()
        )
    };
    report(
        output,
        &KillReport {
            port,
            signals,
            free,
        },
        &note,
    )?;
    Ok(if free { Exit::Ok } else { Exit::Negative })
}

fn report(output: Output, report: &KillReport, note: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if output.is_json() {
        return output::write_line(&mut out, report);
    }
    for s in &report.signals {
        writeln!(out, "sent {} to {}", s.signal, who(s.pid, &s.process))?;
    }
    writeln!(out, "port {}: {note}", report.port)?;
    out.flush()
}
