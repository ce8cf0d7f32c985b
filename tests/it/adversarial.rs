//! Adversarial clients against the real `portctl serve`: after each, the
//! server still answers a fresh client promptly and its memory is back
//! near where it started. Every loop is bounded in count and time.
// Unix only: its servers are stopped with SIGTERM and measured in /proc.
#![cfg(unix)]

use crate::common;

use common::{assert_answers_promptly, eventually, poll, socket_fds, Server};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A server under attack, with what it held before: its resident memory
/// and its sockets (the listeners alone).
struct Before {
    rss_kib: u64,
    sockets: usize,
}

fn before(server: &Server) -> Before {
    Before {
        rss_kib: server.rss_kib(),
        sockets: socket_fds(server.pid()),
    }
}

/// Waits until the server has closed every connection of the attack (the
/// tasks that served them are gone), then until its memory is back within
/// `slack_kib` of where it started.
#[track_caller]
fn assert_memory_near(server: &Server, before: &Before, slack_kib: u64) {
    eventually(
        Duration::from_secs(10),
        "the server to close the attack's connections",
        || socket_fds(server.pid()) <= before.sockets,
    );
    let bound = before.rss_kib + slack_kib;
    let after = poll(Duration::from_secs(5), || {
        let now = server.rss_kib();
        (now <= bound).then_some(now)
    })
    .unwrap_or_else(|| {
        panic!(
            "RSS {} KiB before, {} KiB after",
            before.rss_kib,
            server.rss_kib()
        )
    });
    eprintln!("RSS {} KiB before, {after} KiB after", before.rss_kib);
}

#[test]
fn two_thousand_clients_sending_one_byte_a_second() {
    common::raise_fd_limit(); // 2000 clients, over a soft 1024
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let port = server.port;
    let before = before(&server);
    let rt = common::tokio_runtime();
    let clients = rt.block_on(async move {
        let mut streams = Vec::new();
        for _ in 0..2000 {
            if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                streams.push(s);
            }
        }
        streams
    });
    assert_eq!(clients.len(), 2000);
    let (rounds_tx, rounds) = std::sync::mpsc::channel();
    let trickle = rt.spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut clients = clients;
        for second in 0..3u8 {
            for c in clients.iter_mut() {
                let _ = c.write_all(&[b'a' + second]).await;
            }
            let _ = rounds_tx.send(second);
            // The attack itself: one byte a second from each client.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        clients.len()
    });
    // In the middle of the attack: every client has sent two bytes of a
    // message it has not finished.
    assert_eq!(rounds.recv_timeout(Duration::from_secs(30)), Ok(0));
    assert_eq!(rounds.recv_timeout(Duration::from_secs(30)), Ok(1));
    assert_answers_promptly(LOCALHOST, port);
    assert_eq!(rt.block_on(trickle).unwrap(), 2000);
    drop(rt);
    assert_answers_promptly(LOCALHOST, port);
    assert_memory_near(&server, &before, 12 * 1024);
}

#[test]
fn a_client_that_never_reads_blocks_only_itself() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let before = before(&server);
    let mut hog = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Pipelined lines whose replies fill the server's send buffer; once it
    // is full the server stops reading from this client, and our writes
    // stall too. Bounded: at most 64 MiB or the write timeout.
    let lines = b"x\n".repeat(32 * 1024);
    let mut sent = 0usize;
    while sent < 64 * 1024 * 1024 {
        match hog.write(&lines) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 64 * 1024 * 1024, "the server never pushed back");
    assert_answers_promptly(LOCALHOST, server.port);
    drop(hog);
    assert_answers_promptly(LOCALHOST, server.port);
    assert_memory_near(&server, &before, 16 * 1024);
}

#[test]
fn abrupt_resets_mid_reply() {
    let server = Server::start(&["echo", "--port", "0", "-q"], 1);
    let before = before(&server);
    for _ in 0..300 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], server.port)).into())
            .unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(&[b'z'; 100_000]).unwrap_or(());
        // SO_LINGER 0: close sends RST while the server is still replying.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    drop(s);
    assert_memory_near(&server, &before, 16 * 1024);
}

#[test]
fn a_flood_of_a_hundred_thousand_datagrams() {
    let server = Server::start(&["hello", "--udp", "--tcp", "--port", "0", "-q"], 2);
    let port = server.port;
    let before = before(&server);
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = vec![b'u'; 65_507];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    let mut sent = 0;
    for _ in 0..100_000 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let size = (seed >> 33) as usize % 65_508;
        if flood.send_to(&payload[..size], ("127.0.0.1", port)).is_ok() {
            sent += 1;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    assert!(sent > 50_000, "sent {sent}");
    // The server answers a fresh datagram (retrying: the flood may still
    // fill its receive queue for a moment) and a fresh TCP client.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut answered = false;
    for _ in 0..20 {
        probe.send_to(b"ok", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = probe.recv(&mut buf) {
            if &buf[..n] == b"Hello, ok!" {
                answered = true;
                break;
            }
        }
    }
    assert!(answered, "no UDP answer after the flood");
    assert_answers_promptly(LOCALHOST, port);
    assert_memory_near(&server, &before, 8 * 1024);
}

#[test]
fn the_connection_cap_is_reached_and_recovered_from() {
    let server = Server::start(&["hello", "--port", "0", "--max-conn", "50", "-q"], 1);
    let before = before(&server);
    // Ready: each of the 50 has been let in (and holds a slot) once it is
    // welcomed.
    let held: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut welcome = [0u8; 8];
            s.read_exact(&mut welcome).unwrap();
            assert_eq!(&welcome, b"welcome!");
            s
        })
        .collect();
    for _ in 0..200 {
        let mut extra = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            extra.read(&mut buf).unwrap_or(0),
            0,
            "past the cap: closed at once"
        );
    }
    drop(held);
    // Ready: the server has closed all 50, so their slots are free.
    eventually(
        Duration::from_secs(10),
        "the server to close the 50 connections",
        || socket_fds(server.pid()) <= before.sockets,
    );
    assert_answers_promptly(LOCALHOST, server.port);
    assert_memory_near(&server, &before, 8 * 1024);
}
