//! `portctl wait HOST:PORT`: block until something accepts TCP connections
//! there, for scripts that start a server and must not race it.

use crate::cli::WaitArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::resolve::resolve_now;
use crate::output::{self, Output};
use crate::parse::parse_host_port;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What `wait --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitReport {
    pub target: String,
    pub open: bool,
    pub waited_ms: u64,
}

pub fn run(args: &WaitArgs, output: Output) -> Result<Exit> {
    let (host, port) = parse_host_port(&args.target).map_err(|e| Error::usage(e.to_string()))?;
    let started = Instant::now();
    let deadline = started + args.timeout;
    let open = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        // A name is looked up again on every try: it may only appear once
        // the service starts.
        if resolve_now(&host, port)
            .iter()
            .any(|addr| TcpStream::connect_timeout(addr, attempt).is_ok())
        {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(
            Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
        );
    };
    let report = WaitReport {
        target: format!("{host}:{port}"),
        open,
        waited_ms: started.elapsed().as_millis() as u64,
    };
    let answer = if open { Exit::Ok } else { Exit::Negative };
    output::deliver(
        answer,
        print(io::stdout().lock(), output, &report, args.timeout),
    )
}

/// The report on stdout; a timeout is said on stderr.
fn print<W: Write>(
    mut out: W,
    output: Output,
    report: &WaitReport,
    limit: Duration,
) -> io::Result<()> {
    if output.is_json() {
        return output::write_line(out, report);
    }
    if report.open {
        return writeln!(
            out,
            "{} is accepting connections (after {:.1}s)",
            report.target,
            report.waited_ms as f64 / 1000.0
        );
    }
    let _ = writeln!(
        io::stderr(),
        "portctl: nothing accepted connections on {} within {:.1}s",
        report.target,
        limit.as_secs_f64()
    );
    Ok(())
}
