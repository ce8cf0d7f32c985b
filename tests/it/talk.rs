//! `portctl talk` against `portctl serve` and a local HTTP server.

use crate::common;

use common::{
    assert_exit, assert_usage_error, json, portctl, run, stderr, stdout, with_input, Server,
};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn talk_to_serve_prints_the_four_lines() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let out = run(&[
        "talk",
        &format!("127.0.0.1:{}", server.port),
        "Michael",
        "Tracy",
        "Sarah",
    ]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        "welcome!\nhello,Michael!\nhello,Tracy!\nhello,Sarah!\n"
    );
    // Over IPv6 and by name too.
    let v6 = Server::start(&["hello", "--port", "0", "--bind", "::1", "-q"], 1);
    let out = run(&["talk", &format!("[::1]:{}", v6.port), "x"]);
    assert_eq!(stdout(&out), "welcome!\nhello,x!\n");
    let out = run(&["talk", &format!("localhost:{}", server.port), "y"]);
    assert_eq!(stdout(&out), "welcome!\nhello,y!\n");
}

#[test]
fn stdin_lines_and_json() {
    let server = Server::start(&["hello", "--port", "0", "-q"], 1);
    let mut talk = portctl();
    talk.args(["talk", "--json", &format!("127.0.0.1:{}", server.port)]);
    let out = with_input(talk, b"one\r\ntwo\n");
    assert_exit(&out, 0);
    let exchanges = json::array(&out);
    exchanges.iter().for_each(json::exchange);
    let data: Vec<&str> = exchanges
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["welcome!", "hello,one!", "hello,two!"]);
    assert_eq!(exchanges[0]["kind"], "greeting", "{exchanges:?}");
    assert_eq!(exchanges[2]["sent"], "two", "{exchanges:?}");
}

#[test]
fn udp_datagrams() {
    let server = Server::start(&["hello", "--udp", "--port", "0"], 1);
    let out = run(&[
        "talk",
        "--udp",
        &format!("127.0.0.1:{}", server.port),
        "Bob",
        "Alice",
    ]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "Hello, Bob!\nHello, Alice!\n");
    let echo = Server::start(&["echo", "--udp", "--port", "0"], 1);
    let out = run(&["talk", "-u", &format!("127.0.0.1:{}", echo.port), "same"]);
    assert_eq!(stdout(&out), "same\n");
}

#[test]
fn unreachable_peers_are_exit_3_and_refusals_are_immediate() {
    let port = common::quiet_port();
    let started = Instant::now();
    let out = run(&[
        "talk",
        "--timeout",
        "60",
        &format!("127.0.0.1:{port}"),
        "hi",
    ]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    // Well short of the timeout, with room for a slow start under Wine.
    assert!(started.elapsed() < Duration::from_secs(20));
    // UDP: the ICMP port-unreachable comes back as a refusal.
    let out = run(&[
        "talk",
        "--udp",
        "--timeout",
        "3",
        &format!("127.0.0.1:{port}"),
        "hi",
    ]);
    assert_exit(&out, 3);
    // A name that does not resolve.
    let out = run(&["talk", "--timeout", "3", "no-such-host.invalid:80", "hi"]);
    assert_exit(&out, 3);
    // A server that accepts but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run(&[
        "talk",
        "--timeout",
        "0.5",
        &silent.local_addr().unwrap().to_string(),
        "hi",
    ]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("no reply"), "{}", stderr(&out));
}

#[test]
fn bad_targets_are_exit_2() {
    for bad in [
        "999.1.1.1:80",
        "localhost",
        "::1:80",
        "[::1]:70000",
        "host:",
        "a b:80",
    ] {
        assert_usage_error(&run(&["talk", bad, "x"]), bad);
    }
    assert_usage_error(&run(&["talk", "127.0.0.1:80", "--timeout", "-3"]), "-3");
    assert_usage_error(&run(&["talk", "127.0.0.1:80", "-o", "f"]), "--http");
}

/// A one-shot HTTP server in this test: answers one request with
/// `response`, and hands back the request it got.
fn http_once(response: Vec<u8>) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        s.write_all(&response).unwrap();
        request
    });
    (port, handle)
}

#[test]
fn http_get_with_content_length_chunked_and_read_to_close_bodies() {
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let mut with_length = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Test: yes\r\n\r\n",
        body.len()
    )
    .into_bytes();
    with_length.extend_from_slice(&body);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(1234) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut to_close = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    to_close.extend_from_slice(&body);

    let dir = std::env::temp_dir().join(format!("portctl-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, response) in [with_length, chunked, to_close].into_iter().enumerate() {
        let (port, server) = http_once(response);
        let file = dir.join(format!("body{i}"));
        let out = run(&[
            "talk",
            &format!("127.0.0.1:{port}"),
            "--http",
            "/some/path?q=1",
            "-o",
            file.to_str().unwrap(),
        ]);
        assert_exit(&out, 0);
        assert!(
            stdout(&out).starts_with("HTTP/1.1 200 OK\n"),
            "{}",
            stdout(&out)
        );
        assert_eq!(std::fs::read(&file).unwrap(), body, "response {i}");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("GET /some/path?q=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }
    // Without -o the body goes to stdout byte for byte, the head to stderr.
    let response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n\xff\x00\x1b".to_vec();
    let (port, _server) = http_once(response);
    let out = run(&["talk", &format!("127.0.0.1:{port}"), "--http"]);
    assert_exit(&out, 1);
    assert_eq!(out.stdout, b"\xff\x00\x1b");
    assert!(stderr(&out).starts_with("HTTP/1.1 404 Not Found\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[cfg(unix)] // the real server is python3's http.server
fn http_against_a_real_server() {
    let dir = std::env::temp_dir().join(format!("portctl-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file.bin"), b"\x00\x01binary\xff").unwrap();
    let port = common::quiet_port();
    let server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = common::Kid(server);
    let target = format!("127.0.0.1:{port}");
    common::eventually(Duration::from_secs(10), "http.server to listen", || {
        std::net::TcpStream::connect(&target).is_ok()
    });
    let out = run(&["talk", &target, "--http", "/file.bin"]);
    drop(server);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"\x00\x01binary\xff");
    let _ = std::fs::remove_dir_all(dir);
}
