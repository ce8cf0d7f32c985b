//! `check`: whether a port can be bound, decided by binding it as a server
//! would (`bind`), and who holds it (`holders`).

use crate::cli::CheckArgs;
use crate::exit::{Exit, Result};
use crate::facts::bind::{check_addresses, probe, Verdict};
use crate::facts::port_holders::{find_holders, time_wait_on};
use crate::facts::socket_record::SocketRecord;
use crate::facts::why_busy;
use crate::model::Proto;
use crate::output::{self, words, write_array, Cell, Column, Fit, Format, Output, Style};
use crate::platform::Scope;
use serde::Serialize;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The three answers `check` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Free,
    InUse,
    Unbindable,
}

/// One line of `check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRecord {
    pub port: u16,
    pub proto: Proto,
    pub free: bool,
    pub status: Status,
    pub holders: Vec<SocketRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Worth knowing although the port is free: connections in TIME_WAIT
    /// (a server without SO_REUSEADDR would still fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Probes every (port, transport), in order.
fn probe_all(args: &CheckArgs, addresses: &[IpAddr]) -> Vec<(u16, Proto, Verdict)> {
    let protos = args.transport.protos();
    let mut verdicts = Vec::new();
    for range in &args.ports {
        for port in range.ports() {
            for &proto in &protos {
                verdicts.push((port, proto, probe(port, proto, addresses)));
            }
        }
    }
    verdicts
}

pub fn run(args: &CheckArgs, output: Output) -> Result<Exit> {
    let addresses = check_addresses(args.host);
    let mut verdicts = probe_all(args, &addresses);
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        let mut told = false;
        while verdicts.iter().any(|(_, _, v)| *v != Verdict::Free) && Instant::now() < deadline {
            if !told {
                let busy: Vec<String> = verdicts
                    .iter()
                    .filter(|(_, _, v)| *v != Verdict::Free)
                    .map(|(port, proto, _)| format!("{port}/{proto}"))
                    .collect();
                let _ = writeln!(
                    io::stderr(),
                    "waiting up to {:.0?} for {} to be free...",
                    args.timeout,
                    busy.join(", ")
                );
                told = true;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
            );
            verdicts = probe_all(args, &addresses);
        }
    }
    let held: Vec<(u16, Proto)> = verdicts
        .iter()
        .filter(|(_, _, v)| *v == Verdict::InUse)
        .map(|(port, proto, _)| (*port, *proto))
        .collect();
    let mut holders = find_holders(&held, args.host, Scope::FirstOwner)?;
    let free_tcp: Vec<u16> = verdicts
        .iter()
        .filter(|(_, proto, v)| *proto == Proto::Tcp && *v == Verdict::Free)
        .map(|(port, _, _)| *port)
        .collect();
    let waiting = time_wait_on(&free_tcp, args.host)?;
    let records: Vec<CheckRecord> = verdicts
        .into_iter()
        .map(|(port, proto, verdict)| {
            let holders = holders.remove(&(port, proto)).unwrap_or_default();
            let (status, reason) = match verdict {
                Verdict::Free => (Status::Free, None),
                Verdict::Unbindable(why) => (Status::Unbindable, Some(words::unbindable(&why))),
                Verdict::InUse => (Status::InUse, Some(words::held(&holders))),
            };
            let note = (status == Status::Free)
                .then(|| {
                    why_busy::time_wait(port, proto, &waiting, why_busy::Lingering::ReuseAddrBinds)
                })
                .flatten()
                .map(|n| words::note(&n));
            CheckRecord {
                port,
                proto,
                free: status == Status::Free,
                status,
                holders,
                reason,
                note,
            }
        })
        .collect();
    let answer = if records.iter().all(|r| r.free) {
        Exit::Ok
    } else {
        Exit::Negative
    };
    let stdout = io::stdout().lock();
    let printed = if output.format == Format::Json {
        write_array(stdout, &records)
    } else {
        write_check_text(stdout, output, &records)
    };
    output::deliver(answer, printed)
}

const CHECK_COLUMNS: [Column; 4] = [
    Column::new("PORT", 5),
    Column::new("PROTO", 5),
    Column::new("STATUS", 11),
    Column::new("DETAIL", 0).fit(Fit::Wrap),
];

fn write_check_text<W: Write>(out: W, output: Output, records: &[CheckRecord]) -> io::Result<()> {
    let mut table = output.table(out, &CHECK_COLUMNS);
    for r in records {
        let (status, style) = match r.status {
            Status::Free => ("free", Style::Good),
            Status::InUse => ("in-use", Style::Bad),
            Status::Unbindable => ("unbindable", Style::Warn),
        };
        table.push(vec![
            Cell::new(r.port.to_string()),
            Cell::new(r.proto.as_str()),
            Cell::styled(status, style),
            Cell::new(
                r.reason
                    .clone()
                    .or_else(|| r.note.clone())
                    .unwrap_or_default(),
            ),
        ])?;
    }
    table.finish()
}
