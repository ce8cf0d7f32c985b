//! Hard limits for `portctl serve`: whatever a client sends, and however
//! little it reads, the real server holds a bounded amount of memory per
//! connection, refuses over-long input with an explanation and a clean
//! close, and keeps answering fresh clients at once.
//!
//! Memory is the server's peak resident set (`VmHWM`), so a spike that is
//! given back before we look still counts. The bound comes from the design
//! of `serve hello`: per connection at most one message of unanswered
//! input (64 KiB) and one write batch (8 KiB); the kernel holds the rest.
//! The implementation before it queued one reply per newline while the
//! client did not read (~520 KB per stalled connection), and reset
//! connections that sent over 64 KiB without a newline.
//!
//! Loopback only; every loop is bounded in count and time.
// Unix only: it measures servers in /proc and stops them with SIGTERM.
#![cfg(unix)]

use crate::common;

use common::{assert_answers_promptly, eventually, fresh_client, socket_fds, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// The refusal, byte for byte (`hello::TOO_LONG`).
const TOO_LONG: &[u8] = b"error: message over 65536 bytes without a newline; closing\n";

/// How long each stalled client may write before it gives up: writes block
/// once the kernel's buffers are full.
const WRITE_LIMIT: Duration = Duration::from_secs(2);

/// The peak the design allows for `clients` stalled hello connections: 64
/// MiB over 200 of them (64 KiB of input and an 8 KiB batch each, with
/// room for the allocator and the runtime), never less than 16 MiB.
fn hello_bound_kib(clients: usize) -> u64 {
    ((64 * KIB * clients / 200) as u64).max(16 * KIB as u64)
}

fn start(args: &[&str]) -> Server {
    Server::start(args, 1)
}

/// What a crowd of clients that never read managed to send.
struct Stalled {
    clients: usize,
    sent: usize,
    /// Clients whose whole payload went out before the write limit.
    complete: usize,
    took: Duration,
    /// Whether the server went idle (it stopped reading and answering:
    /// every connection waits on the kernel) before its peak was read.
    idle: bool,
    /// The server's peak RSS once they had all sent what they could.
    peak_kib: u64,
}

/// The CPU time a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of proc(5), counted from the state.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Waits until the server uses no CPU for 200 ms, or `limit` passes;
/// true when it went idle.
async fn settle(server: &Server, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut last = cpu_ticks(server.pid());
    let mut still = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = cpu_ticks(server.pid());
        still = if now == last { still + 1 } else { 0 };
        if still >= 2 {
            return true;
        }
        last = now;
    }
    false
}

/// `clients` connections to the server on `ip`, each writing `payload`
/// (under [`WRITE_LIMIT`]) and never reading. The server's peak is read
/// while they are all still connected, and `meanwhile` runs then (a fresh
/// client must not wait for them); then they close.
fn stall(
    server: &Server,
    ip: IpAddr,
    clients: usize,
    payload: Vec<u8>,
    meanwhile: impl FnOnce(),
) -> Stalled {
    use tokio::io::AsyncWriteExt;
    let addr = SocketAddr::new(ip, server.port);
    let payload = Arc::new(payload);
    // Tests beside this one hold hundreds of descriptors too.
    common::raise_fd_limit();
    let rt = common::tokio_runtime();
    rt.block_on(async {
        let mut streams = Vec::with_capacity(clients);
        for _ in 0..clients {
            streams.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let started = Instant::now();
        let writers: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                let payload = payload.clone();
                tokio::spawn(async move {
                    let mut sent = 0;
                    let _ = tokio::time::timeout(WRITE_LIMIT, async {
                        while sent < payload.len() {
                            match s.write(&payload[sent..]).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => sent += n,
                            }
                        }
                    })
                    .await;
                    (s, sent)
                })
            })
            .collect();
        let mut held = Vec::with_capacity(clients);
        let (mut sent, mut complete) = (0, 0);
        for writer in writers {
            let (s, n) = writer.await.unwrap();
            sent += n;
            complete += usize::from(n == payload.len());
            held.push(s);
        }
        let took = started.elapsed();
        // Let the server work through what the kernel already holds, up to
        // the point where every connection waits (or for 2 s: a debug
        // build answers a million empty lines per client slowly).
        let idle = settle(server, Duration::from_secs(2)).await;
        let peak_kib = server.peak_rss_kib();
        meanwhile();
        drop(held);
        Stalled {
            clients,
            sent,
            complete,
            took,
            idle,
            peak_kib,
        }
    })
}

/// Runs `stall` against a fresh `serve hello` on `ip` and checks the
/// peak against the design's bound, then that a fresh client is served.
fn hello_stays_bounded(ip: IpAddr, clients: usize, payload: Vec<u8>, shape: &str) {
    let bind = ip.to_string();
    let server = start(&["hello", "--bind", &bind, "--port", "0", "-q"]);
    let started_kib = server.peak_rss_kib();
    let idle_sockets = socket_fds(server.pid());
    let mut during = Duration::ZERO;
    let run = stall(&server, ip, clients, payload, || {
        during = fresh_client(ip, server.port)
    });
    let bound = hello_bound_kib(clients);
    eprintln!(
        "hello on {ip}, {} clients x 1 MiB of {shape}: sent {} KiB in {:?} ({} complete); \
         server idle after: {}; peak RSS {started_kib} KiB at start, {} KiB under attack \
         (bound {bound} KiB); a fresh client meanwhile took {during:?}",
        run.clients,
        run.sent / KIB,
        run.took,
        run.complete,
        run.idle,
        run.peak_kib,
    );
    assert!(
        run.peak_kib < bound,
        "{shape} on {ip}: server peak RSS {} KiB over {clients} stalled clients, bound {bound} KiB",
        run.peak_kib
    );
    // While they are still connected the server may be busy answering
    // what the kernel took from them (a million empty lines each), but
    // between bufferfuls it lets a fresh client in.
    assert!(
        during < Duration::from_secs(3),
        "{shape} on {ip}: a fresh client took {during:?} while {clients} stalled clients were connected"
    );
    // And once they are gone (the server has closed its side of every
    // one), at once.
    eventually(
        Duration::from_secs(10),
        "the server to close the stalled connections",
        || socket_fds(server.pid()) <= idle_sockets,
    );
    assert_answers_promptly(ip, server.port);
    let after = server.peak_rss_kib();
    assert!(after < bound, "peak {after} KiB after the attack");
}

#[test]
fn two_hundred_stalled_clients_sending_newlines_stay_bounded_v4() {
    hello_stays_bounded(V4, 200, vec![b'\n'; MIB], "newlines");
}

#[test]
fn fifty_stalled_clients_sending_newlines_stay_bounded_v6() {
    hello_stays_bounded(V6, 50, vec![b'\n'; MIB], "newlines");
}

#[test]
fn two_hundred_stalled_clients_sending_one_endless_line_stay_bounded() {
    hello_stays_bounded(V4, 200, vec![b'x'; MIB], "one line without a newline");
}

/// The worst shape for a stalled connection: every line as long as a
/// message may be, so the server holds a whole one while its reply waits.
#[test]
fn two_hundred_stalled_clients_sending_lines_of_the_maximum_length_stay_bounded() {
    let mut line = vec![b'x'; 64 * KIB];
    line.push(b'\n');
    let lines = line.repeat(MIB / line.len() + 1)[..MIB].to_vec();
    hello_stays_bounded(V4, 200, lines, "64 KiB lines");
}

#[test]
fn two_hundred_stalled_clients_sending_crlf_lines_stay_bounded() {
    let mut lines = b"x\r\n".repeat(MIB / 3);
    lines.resize(MIB, b'\n');
    hello_stays_bounded(V4, 200, lines, "x\\r\\n lines");
}

/// How the server's side of one connection ended, as a client that reads
/// everything sees it.
struct Ending {
    received: Vec<u8>,
    /// The error that ended the reads instead of a clean end of stream.
    error: Option<std::io::Error>,
    /// Whether our writer was still sending when the stream ended.
    still_sending: bool,
    /// What our writer managed to send, and the error that stopped it.
    sent: usize,
    write_error: Option<ErrorKind>,
}

/// Sends `payload` from one thread while reading everything on another,
/// until end of stream, an error or 5 s.
fn send_and_read_all(ip: IpAddr, port: u16, payload: Vec<u8>) -> Ending {
    let mut reader = TcpStream::connect((ip, port)).unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = reader.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let sending = Arc::new(AtomicBool::new(true));
    let flag = sending.clone();
    let write = std::thread::spawn(move || {
        let mut sent = 0;
        let mut error = None;
        while sent < payload.len() {
            match writer.write(&payload[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) => {
                    error = Some(e.kind());
                    break;
                }
            }
        }
        flag.store(false, Ordering::SeqCst);
        let _ = writer.shutdown(Shutdown::Write);
        (sent, error)
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    let error = loop {
        match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e),
        }
        assert!(Instant::now() < deadline, "no end of stream in 5 s");
    };
    let still_sending = sending.load(Ordering::SeqCst);
    let (sent, write_error) = write.join().unwrap();
    Ending {
        received,
        error,
        still_sending,
        sent,
        write_error,
    }
}

#[test]
fn over_long_messages_are_refused_with_a_reason_and_a_clean_close() {
    let server = start(&["hello", "--port", "0", "-q"]);
    let mut expected = b"welcome!".to_vec();
    expected.extend_from_slice(TOO_LONG);
    // The last one is still being sent when the refusal arrives.
    for len in [64 * KIB + 1, 100 * KIB, MIB, 32 * MIB] {
        let started = Instant::now();
        let end = send_and_read_all(V4, server.port, vec![b'x'; len]);
        eprintln!(
            "{len} bytes without a newline: {} bytes back, ended by {:?} after {:?}, \
             client still sending: {} ({} sent, write error {:?})",
            end.received.len(),
            end.error.as_ref().map(|e| e.kind()),
            started.elapsed(),
            end.still_sending,
            end.sent,
            end.write_error,
        );
        assert_eq!(
            String::from_utf8_lossy(&end.received),
            String::from_utf8_lossy(&expected),
            "{len} bytes without a newline"
        );
        assert!(
            end.error.is_none(),
            "{len} bytes: the stream ended with {:?}, not a clean end of stream",
            end.error
        );
        assert_answers_promptly(V4, server.port);
    }
}

#[test]
fn a_message_of_exactly_the_limit_is_answered() {
    let server = start(&["hello", "--port", "0", "-q"]);
    let mut s = TcpStream::connect((V4, server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut welcome = [0u8; 8];
    s.read_exact(&mut welcome).unwrap();
    assert_eq!(&welcome, b"welcome!");
    let mut message = vec![b'y'; 64 * KIB];
    message.push(b'\n');
    s.write_all(&message).unwrap();
    let mut reply = vec![0u8; b"hello,".len() + 64 * KIB + b"!\n".len()];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..6], b"hello,");
    assert!(reply[6..6 + 64 * KIB].iter().all(|&b| b == b'y'));
    assert_eq!(&reply[6 + 64 * KIB..], b"!\n");
    // The connection goes on.
    s.write_all(b"next\n").unwrap();
    let mut next = [0u8; 12];
    s.read_exact(&mut next).unwrap();
    assert_eq!(&next, b"hello,next!\n");
    assert_answers_promptly(V4, server.port);
}

/// Sends `request` to `serve http` and reads the reply to end of stream.
fn http_exchange(port: u16, request: &[u8]) -> (String, Option<std::io::Error>) {
    let mut s = TcpStream::connect((V4, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let written = s.write_all(request);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let error = loop {
        match s.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e),
        }
    };
    let error = error.or(written.err());
    (String::from_utf8_lossy(&reply).into_owned(), error)
}

#[test]
fn http_heads_over_the_limits_get_431_and_garbage_400() {
    let server = start(&["http", "--port", "0", "-q"]);
    let port = server.port;
    let status = |request: &[u8], what: &str| {
        let (reply, error) = http_exchange(port, request);
        let line = reply.lines().next().unwrap_or("").to_string();
        eprintln!(
            "http, {what} ({} bytes): {line:?}, ended by {:?}",
            request.len(),
            error.as_ref().map(|e| e.kind())
        );
        assert!(
            error.is_none(),
            "{what}: the reply ended with {error:?}, not a clean end of stream"
        );
        line
    };

    let headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    assert!(status(many.as_bytes(), "100 header lines").starts_with("HTTP/1.1 431 "));

    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(20 * KIB));
    assert!(status(long.as_bytes(), "a 20 KiB request line").starts_with("HTTP/1.1 431 "));

    let garbage = b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n";
    assert!(status(garbage, "a TLS-looking request").starts_with("HTTP/1.1 400 "));
    assert!(
        status(b"GET / HTTP/1.1 extra\r\n\r\n", "a bad request line").starts_with("HTTP/1.1 400 ")
    );

    let normal = b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
    let (reply, error) = http_exchange(port, normal);
    assert!(error.is_none(), "{error:?}");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.contains("path: /ok\n"), "{reply}");
}

#[test]
fn an_echo_client_that_sends_eight_mib_and_never_reads_stays_bounded() {
    let server = start(&["echo", "--port", "0", "-q"]);
    let before = server.peak_rss_kib();
    let port = server.port;
    let run = stall(&server, V4, 1, vec![b'e'; 8 * MIB], || {
        assert_echoes_promptly(port)
    });
    let bound = before + 32 * KIB as u64;
    eprintln!(
        "echo, 1 client x 8 MiB never reading: sent {} KiB in {:?}; server idle after: {}; \
         peak RSS {before} KiB before, {} KiB under attack (bound {bound} KiB)",
        run.sent / KIB,
        run.took,
        run.idle,
        run.peak_kib
    );
    assert!(
        run.peak_kib < bound,
        "echo peak RSS {} KiB, {before} KiB before",
        run.peak_kib
    );
    assert_echoes_promptly(port);
}

/// A fresh echo client gets its bytes back within 3 s (blocked is never).
#[track_caller]
fn assert_echoes_promptly(port: u16) {
    let started = Instant::now();
    let mut s = TcpStream::connect((V4, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a fresh echo client took {:?}",
        started.elapsed()
    );
}
