//! `portctl kill PORT`: stop what listens on a port — never the clients
//! that merely connect to it.

use crate::cli::KillArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::containers::{self, Container};
use crate::facts::process::Proc;
use crate::facts::stop::{
    listeners, listening_records, refuse_protected, release, still_listening, stop, wait_released,
    Outcome, Plan, Release,
};
use crate::model::{Proto, Signal};
use crate::output::{self, sanitize, words, Output};
use serde::Serialize;
use std::io::{self, BufRead, IsTerminal, Write};

/// What `kill --json` reports.
#[derive(Debug, Serialize)]
struct KillReport {
    port: u16,
    /// Each signal sent, in order.
    signals: Vec<Sent>,
    /// Processes that could not be signalled, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<Failed>,
    /// Whether no server holds the port afterwards (connections in
    /// TIME_WAIT may remain: `note` says what they mean).
    free: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// A signal sent, as the OS names it (`SIGTERM`, or `WM_CLOSE` on
/// Windows).
#[derive(Debug, Serialize)]
struct Sent {
    #[serde(flatten)]
    process: Proc,
    signal: &'static str,
}

#[derive(Debug, Serialize)]
struct Failed {
    #[serde(flatten)]
    process: Proc,
    error: String,
}

/// What the report says after the signals, and the exit it means.
/// What is left on the port, in words; `waited` when a signal was sent
/// and the port was given its timeout.
fn outcome_text(
    args: &KillArgs,
    protos: &[Proto],
    release: &Release,
    waited: bool,
) -> (String, Option<String>) {
    match release {
        Release::Free => ("the port is free".to_string(), None),
        Release::Lingering(note) => {
            let note = words::note(note);
            (format!("no process holds the port; {note}"), Some(note))
        }
        Release::Held => {
            let mut text = if args.force || !waited {
                "the port is still held".to_string()
            } else {
                format!(
                    "the port is still held after {:.1}s; --force sends {}",
                    args.timeout.as_secs_f64(),
                    words::signal(Signal::Kill)
                )
            };
            // A container's first process may ignore SIGTERM: say how its
            // runtime stops it.
            let inside = listening_records(args.port, protos)
                .unwrap_or_default()
                .into_iter()
                .find_map(|r| r.container);
            if let Some(container) = inside {
                text.push_str(&format!(
                    "; it runs in {}: `{}` or kill --container stops it",
                    words::container(&container),
                    sanitize(&containers::stop_command(&container))
                ));
            }
            (text, None)
        }
    }
}

/// Asks on the terminal; false when the answer is not yes.
fn confirm(targets: &[Proc], port: u16) -> Result<bool> {
    let names: Vec<String> = targets.iter().map(words::process).collect();
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
        let left = release(port, &protos);
        let (note, lingering) = outcome_text(args, &protos, &left, false);
        let report = KillReport {
            port,
            signals: Vec::new(),
            failed: Vec::new(),
            free: left.released(),
            note: lingering,
        };
        let text = if left.released() {
            format!("nothing listens on this port; {note}")
        } else {
            "nothing listens on this port, yet it is held".to_string()
        };
        return output::deliver(
            answer(&left, &[]),
            print(io::stdout().lock(), output, &report, &text),
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
    let Outcome {
        sent,
        failed,
        release,
    } = stop(&targets, port, &protos, plan)?;
    let (note, lingering) = outcome_text(args, &protos, &release, !sent.is_empty());
    let report = KillReport {
        port,
        signals: sent
            .into_iter()
            .map(|(process, signal)| Sent {
                process,
                signal: words::signal(signal),
            })
            .collect(),
        failed: failed
            .into_iter()
            .map(|(process, e)| Failed {
                process,
                error: words::signal_failure(&e),
            })
            .collect(),
        free: release.released(),
        note: lingering,
    };
    output::deliver(
        answer(&release, &report.failed),
        print(io::stdout().lock(), output, &report, &note),
    )
}

/// Exit 0 once no server holds the port, whatever TIME_WAIT is left; 1
/// when one still does.
fn answer(release: &Release, failed: &[Failed]) -> Exit {
    if release.released() && failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Negative
    }
}

fn print<W: Write>(mut out: W, output: Output, report: &KillReport, note: &str) -> io::Result<()> {
    if output.is_json() {
        return output::write_line(&mut out, report);
    }
    for s in &report.signals {
        writeln!(out, "sent {} to {}", s.signal, words::process(&s.process))?;
    }
    for f in &report.failed {
        writeln!(
            out,
            "cannot signal {}: {}",
            words::process(&f.process),
            sanitize(&f.error)
        )?;
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
    let what = words::container(&container);
    if !args.yes && !confirm_text(&format!("Stop {what} (port {port})?"))? {
        let _ = writeln!(io::stderr(), "nothing done");
        return Ok(Exit::Negative);
    }
    containers::stop(&container, args.timeout).map_err(|source| Error::Container {
        what: what.clone(),
        source,
    })?;
    let left = wait_released(port, protos, args.timeout);
    let report = ContainerReport {
        port,
        container,
        stopped: true,
        free: left.released(),
    };
    let mut out = io::stdout().lock();
    let printed = if output.is_json() {
        output::write_line(&mut out, &report)
    } else {
        writeln!(out, "stopped {what}").and_then(|()| {
            writeln!(
                out,
                "port {port}: {}",
                if left.released() {
                    "the port is free"
                } else {
                    "the port is still held"
                }
            )
        })
    };
    output::deliver(answer(&left, &[]), printed)
}

/// What `kill --container --json` reports.
#[derive(Debug, Serialize)]
struct ContainerReport {
    port: u16,
    container: Container,
    stopped: bool,
    free: bool,
}
