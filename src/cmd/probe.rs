//! `portctl probe HOST:PORT|HOST:RANGE`: TCP connect tests, many at once,
//! against the one host the user names.

use crate::cli::ProbeArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::registry;
use crate::facts::resolve::resolve;
use crate::model::Proto;
use crate::output::{self, endpoint, write_array, Cell, Column, Fit, Output, Style};
use crate::parse::parse_host_range;
use serde::{Deserialize, Serialize};
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    /// The connection was accepted.
    Open,
    /// Refused: nothing listens (or a firewall rejects).
    Closed,
    /// No answer before the timeout: filtered, or the host is down.
    NoAnswer,
    /// Any other error (no route, ...).
    Error,
}

/// One port's result, as `probe --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub addr: IpAddr,
    pub port: u16,
    pub status: ProbeStatus,
    /// Connect time for open and closed ports.
    pub ms: Option<f64>,
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Probes `port` on each address in turn until one accepts: a name with
/// an IPv6 and an IPv4 address is open if either answers.
async fn probe_port(ips: &[IpAddr], port: u16, wait: Duration) -> ProbeRecord {
    let mut best: Option<ProbeRecord> = None;
    for &ip in ips {
        let record = probe_one(SocketAddr::new(ip, port), wait).await;
        if record.status == ProbeStatus::Open {
            return record;
        }
        // Closed says more than silence, silence more than an error.
        let rank = |r: &ProbeRecord| match r.status {
            ProbeStatus::Open => 0,
            ProbeStatus::Closed => 1,
            ProbeStatus::NoAnswer => 2,
            ProbeStatus::Error => 3,
        };
        if best.as_ref().is_none_or(|b| rank(&record) < rank(b)) {
            best = Some(record);
        }
    }
    best.unwrap_or_else(|| ProbeRecord {
        addr: IpAddr::from([0, 0, 0, 0]),
        port,
        status: ProbeStatus::Error,
        ms: None,
        service: None,
        error: Some("no address to probe".into()),
    })
}

async fn probe_one(addr: SocketAddr, wait: Duration) -> ProbeRecord {
    let started = Instant::now();
    let result = tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await;
    let ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    let (status, ms, error) = match result {
        Ok(Ok(_stream)) => (ProbeStatus::Open, ms, None),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            (ProbeStatus::Closed, ms, None)
        }
        Ok(Err(e)) => (ProbeStatus::Error, None, Some(e.to_string())),
        Err(_) => (ProbeStatus::NoAnswer, None, None),
    };
    ProbeRecord {
        addr: addr.ip(),
        port: addr.port(),
        status,
        ms,
        service: registry::service_name(addr.port(), Proto::Tcp.into()).map(str::to_string),
        error,
    }
}

pub fn run(args: &ProbeArgs, output: Output) -> Result<Exit> {
    let (host, range) = parse_host_range(&args.target).map_err(|e| Error::usage(e.to_string()))?;
    let runtime = crate::runtime::build(true).map_err(crate::exit::Error::runtime)?;
    // The resolver gets longer than one connection attempt.
    let resolve_wait = args.timeout.max(Duration::from_secs(5));
    let mut ips: Vec<IpAddr> = runtime
        .block_on(resolve(&host, 0, resolve_wait))?
        .iter()
        .map(SocketAddr::ip)
        .collect();
    ips.dedup();
    let ips = Arc::new(ips);
    let show_bar = range.port_count() > 100 && io::stderr().is_terminal() && !output.is_json();
    let bar = show_bar.then(|| {
        let bar = indicatif::ProgressBar::new(range.port_count() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ports  {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let wait = args.timeout;
    let mut records: Vec<ProbeRecord> = runtime.block_on(async {
        let mut records = Vec::with_capacity(range.port_count());
        let mut tasks = tokio::task::JoinSet::new();
        for port in range.ports() {
            let permit = permits.clone().acquire_owned().await;
            let ips = ips.clone();
            tasks.spawn(async move {
                let record = probe_port(&ips, port, wait).await;
                drop(permit);
                record
            });
            // Keep the finished ones moving so memory stays bounded.
            while let Some(done) = tasks.try_join_next() {
                records.extend(done.ok());
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            records.extend(done.ok());
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        records
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    records.sort_by_key(|r| r.port);
    let open = records
        .iter()
        .filter(|r| r.status == ProbeStatus::Open)
        .count();
    let answer = if open > 0 { Exit::Ok } else { Exit::Negative };
    let everything = range.port_count() <= 32;
    let printed = print(
        io::stdout().lock(),
        output,
        &records,
        everything,
        &host.to_string(),
    );
    output::deliver(answer, printed)
}

/// The records: all of them for a short range, what answered for a long
/// one (with counts on stderr).
fn print<W: Write>(
    out: W,
    output: Output,
    records: &[ProbeRecord],
    everything: bool,
    host: &str,
) -> io::Result<()> {
    if output.is_json() {
        return write_array(out, records);
    }
    let mut table = output.table(out, &COLUMNS);
    for r in records
        .iter()
        .filter(|r| everything || r.status == ProbeStatus::Open)
    {
        table.push(row(r))?;
    }
    table.finish()?;
    if !everything {
        let count = |s| records.iter().filter(|r| r.status == s).count();
        let _ = writeln!(
            io::stderr(),
            "{host}: {} open, {} closed, {} no answer, {} errors",
            count(ProbeStatus::Open),
            count(ProbeStatus::Closed),
            count(ProbeStatus::NoAnswer),
            count(ProbeStatus::Error)
        );
    }
    Ok(())
}

const COLUMNS: [Column; 5] = [
    Column::new("PORT", 5),
    Column::new("STATUS", 9),
    Column::new("TIME", 9),
    Column::new("SERVICE", 14).fit(Fit::Drop(1)),
    Column::new("ADDRESS", 0),
];

fn row(r: &ProbeRecord) -> Vec<Cell> {
    let (status, style) = match r.status {
        ProbeStatus::Open => ("open", Style::Good),
        ProbeStatus::Closed => ("closed", Style::Dim),
        ProbeStatus::NoAnswer => ("no-answer", Style::Warn),
        ProbeStatus::Error => ("error", Style::Bad),
    };
    vec![
        Cell::new(r.port.to_string()),
        Cell::styled(status, style),
        Cell::new(r.ms.map(|ms| format!("{ms:.2}ms")).unwrap_or_default()),
        Cell::new(r.service.clone().unwrap_or_default()),
        Cell::new(
            r.error
                .clone()
                .unwrap_or_else(|| endpoint(SocketAddr::new(r.addr, r.port), false)),
        ),
    ]
}
