//! `portctl serve` started as a real process and spoken to over loopback.
// Unix only: its servers are stopped with SIGTERM, which Windows lacks.
#![cfg(unix)]

use crate::common;

use common::{assert_exit, json, run, stderr, stdout, Server, SocketHolder};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests that need port 9999 take turns.
static DEFAULT_PORT: Mutex<()> = Mutex::new(());

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

fn read_some(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn the_tutorial_client_works_unchanged_on_the_default_port() {
    let _turn = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["hello"], 1);
    assert_eq!(
        server.lines[0],
        "hello server listening on 127.0.0.1:9999 (tcp)"
    );
    let client = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(('127.0.0.1', 9999))
print(s.recv(1024))
for data in [b'Michael', b'Tracy', b'Sarah']:
    s.send(data)
    print(s.recv(1024))
s.send(b'exit')
s.close()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(client)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "b'welcome!'\nb'hello,Michael!'\nb'hello,Tracy!'\nb'hello,Sarah!'\n"
    );
    let (code, err) = server.stop();
    assert_eq!(code, Some(0));
    assert!(
        err.contains("Accept new connection from 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("closed."), "{err}");
    assert!(err.contains("1 connections, 3 messages"), "{err}");
}

#[test]
fn when_9999_is_taken_the_next_free_port_is_used_and_said() {
    let _turn = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 9999)], false);
    let server = Server::start(&["hello"], 1);
    assert!(server.port > 9999, "{:?}", server.lines);
    let mut s = connect(server.port);
    assert_eq!(read_exact(&mut s, 8), b"welcome!");
    let (code, err) = server.stop();
    assert_eq!(code, Some(0));
    assert!(err.contains("port 9999 is in use by python3"), "{err}");
    assert!(err.contains(&holder.pid().to_string()), "{err}");
}

#[test]
fn a_taken_port_is_exit_1_naming_the_holder() {
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let port = holder.ports[0].to_string();
    let out = run(&["serve", "hello", "--port", &port]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: port {port} is in use by python3 (pid {})",
            holder.pid()
        )),
        "{err}"
    );
}

#[test]
fn line_mode_pipelining_exit_and_bytes() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let mut s = connect(server.port);
    assert_eq!(read_exact(&mut s, 8), b"welcome!");
    s.write_all(b"Michael\nTracy\r\nSarah\n").unwrap();
    let expected = b"hello,Michael!\nhello,Tracy!\nhello,Sarah!\n";
    assert_eq!(read_exact(&mut s, expected.len()), expected);
    s.write_all(b"\xff\xfe\x00bytes\n").unwrap();
    assert_eq!(read_exact(&mut s, 16), b"hello,\xff\xfe\x00bytes!\n");
    s.write_all(b"exit\n").unwrap();
    assert_eq!(read_some(&mut s), b"", "exit closes without a reply");
}

#[test]
fn udp_hello_and_echo_over_both_transports() {
    let hello = Server::start(&["hello", "--udp", "--port", "0"], 1);
    assert!(hello.lines[0].ends_with("(udp)"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(b"Bob", ("127.0.0.1", hello.port)).unwrap();
    let mut buf = [0u8; 100];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, Bob!");

    let echo = Server::start(&["echo", "--tcp", "--udp", "--port", "0", "--json"], 2);
    let events: Vec<serde_json::Value> = echo.lines.iter().map(|l| json::line(l)).collect();
    events.iter().for_each(json::listening_event);
    assert_eq!(events[0]["proto"], "tcp", "{events:?}");
    assert_eq!(events[1]["proto"], "udp", "{events:?}");
    assert_eq!(
        json::port(&events[0]["port"]),
        json::port(&events[1]["port"])
    );
    assert_eq!(
        (&events[0]["event"], &events[0]["service"]),
        (&"listening".into(), &"echo".into()),
        "{events:?}"
    );
    let mut s = connect(echo.port);
    s.write_all(b"no greeting, \xff raw bytes").unwrap();
    assert_eq!(read_exact(&mut s, 24), b"no greeting, \xff raw bytes");
    socket
        .send_to(b"\x00datagram", ("127.0.0.1", echo.port))
        .unwrap();
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\x00datagram");
}

#[test]
fn the_default_bind_is_loopback_only() {
    let server = Server::start(&["hello", "--port", "0"], 1);
    let out = run(&["list", "--json", "-l", "--pid", &server.pid().to_string()]);
    let records = json::array(&out);
    records.iter().for_each(json::socket_record);
    assert_eq!(records.len(), 1, "{}", stdout(&out));
    assert_eq!(records[0]["local_addr"], "127.0.0.1", "{}", records[0]);
}

#[test]
fn sigterm_exits_0_and_frees_the_port_at_once() {
    let server = Server::start(&["hello", "--port", "0"], 1);
    let port = server.port;
    let mut s = connect(port);
    assert_eq!(read_exact(&mut s, 8), b"welcome!");
    let (code, err) = server.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("hello server stopped: 1 connections"), "{err}");
    TcpListener::bind(("127.0.0.1", port)).expect("the port is free once serve exits");
    assert_eq!(
        run(&["check", "--tcp", &port.to_string()]).status.code(),
        Some(0)
    );
}

#[test]
fn a_thousand_simultaneous_clients() {
    common::raise_fd_limit(); // a soft 1024 would not hold them
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let port = server.port;
    let runtime = common::tokio_runtime();
    let ok = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()?;
                    let mut welcome = [0u8; 8];
                    s.read_exact(&mut welcome).await.ok()?;
                    let msg = format!("client{i}\n");
                    s.write_all(msg.as_bytes()).await.ok()?;
                    let expected = format!("hello,client{i}!\n");
                    let mut reply = vec![0u8; expected.len()];
                    s.read_exact(&mut reply).await.ok()?;
                    (welcome == *b"welcome!" && reply == expected.as_bytes()).then_some(())
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if let Ok(Ok(Some(()))) = tokio::time::timeout(Duration::from_secs(30), t).await {
                ok += 1;
            }
        }
        ok
    });
    assert_eq!(ok, 1000);
}

#[test]
fn silent_and_trickling_clients_never_delay_another() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let mut silent = connect(server.port);
    let _ = read_exact(&mut silent, 8);
    let mut trickle = connect(server.port);
    let _ = read_exact(&mut trickle, 8);
    trickle.write_all(b"ab").unwrap(); // and then nothing more
    let started = Instant::now();
    let mut other = connect(server.port);
    assert_eq!(read_exact(&mut other, 8), b"welcome!");
    other.write_all(b"quick\n").unwrap();
    assert_eq!(read_exact(&mut other, 13), b"hello,quick!\n");
    // The silent and trickling ones would hold it up for good: a few
    // seconds is slow, not blocked.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_stream_without_newlines_costs_a_fixed_buffer() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let before = server.rss_kib();
    let mut s = connect(server.port);
    let _ = read_exact(&mut s, 8);
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 10 * 1024 * 1024 {
        if s.write_all(&chunk).is_err() {
            break; // the server cut us off
        }
        sent += chunk.len();
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let after = server.rss_kib();
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // And the server still answers a fresh client at once.
    let mut fresh = connect(server.port);
    assert_eq!(read_exact(&mut fresh, 8), b"welcome!");
    fresh.write_all(b"ok\n").unwrap();
    assert_eq!(read_exact(&mut fresh, 10), b"hello,ok!\n");
}

#[test]
fn past_the_connection_cap_newcomers_are_closed_until_a_slot_frees() {
    let server = Server::start(&["hello", "--port", "0", "--max-conn", "3"], 1);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect(server.port);
            assert_eq!(read_exact(&mut s, 8), b"welcome!");
            s
        })
        .collect();
    let mut refused = connect(server.port);
    assert_eq!(read_some(&mut refused), b"", "the fourth is closed at once");
    held.pop();
    // The slot frees once the server has seen the close: until then a
    // newcomer is closed at once, as the fourth was; then it is welcome.
    common::eventually(Duration::from_secs(10), "a slot to free", || {
        let mut again = connect(server.port);
        read_some(&mut again) == b"welcome!"
    });
    let (_, err) = server.stop();
    assert!(err.contains("connection limit (3) reached"), "{err}");
}

#[test]
fn bad_input_is_exit_2() {
    for args in [
        vec!["serve", "hello", "--port", "70000"],
        vec!["serve", "hello", "--port", "-1"],
        vec!["serve", "hello", "--bind", "999.1.1.1"],
        vec!["serve", "chat"],
        vec!["serve", "hello", "--delay", "soon"],
        vec!["serve", "hello", "--max-conn", "0"],
    ] {
        common::assert_usage_error(&run(&args), args[args.len() - 1]);
    }
}

#[test]
fn serve_http_describes_the_request() {
    let server = Server::start(&["http", "--port", "0", "-q"], 1);
    assert!(server.lines[0].starts_with("http server listening on 127.0.0.1:"));
    let mut s = connect(server.port);
    s.write_all(b"GET /probe?x=1 HTTP/1.1\r\nHost: test\r\nX-Custom: forty-two\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("path: /probe?x=1\n"), "{reply}");
    assert!(reply.contains("  X-Custom: forty-two\n"), "{reply}");
    assert!(
        reply.contains(&format!("client: {}", s.local_addr().unwrap())),
        "{reply}"
    );

    let mut s = connect(server.port);
    s.write_all(b"POST /j HTTP/1.1\r\nAccept: application/json\r\nX-Custom: 7\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let described: serde_json::Value = serde_json::from_slice(&reply[at..]).unwrap();
    json::request_description(&described);
    assert_eq!(
        (&described["method"], &described["path"]),
        (&"POST".into(), &"/j".into()),
        "{described}"
    );
    assert!(
        described["headers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["X-Custom", "7"])),
        "{described}"
    );

    let mut s = connect(server.port);
    s.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    common::assert_usage_error(&run(&["serve", "http", "--udp"]), "--udp");
    let (code, err) = server.stop();
    assert_eq!(code, Some(0));
    assert!(
        err.contains("http server stopped: 3 connections, 3 messages"),
        "{err}"
    );
}

/// tokio's scheduler calls `pow`; portctl defines it (src/nolibm.rs) so that
/// libm.so is never mapped — and the server's statistics still work.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn servers_answer_without_libm_loaded() {
    let server = Server::start(&["echo", "--port", "0"], 1);
    for i in 0..20 {
        let mut s = connect(server.port);
        let line = format!("message {i}\n");
        s.write_all(line.as_bytes()).unwrap();
        assert_eq!(read_exact(&mut s, line.len()), line.as_bytes());
    }
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.pid())).unwrap();
    assert!(maps.contains("/libc.so"), "{maps}");
    assert!(!maps.contains("/libm.so"), "{maps}");
}
