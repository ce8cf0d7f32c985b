//! `portctl serve`: test servers on a free port. The accept loops live in
//! `server`, the protocols in `hello` and `echo`; this module picks the
//! port, binds, prints where it listens and shuts down on a signal.

mod echo;
pub mod framing;
mod hello;
pub mod http;
mod server;

use crate::check::{find_holders, in_use_reason, Holder};
use crate::cli::{ServeArgs, ServiceName};
use crate::exit::{Error, Exit, Result};
use crate::model::Proto;
use crate::output::{self, Output};
use crate::sockets::Scope;
use serde::{Deserialize, Serialize};
use server::{log_line, Limits};
use socket2::{Domain, Socket as RawSocket, Type};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The port tried first when none is given.
pub const DEFAULT_PORT: u16 = 9999;

/// How long in-flight replies may take once a shutdown is asked for.
const GRACE: Duration = Duration::from_millis(500);

/// What a server counts, for the summary line.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub messages: AtomicU64,
}

/// The protocol a server speaks.
#[derive(Debug, Clone)]
pub enum Handler {
    Hello { delay: Duration },
    Echo,
    Http,
}

impl Handler {
    async fn serve_stream(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: &CancellationToken,
        stats: &Stats,
    ) -> io::Result<()> {
        match self {
            Handler::Hello { delay } => hello::serve(stream, *delay, shutdown, stats).await,
            Handler::Echo => echo::serve(stream, shutdown, stats).await,
            Handler::Http => http::serve(stream, peer, shutdown, stats).await,
        }
    }

    fn datagram_reply(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Handler::Hello { .. } => hello::datagram_reply(body),
            // Refused at start-up: HTTP is served over TCP only.
            Handler::Echo | Handler::Http => body.to_vec(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Handler::Hello { .. } => "hello",
            Handler::Echo => "echo",
            Handler::Http => "http",
        }
    }
}

thread_local! {
    /// One read buffer per runtime thread, shared by all its connections.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// Reads what the socket holds right now into the thread's buffer and
/// hands it to `sink`; `None` at end of stream. No connection owns a read
/// buffer, so an idle one costs only its socket and task.
pub(crate) fn read_available<T>(
    stream: &TcpStream,
    mut sink: impl FnMut(&[u8]) -> T,
) -> io::Result<Option<T>> {
    READ_BUFFER.with_borrow_mut(|buffer| match stream.try_read(buffer) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(sink(&buffer[..n]))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(sink(&[]))),
        Err(e) => Err(e),
    })
}

/// The line `serve --json` prints once per transport when listening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningEvent {
    pub event: String,
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

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = RawSocket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = RawSocket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds every transport on one port number.
fn bind_all(ip: IpAddr, port: u16, tcp: bool, udp: bool) -> io::Result<Bound> {
    let tcp_socket = if tcp {
        Some(bind_tcp(SocketAddr::new(ip, port))?)
    } else {
        None
    };
    // With port 0 the OS picked for TCP; UDP must take the same number.
    let port = match &tcp_socket {
        Some(l) => l.local_addr()?.port(),
        None => port,
    };
    let udp_socket = if udp {
        Some(bind_udp(SocketAddr::new(ip, port))?)
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
    let holders: Vec<Holder> = find_holders(&keys, Some(ip), Scope::Every)
        .map(|by_key| by_key.into_values().flatten().collect())
        .unwrap_or_default();
    in_use_reason(&holders)
}

/// Binds as SPEC.md says: `--port N` exactly (naming the holder if taken),
/// `--port 0` anywhere, or 9999 and upwards.
fn bind_port(args: &ServeArgs, protos: &[Proto]) -> Result<Bound> {
    let (tcp, udp) = (protos.contains(&Proto::Tcp), protos.contains(&Proto::Udp));
    let ip = args.bind;
    let cannot = |port: u16, e: io::Error| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied && port < 1024 {
            " (a system port needs root or CAP_NET_BIND_SERVICE)"
        } else {
            ""
        };
        Error::failure(format!(
            "cannot bind {}: {e}{hint}",
            crate::list::endpoint(SocketAddr::new(ip, port), false)
        ))
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
            for port in DEFAULT_PORT..=u16::MAX {
                match bind_all(ip, port, tcp, udp) {
                    Ok(bound) => {
                        if port != DEFAULT_PORT {
                            log_line(format_args!(
                                "port {DEFAULT_PORT} is {}; using {port}",
                                holder_text(DEFAULT_PORT, protos, ip)
                            ));
                        }
                        return Ok(bound);
                    }
                    Err(e) if in_use(&e) => continue,
                    Err(e) => return Err(cannot(port, e)),
                }
            }
            Err(Error::negative(format!(
                "no free port from {DEFAULT_PORT} to 65535"
            )))
        }
    }
}

/// Raises the soft limit on open files to the hard limit: thousands of
/// clients need thousands of descriptors. Returns the limit in force.
#[cfg(unix)]
fn raise_fd_limit() -> u64 {
    {
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
            limit.rlim_cur
        }
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() -> u64 {
    u64::MAX
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
        ServiceName::Http if args.udp => {
            return Err(Error::usage(
                "invalid transport '--udp' for http: HTTP/1.1 is served over TCP",
            ))
        }
        ServiceName::Http => Handler::Http,
    });
    let fd_limit = raise_fd_limit();
    let mut max_conn = usize::try_from(args.max_conn).unwrap_or(usize::MAX);
    if args.max_conn + 64 > fd_limit {
        max_conn = fd_limit.saturating_sub(64).max(1) as usize;
        output::warn(&format!(
            "open-file limit is {fd_limit}: serving at most {max_conn} connections at once"
        ));
    }
    let bound = bind_port(args, &protos)?;
    crate::runtime(true)?.block_on(async {
        let signals = Shutdown::install();
        serve(signals, bound, handler, args, max_conn, output).await
    })
}

async fn serve(
    mut signals: Shutdown,
    bound: Bound,
    handler: Arc<Handler>,
    args: &ServeArgs,
    max_conn: usize,
    output: Output,
) -> Result<Exit> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let stats = Arc::new(Stats::default());
    let limits = Limits {
        max_conn,
        log: !args.quiet,
    };
    let mut loops = Vec::new();
    let mut listening = Vec::new();
    if let Some(listener) = bound.tcp {
        let listener =
            TcpListener::from_std(listener).map_err(|e| Error::failure(e.to_string()))?;
        listening.push(Proto::Tcp);
        loops.push(tokio::spawn(server::serve_tcp(
            listener,
            handler.clone(),
            shutdown.clone(),
            tracker.clone(),
            limits,
            stats.clone(),
        )));
    }
    if let Some(socket) = bound.udp {
        let socket = UdpSocket::from_std(socket).map_err(|e| Error::failure(e.to_string()))?;
        listening.push(Proto::Udp);
        loops.push(tokio::spawn(server::serve_udp(
            socket,
            handler.clone(),
            shutdown.clone(),
            stats.clone(),
        )));
    }
    print_listening(&handler, args.bind, bound.port, &listening, output)?;

    signals.requested().await;
    shutdown.cancel();
    for l in loops {
        let _ = l.await; // the listeners close here: the port is free again
    }
    tracker.close();
    let _ = tokio::time::timeout(GRACE, tracker.wait()).await;
    log_line(format_args!(
        "{} server stopped: {} connections, {} messages",
        handler.name(),
        stats.connections.load(Ordering::Relaxed),
        stats.messages.load(Ordering::Relaxed)
    ));
    Ok(Exit::Ok)
}

fn print_listening(
    handler: &Handler,
    ip: IpAddr,
    port: u16,
    protos: &[Proto],
    output: Output,
) -> Result<()> {
    let mut stdout = io::stdout().lock();
    for proto in protos {
        if output.is_json() {
            let event = ListeningEvent {
                event: "listening".into(),
                service: handler.name().into(),
                proto: *proto,
                addr: ip,
                port,
            };
            output::write_line(&mut stdout, &event)?;
        } else {
            let at = crate::list::endpoint(SocketAddr::new(ip, port), false);
            writeln!(
                stdout,
                "{} server listening on {at} ({proto})",
                handler.name()
            )?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Ctrl+C and SIGTERM, caught from the moment this is created: a signal
/// that arrives right after the listening line must not kill the process
/// with the default action.
struct Shutdown {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Shutdown {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    async fn requested(&mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.interrupt) => {}
                _ = next(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
