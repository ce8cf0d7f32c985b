//! `portctl kill PORT`: stop what listens on a port — never the clients
//! that merely connect to it.

use crate::cli::KillArgs;
use crate::facts::containers::{self, Container};
use crate::exit::{Error, Exit, Result};
use crate::facts::port_holders::ContainerText;
use crate::model::{Proto, Signal};
use crate::output::{self, Output};
pub use crate::facts::stop::Signalled;
use crate::facts::stop::{
    listeners, listening_records, port_free, refuse_protected, still_listening, stop, wait_free,
    Plan, Target,
};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, IsTerminal, Write};

/// What `kill --json` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillReport {
    pub port: u16,
    /// Each signal sent, in order.
    pub signals: Vec<Signalled>,
    /// Whether the port is free afterwards.
    pub free: bool,
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
            "the port is still held after {:.1}s; --force sends {}",
            args.timeout.as_secs_f64(),
            Signal::Kill
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
        targets = still_listening(targets, port, &protos)?;
    }
    let plan = Plan {
        timeout: args.timeout,
        force: args.force,
    };
    let (signals, free) = stop(&targets, port, &protos, plan)?;
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
