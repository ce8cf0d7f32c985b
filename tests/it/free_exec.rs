//! `portctl free --exec`: the port is kept bound and handed to the program
//! (systemd socket activation), so nobody can take it in between.
// Unix only: free --exec hands sockets over the Unix way (socket activation).
#![cfg(unix)]

use crate::common;

use common::{assert_exit, assert_usage_error, portctl, run, stderr, wait_timeout};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Stdio};
use std::time::Duration;

/// A server on the inherited descriptor(s): prints its environment's
/// PORT and what it got, then answers one TCP connection (or datagram) on
/// every descriptor with `served PORT`.
const SERVER: &str = r#"
import os, socket, sys
n = int(os.environ["LISTEN_FDS"])
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID is not mine"
socks = [socket.socket(fileno=3 + i) for i in range(n)]
ports = [s.getsockname()[1] for s in socks]
print(os.environ["PORT"], os.environ.get("PORTS", ""), os.environ["LISTEN_FDNAMES"], " ".join(map(str, ports)), " ".join(sys.argv[1:]), flush=True)
for s in socks:
    s.settimeout(120)  # long: 200 start before the first is asked
    if s.type == socket.SOCK_STREAM:
        c, _ = s.accept()
        c.sendall(b"served %d" % s.getsockname()[1])
        c.close()
    else:
        data, peer = s.recvfrom(100)
        s.sendto(b"served %d" % s.getsockname()[1], peer)
"#;

fn start(args: &[&str], child_args: &[&str]) -> (Child, String) {
    let mut child = portctl()
        .arg("free")
        .args(args)
        .args(["--exec", "--", "python3", "-S", "-c", SERVER])
        .args(child_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

fn ask_tcp(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn the_program_serves_on_the_socket_it_was_handed() {
    let (mut child, line) = start(&[], &["--bind", "127.0.0.1:{port}"]);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port: u16 = fields[0].parse().unwrap();
    // PORT, the socket's own port and {port} agree; the fd is named.
    assert_eq!(fields[1], format!("tcp-{port}"), "{line}");
    assert_eq!(fields[2], port.to_string(), "{line}");
    assert_eq!(fields[4], format!("127.0.0.1:{port}"), "{line}");
    assert_eq!(ask_tcp(port), format!("served {port}"));
    // The exit status is the program's own (0 here).
    assert_eq!(wait_timeout(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn several_ports_and_udp() {
    let (mut child, line) = start(&["-n", "2"], &[]);
    let fields: Vec<&str> = line.split_whitespace().collect();
    // PORT, the two PORTS, the names, then the sockets' own ports.
    let (a, b): (u16, u16) = (fields[4].parse().unwrap(), fields[5].parse().unwrap());
    assert_ne!(a, b);
    assert_eq!(
        fields[1..3],
        [a.to_string(), b.to_string()],
        "PORTS: {line}"
    );
    assert_eq!(fields[3], format!("tcp-{a}:tcp-{b}"), "{line}");
    assert_eq!(ask_tcp(a), format!("served {a}"));
    assert_eq!(ask_tcp(b), format!("served {b}"));
    assert_eq!(wait_timeout(&mut child, Duration::from_secs(10)), Some(0));

    let (mut child, line) = start(&["--udp"], &[]);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port: u16 = fields[0].parse().unwrap();
    assert_eq!(fields[1], format!("udp-{port}"), "{line}");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.send_to(b"hi", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], format!("served {port}").as_bytes());
    assert_eq!(wait_timeout(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn exit_status_pid_and_errors_are_the_programs() {
    let out = run(&["free", "--exec", "--", "sh", "-c", "exit 42"]);
    assert_exit(&out, 42);
    // The pid is the program's: portctl replaced itself.
    let mut child = portctl()
        .args(["free", "--exec", "--", "sh", "-c", "echo $$ $LISTEN_PID"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = child.wait();
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        [pid.to_string(), pid.to_string()]
    );
    // Only the handed sockets cross: fd 3 is the socket, fd 4 is not open.
    let out = run(&[
        "free",
        "--exec",
        "--",
        "sh",
        "-c",
        "readlink /proc/self/fd/3; readlink /proc/self/fd/4 || echo none",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("socket:["), "{text}");
    assert!(text.trim_end().ends_with("none"), "{text}");

    let out = run(&["free", "--exec", "--", "/nonexistent/program"]);
    assert_exit(&out, 127);
    assert!(stderr(&out).starts_with("error: ") && stderr(&out).contains("/nonexistent/program"));
    let not_executable =
        std::env::temp_dir().join(format!("portctl-noexec-{}", std::process::id()));
    std::fs::write(&not_executable, "not a program\n").unwrap();
    let out = run(&["free", "--exec", "--", not_executable.to_str().unwrap()]);
    let _ = std::fs::remove_file(&not_executable);
    assert_exit(&out, 126);
    assert!(stderr(&out).starts_with("error: "));
    assert_usage_error(
        &run(&["free", "--exec", "--bogus", "--", "true"]),
        "--bogus",
    );
    assert_usage_error(&run(&["free", "-n", "0", "--exec", "--", "true"]), "0");
    // --release: the port number only, no descriptors.
    let out = run(&[
        "free",
        "--release",
        "--exec",
        "--",
        "sh",
        "-c",
        "echo ${LISTEN_FDS:-none} $PORT",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[0], "none", "{text}");
    assert!(fields[1].parse::<u16>().is_ok(), "{text}");
}

/// Many programs started at once each get a port of their own and serve
/// on it: no two share one, none fails.
#[test]
fn two_hundred_at_once_never_collide() {
    const N: usize = 200;
    let mut children: Vec<(Child, BufReader<std::process::ChildStdout>)> = (0..N)
        .map(|_| {
            let mut child = portctl()
                .args(["free", "--exec", "--", "python3", "-S", "-c", SERVER])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    let mut ports = Vec::with_capacity(N);
    for (_, out) in children.iter_mut() {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        ports.push(
            line.split_whitespace()
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap(),
        );
    }
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), N, "two programs got the same port");
    for port in &ports {
        assert_eq!(ask_tcp(*port), format!("served {port}"));
    }
    for (child, _) in children.iter_mut() {
        assert_eq!(wait_timeout(child, Duration::from_secs(20)), Some(0));
    }
    let _ = std::io::stdout().flush();
}
