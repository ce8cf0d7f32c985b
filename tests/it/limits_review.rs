//! What a hostile review found, each held by a test: an impostor runtime
//! process, peer bytes in error lines and JSON, a closed stdout under
//! talk, replies that never pause, interim-response floods.
// Unix only: it needs python3 holders and setpriv.
#![cfg(unix)]

use crate::common;

use common::{json, portctl, run, stderr};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A one-shot server on 127.0.0.1 that sends `reply` to the first client
/// (after reading its request) and then holds the connection `hold`.
fn serve_once(reply: Vec<u8>, hold: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.read(&mut [0u8; 4096]);
            let _ = s.write_all(&reply);
            // Not a wait for anything: the peer keeps the connection open
            // for `hold`, so talk must end on what it got, not on a close.
            std::thread::sleep(hold);
        }
    });
    port
}

#[test]
#[ignore = "needs root and setpriv"]
fn a_process_calling_itself_docker_proxy_is_not_a_runtime() {
    // The impostor runs as nobody.
    common::require_root_and_setpriv();
    // An unprivileged program named docker-proxy, claiming a container.
    let script = "import socket,time\n\
        s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
        print(s.getsockname()[1], flush=True); time.sleep(30)\n";
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args([
            "bash",
            "-c",
            "exec -a docker-proxy python3 -c \"$0\" -container-ip 172.17.0.2 -container-port 8080",
        ])
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().to_string();
    let who = run(&["who", "--json", &port]);
    let story = json::parse(&who);
    json::story(&story);
    let sockets = story["sockets"].as_array().unwrap();
    assert!(!sockets.is_empty(), "the impostor's listener: {story}");
    assert!(
        sockets.iter().all(|s| s["container"].is_null()),
        "an impostor is attributed to a container: {story}"
    );
    assert!(
        story["notes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n["text"].as_str().unwrap().contains("forwards into")),
        "{story}"
    );
    // kill treats it as the ordinary process it is.
    let out = run(&["kill", "--yes", "--timeout", "2", &port]);
    assert!(!stderr(&out).contains("never stops"), "{}", stderr(&out));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn peer_bytes_never_reach_the_terminal_through_errors_or_json() {
    // A chunk size line that is an escape sequence and a bidi override.
    let port = serve_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\x1b[2J\xe2\x80\xaeOWNED\r\n"
            .to_vec(),
        Duration::from_secs(2),
    );
    let out = run(&["talk", "--http", "/", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        !err.contains('\x1b') && !err.contains('\u{202e}'),
        "{err:?}"
    );
    assert!(err.contains("\\e[2J"), "{err:?}");
    // A header with C1 and bidi controls, as JSON: escaped, and exact.
    let port = serve_once(
        "HTTP/1.1 200 OK\r\nX-Evil: a\u{202e}b\u{9b}31m\r\nContent-Length: 2\r\n\r\nok"
            .as_bytes()
            .to_vec(),
        Duration::from_secs(1),
    );
    let out = run(&[
        "talk",
        "--json",
        "--http",
        "/",
        &format!("127.0.0.1:{port}"),
    ]);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{9b}'),
        "{text:?}"
    );
    let response: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let evil = response["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "X-Evil")
        .unwrap();
    assert_eq!(evil[1], "a\u{202e}b\u{9b}31m");
}

#[test]
fn talk_into_a_closed_stdout_ends_quietly() {
    let server = common::Server::start(&["hello", "--port", "0", "-q"], 1);
    let mut child = portctl()
        .args(["talk", &format!("127.0.0.1:{}", server.port)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // like `| head -1`
    let lines: String = (0..3000).map(|i| format!("line{i}\n")).collect();
    let _ = child.stdin.take().unwrap().write_all(lines.as_bytes());
    let code = common::wait_timeout(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn a_reply_that_never_pauses_ends_at_the_timeout() {
    // A greeting streamed without pause for far longer than --timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let chunk = vec![b'x'; 4096];
            let until = Instant::now() + Duration::from_secs(15);
            while Instant::now() < until && s.write_all(&chunk).is_ok() {}
        }
    });
    let started = Instant::now();
    let out = portctl()
        .args(["talk", "--timeout", "1", &format!("127.0.0.1:{port}"), "hi"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}: {}",
        started.elapsed(),
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn interim_responses_without_end_are_no_answer() {
    let flood: Vec<u8> = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(20);
    let port = serve_once(flood, Duration::from_secs(2));
    let out = run(&["talk", "--http", "/", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("interim"), "{}", stderr(&out));
    let port = serve_once(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".to_vec(),
        Duration::from_secs(2),
    );
    let out = run(&["talk", "--http", "/", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
