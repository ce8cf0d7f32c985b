//! `portctl serve`: test servers on a free port. The accept loops live in
//! `server`, what handlers share in `conn`, the protocols in `hello`,
//! `echo` and `http`; this module picks the port, binds, prints where it
//! listens and shuts down on a signal.

mod conn;
mod echo;
mod hello;
pub mod http;
mod metrics;
pub mod server;

pub use conn::Stats;

use crate::cli::{ServeArgs, ServiceName};
use crate::exit::{Error, Exit, Result};
use crate::facts::bind::{self, bind_server, Verdict};
use crate::facts::port_holders::find_holders;
use crate::facts::socket_record::SocketRecord;
use crate::model::Proto;
use crate::output::{self, endpoint, words, Output};
use crate::platform::{self, Scope, Shutdown};
use serde::Serialize;
use server::{log_line, Handler, Limits};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// The port tried first when none is given.
pub const DEFAULT_PORT: u16 = 9999;
/// `serve metrics` starts at 9109, the port Prometheus exporters share
/// out around 9100.
pub const METRICS_PORT: u16 = 9109;

/// How long in-flight replies may take once a shutdown is asked for.
const GRACE: Duration = Duration::from_millis(500);

/// What a `serve --json` line announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeEvent {
    /// The server is bound and accepting.
    Listening,
}

/// The line `serve --json` prints once per transport when listening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListeningEvent {
    pub event: ServeEvent,
    pub service: String,
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

/// Bound sockets, not yet handed to the runtime.
struct Bound {
    port: u16,
    tcp: Option<std::net::TcpListener>,
    udp: Option<std::net::UdpSocket>,
}

/// Binds every transport on one port number. A port the bind itself may
/// not see as held (`bind::held_beside_bind`) is in use; "access denied"
/// becomes "in use" or the OS's reason (`bind::access_denied`).
fn bind_all(ip: IpAddr, port: u16, tcp: bool, udp: bool) -> io::Result<Bound> {
    let bind = |proto, port| {
        if port != 0 && bind::held_beside_bind(port, proto, &[ip]) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        let socket = bind_server(SocketAddr::new(ip, port), proto, 1024).map_err(|e| {
            if e.kind() != io::ErrorKind::PermissionDenied {
                return e;
            }
            match bind::access_denied(port, proto, ip) {
                Verdict::Unbindable(why) => io::Error::new(e.kind(), words::unbindable(&why)),
                _ => io::Error::from(io::ErrorKind::AddrInUse),
            }
        })?;
        socket.set_nonblocking(true)?;
        io::Result::Ok(socket)
    };
    let tcp_socket: Option<std::net::TcpListener> = if tcp {
        Some(bind(Proto::Tcp, port)?.into())
    } else {
        None
    };
    // With port 0 the OS picked for TCP; UDP must take the same number.
    let port = match &tcp_socket {
        Some(l) => l.local_addr()?.port(),
        None => port,
    };
    let udp_socket: Option<std::net::UdpSocket> = if udp {
        Some(bind(Proto::Udp, port)?.into())
    } else {
        None
    };
    let port = match &udp_socket {
        Some(s) => s.local_addr()?.port(),
        None => port,
    };
    Ok(Bound {
        port,
        tcp: tcp_socket,
        udp: udp_socket,
    })
}

fn in_use(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrInUse
}

/// `in use by python3 (pid 1234) on 0.0.0.0:9999 LISTEN`, or why not known.
fn holder_text(port: u16, protos: &[Proto], ip: IpAddr) -> String {
    let keys: Vec<(u16, Proto)> = protos.iter().map(|p| (port, *p)).collect();
    let holders: Vec<SocketRecord> = find_holders(&keys, Some(ip), Scope::Every)
        .map(|by_key| by_key.into_values().flatten().collect())
        .unwrap_or_default();
    words::held(&holders)
}

/// Binds as SPEC.md says: `--port N` exactly (naming the holder if taken),
/// `--port 0` anywhere, or 9999 and upwards.
fn bind_port(args: &ServeArgs, protos: &[Proto]) -> Result<Bound> {
    let (tcp, udp) = (protos.contains(&Proto::Tcp), protos.contains(&Proto::Udp));
    let ip = args.bind;
    let cannot = |port: u16, e: io::Error| {
        Error::io(
            format!("cannot bind {}", endpoint(SocketAddr::new(ip, port), false)),
            e,
        )
    };
    match args.port {
        Some(0) => {
            // The OS's TCP pick may be taken for UDP: try a few.
            let mut last = None;
            for _ in 0..32 {
                match bind_all(ip, 0, tcp, udp) {
                    Ok(bound) => return Ok(bound),
                    Err(e) if in_use(&e) => last = Some(e),
                    Err(e) => return Err(cannot(0, e)),
                }
            }
            Err(cannot(
                0,
                last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
            ))
        }
        Some(port) => bind_all(ip, port, tcp, udp).map_err(|e| {
            if in_use(&e) {
                Error::negative(format!("port {port} is {}", holder_text(port, protos, ip)))
            } else {
                cannot(port, e)
            }
        }),
        None => {
            let first = if args.service == ServiceName::Metrics {
                METRICS_PORT
            } else {
                DEFAULT_PORT
            };
            for port in first..=u16::MAX {
                match bind_all(ip, port, tcp, udp) {
                    Ok(bound) => {
                        if port != first {
                            log_line(format_args!(
                                "port {first} is {}; using {port}",
                                holder_text(first, protos, ip)
                            ));
                        }
                        return Ok(bound);
                    }
                    Err(e) if in_use(&e) => continue,
                    Err(e) => return Err(cannot(port, e)),
                }
            }
            Err(Error::negative(format!(
                "no free port from {first} to 65535"
            )))
        }
    }
}

pub fn run(args: &ServeArgs, output: Output) -> Result<Exit> {
    let mut protos = Vec::new();
    if args.tcp || !args.udp {
        protos.push(Proto::Tcp);
    }
    if args.udp {
        protos.push(Proto::Udp);
    }
    let handler = Arc::new(match args.service {
        ServiceName::Hello => Handler::Hello {
            delay: Duration::from_millis(args.delay),
        },
        ServiceName::Echo => Handler::Echo,
        ServiceName::Http | ServiceName::Metrics if args.udp => {
            return Err(Error::usage(
                "invalid transport '--udp' for http and metrics: HTTP/1.1 is served over TCP",
            ))
        }
        ServiceName::Http => Handler::Http,
        ServiceName::Metrics => {
            Handler::Metrics(Arc::new(metrics::Scraper::new(args.watch.clone())))
        }
    });
    let fd_limit = platform::raise_fd_limit();
    let mut max_conn = usize::try_from(args.max_conn).unwrap_or(usize::MAX);
    if args.max_conn.saturating_add(64) > fd_limit {
        max_conn = usize::try_from(fd_limit.saturating_sub(64).max(1)).unwrap_or(usize::MAX);
        output::warn(&format!(
            "open-file limit is {fd_limit}: serving at most {max_conn} connections at once"
        ));
    }
    let bound = bind_port(args, &protos)?;
    let runtime = crate::runtime::build(true).map_err(Error::runtime)?;
    let served = runtime.block_on(async {
        let signals = Shutdown::install();
        let limits = Limits {
            max_conn,
            log: !args.quiet,
        };
        serve(signals, bound, handler, args.bind, limits, output).await
    });
    // A lookup still under way on a blocking thread (a scrape waiting on a
    // runtime's API) must not keep the process from exiting.
    runtime.shutdown_timeout(GRACE);
    served
}

async fn serve(
    mut signals: Shutdown,
    bound: Bound,
    handler: Arc<Handler>,
    ip: IpAddr,
    limits: Limits,
    output: Output,
) -> Result<Exit> {
    let shutdown = CancellationToken::new();
    let udp_stats = Arc::new(Stats::default());
    let mut listening = Vec::new();
    let tcp = match bound.tcp {
        Some(listener) => {
            let listener = TcpListener::from_std(listener)
                .map_err(|e| Error::io("cannot serve the bound socket", e))?;
            listening.push(Proto::Tcp);
            Some(tokio::spawn(server::run_tcp(
                listener,
                handler.clone(),
                shutdown.clone(),
                limits,
                GRACE,
            )))
        }
        None => None,
    };
    let udp = match bound.udp {
        Some(socket) => {
            let socket = UdpSocket::from_std(socket)
                .map_err(|e| Error::io("cannot serve the bound socket", e))?;
            listening.push(Proto::Udp);
            Some(tokio::spawn(server::serve_udp(
                socket,
                handler.clone(),
                shutdown.clone(),
                udp_stats.clone(),
            )))
        }
        None => None,
    };
    let printed = print_listening(
        io::stdout().lock(),
        &handler,
        ip,
        bound.port,
        &listening,
        output,
    );
    if printed.is_err() {
        return output::deliver(Exit::Ok, printed);
    }

    signals.requested().await;
    shutdown.cancel();
    let mut stats = vec![udp_stats];
    if let Some(tcp) = tcp {
        stats.extend(tcp.await.ok());
    }
    if let Some(udp) = udp {
        let _ = udp.await; // the sockets close here: the port is free again
    }
    let total = |count: fn(&Stats) -> u64| stats.iter().map(|s| count(s)).sum::<u64>();
    log_line(format_args!(
        "{} server stopped: {} connections, {} messages",
        handler.name(),
        total(|s| s.connections.load(Ordering::Relaxed)),
        total(|s| s.messages.load(Ordering::Relaxed))
    ));
    Ok(Exit::Ok)
}

fn print_listening<W: Write>(
    mut stdout: W,
    handler: &Handler,
    ip: IpAddr,
    port: u16,
    protos: &[Proto],
    output: Output,
) -> io::Result<()> {
    for proto in protos {
        if output.is_json() {
            let event = ListeningEvent {
                event: ServeEvent::Listening,
                service: handler.name().into(),
                proto: *proto,
                addr: ip,
                port,
            };
            output::write_line(&mut stdout, &event)?;
        } else {
            let at = endpoint(SocketAddr::new(ip, port), false);
            writeln!(
                stdout,
                "{} server listening on {at} ({proto})",
                handler.name()
            )?;
        }
    }
    stdout.flush()
}
