//! The accept loops every service shares: a connection cap, connection
//! logs, counters and a graceful shutdown. Handlers know only their
//! protocol. Like mini-redis's `server::run`, a loop takes a bound
//! listener and a shutdown token, so tests can run one in-process.

use super::conn::Stats;
use super::metrics::Scraper;
use super::{echo, hello, http, metrics};
use crate::output::sanitize;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The send buffer of each connection (the kernel doubles it).
const SEND_BUFFER: usize = 64 * 1024;

/// The protocol a server speaks.
#[derive(Debug, Clone)]
pub enum Handler {
    Hello { delay: Duration },
    Echo,
    Http,
    Metrics(Arc<Scraper>),
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
            Handler::Metrics(scraper) => metrics::serve(stream, scraper, shutdown, stats).await,
        }
    }

    fn datagram_reply(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Handler::Hello { .. } => crate::facts::hello_protocol::datagram_reply(body),
            // Refused at start-up: HTTP is served over TCP only.
            Handler::Echo | Handler::Http | Handler::Metrics(_) => body.to_vec(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Handler::Hello { .. } => "hello",
            Handler::Echo => "echo",
            Handler::Http => "http",
            Handler::Metrics(_) => "metrics",
        }
    }
}

/// How the accept loop behaves.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; past it, new ones are closed at once.
    pub max_conn: usize,
    /// Log each connection on stderr.
    pub log: bool,
}

/// A line on stderr; a closed stderr must not stop the server.
pub fn log_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Serves `listener` until `shutdown`, then gives connections still open
/// `grace` to finish; returns what it counted.
pub async fn run_tcp(
    listener: TcpListener,
    handler: Arc<Handler>,
    shutdown: CancellationToken,
    limits: Limits,
    grace: Duration,
) -> Arc<Stats> {
    let tracker = TaskTracker::new();
    let stats = Arc::new(Stats::default());
    serve_tcp(
        listener,
        handler,
        shutdown,
        tracker.clone(),
        limits,
        stats.clone(),
    )
    .await;
    tracker.close();
    let _ = tokio::time::timeout(grace, tracker.wait()).await;
    stats
}

/// Accepts until `shutdown`, serving each connection in its own task.
/// Returns once the listener is closed; in-flight connections are left to
/// `tracker`.
async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<Handler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    limits: Limits,
    stats: Arc<Stats>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_conn));
    let refused = AtomicU64::new(0);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log_line(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Past the cap: close at once, and say so at most once a second.
            drop(stream);
            let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                log_line(format_args!(
                    "connection limit ({}) reached: closed {peer} ({n} refused so far)",
                    limits.max_conn
                ));
                last_refusal_log = Some(Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Replies a client does not read wait in the kernel: keep that
        // bounded too, instead of the autotuned megabytes per socket.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        if limits.log {
            log_line(format_args!("Accept new connection from {peer}..."));
        }
        let (handler, shutdown, stats, log) =
            (handler.clone(), shutdown.clone(), stats.clone(), limits.log);
        tracker.spawn(async move {
            if let Err(e) = handler.serve_stream(stream, peer, &shutdown, &stats).await {
                if log {
                    log_line(format_args!(
                        "Connection from {peer}: {}",
                        sanitize(&e.to_string())
                    ));
                }
            }
            if log {
                log_line(format_args!("Connection from {peer} closed."));
            }
            drop(permit);
        });
    }
}

/// Serves datagrams until `shutdown`; one task, so a flood costs CPU, never
/// memory, and the kernel drops what cannot be read in time.
pub async fn serve_udp(
    socket: UdpSocket,
    handler: Arc<Handler>,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (len, peer): (usize, SocketAddr) = match received {
            Ok(pair) => pair,
            // ICMP errors from earlier replies surface here; keep serving.
            Err(_) => continue,
        };
        stats.messages.fetch_add(1, Ordering::Relaxed);
        let reply = handler.datagram_reply(&buffer[..len]);
        if let Err(e) = socket.send_to(&reply, peer).await {
            log_line(format_args!("reply to {peer} failed: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The loop runs in-process on a listener the test bound, and stops
    /// when the test cancels its token.
    #[tokio::test]
    async fn serves_a_bound_listener_until_the_token_is_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handler = Arc::new(Handler::Hello {
            delay: Duration::ZERO,
        });
        let limits = Limits {
            max_conn: 8,
            log: false,
        };
        let server = tokio::spawn(run_tcp(
            listener,
            handler,
            shutdown.clone(),
            limits,
            Duration::from_millis(200),
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut welcome = [0u8; 8];
        client.read_exact(&mut welcome).await.unwrap();
        assert_eq!(&welcome, b"welcome!");
        client.write_all(b"Michael\n").await.unwrap();
        let mut reply = [0u8; 15];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"hello,Michael!\n");
        drop(client);
        shutdown.cancel();
        let stats = server.await.unwrap();
        assert_eq!(stats.messages.load(Ordering::Relaxed), 1);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 1);
        // The listener is closed: the port can be bound again.
        assert!(std::net::TcpListener::bind(addr).is_ok());
    }
}
