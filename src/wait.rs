//! `portctl wait HOST:PORT`: block until something accepts TCP connections
//! there, for scripts that start a server and must not race it.

use crate::cli::WaitArgs;
use crate::exit::{Error, Exit, Result};
use crate::output::{self, Output};
use crate::parse::{parse_host_port, Host};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// What `wait --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitReport {
    pub target: String,
    pub open: bool,
    pub waited_ms: u64,
}

/// Addresses for HOST:PORT; a name is looked up again on every try, since
/// it may only appear once the service starts.
fn addresses(host: &Host, port: u16) -> Vec<SocketAddr> {
    match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default(),
    }
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
        if addresses(&host, port)
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
    let mut out = io::stdout().lock();
    if output.is_json() {
        output::write_line(&mut out, &report)?;
    } else if open {
        writeln!(
            out,
            "{} is accepting connections (after {:.1}s)",
            report.target,
            started.elapsed().as_secs_f64()
        )?;
    } else {
        let _ = writeln!(
            io::stderr(),
            "portctl: nothing accepted connections on {} within {:.1}s",
            report.target,
            args.timeout.as_secs_f64()
        );
    }
    Ok(if open { Exit::Ok } else { Exit::Negative })
}
