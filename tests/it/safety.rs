//! Terminal safety, signals and pipes: hostile process names and peer
//! bytes never reach a terminal raw; SIGINT, SIGTERM and closed pipes end
//! every command cleanly.
// Unix only: it sends SIGINT/SIGTERM and uses pseudo-terminals.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, json, named_listener, on_terminal, portctl, require_script, run, stdout,
    wait_timeout, Server,
};
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn hostile_process_names_are_escaped() {
    let (mut child, port) = named_listener(b"\x1b[31mevil\x07", "127.0.0.1");
    let pid = child.id().to_string();
    let out = run(&["list", "--json", "--pid", &pid]);
    let records = json::array(&out);
    records.iter().for_each(json::socket_record);
    assert_eq!(
        records[0]["process"], "\x1b[31mevil\x07",
        "JSON keeps the name, escaped by JSON"
    );
    let plain = stdout(&run(&["list", "--pid", &pid]));
    assert!(
        !plain.contains('\x1b') && !plain.contains('\x07'),
        "{plain:?}"
    );
    assert!(plain.contains("\\e[31mevil\\x07"), "{plain:?}");
    let check = stdout(&run(&["check", "--tcp", &port.to_string()]));
    assert!(
        !check.contains('\x1b') && check.contains("\\e[31mevil"),
        "{check:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
#[ignore = "needs script"]
fn hostile_process_names_are_escaped_on_a_terminal() {
    let (mut child, _) = named_listener(b"\x1b[31mevil\x07", "127.0.0.1");
    let pid = child.id();
    let screen = on_terminal(&format!("--color never list --pid {pid}"), &[]);
    assert!(screen.contains("\\e[31mevil"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A peer that greets its one client with escape sequences and a bell;
/// its port, and the thread to join.
fn hostile_peer() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"\x1b]0;pwned\x07\x1b[2Jhi").unwrap();
        let mut sink = [0u8; 64];
        let _ = s.read(&mut sink);
    });
    (port, server)
}

#[test]
#[ignore = "needs script"]
fn peer_bytes_are_escaped_on_a_terminal() {
    let (port, server) = hostile_peer();
    let screen = on_terminal(&format!("--color never talk 127.0.0.1:{port}"), &[]);
    assert!(screen.contains("\\e]0;pwned\\x07\\e[2Jhi"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
    server.join().unwrap();
}

#[test]
fn peer_bytes_are_raw_in_a_pipe() {
    let (port, server) = hostile_peer();
    let piped = run(&["talk", &format!("127.0.0.1:{port}")]);
    assert_eq!(
        piped.stdout, b"\x1b]0;pwned\x07\x1b[2Jhi\n",
        "a pipe gets the bytes as sent"
    );
    server.join().unwrap();
}

#[test]
fn list_into_a_closed_pipe_exits_quietly() {
    // Enough sockets that the output outgrows the pipe buffer, more than
    // a default soft limit of 1024 descriptors allows.
    common::raise_fd_limit();
    let held: Vec<UdpSocket> = (0..1500)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for args in [&["list"][..], &["list", "--json"]] {
        let (code, err) = common::into_closed_pipe(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
    }
    // And through a real shell pipeline, as people type it.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} list | head -1",
                env!("CARGO_BIN_EXE_portctl")
            ),
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 1);
    // Nothing on stderr but the one hint about owners it cannot see
    // (without root other users'; as root those of a process whose
    // descriptors even root may not read, as a sandbox's init).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().all(|l| l.starts_with("hint:")), "{err}");
    assert!(err.lines().count() <= 1, "{err}");
    drop(held);
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn sigint_ends_serve_cleanly_and_frees_the_port() {
    let server = Server::start(&["echo", "--tcp", "--udp", "--port", "0"], 2);
    let port = server.port;
    interrupt(&server.child);
    let mut server = server;
    assert_eq!(
        wait_timeout(&mut server.child, Duration::from_secs(5)),
        Some(0)
    );
    TcpListener::bind(("127.0.0.1", port)).expect("TCP port released");
    UdpSocket::bind(("127.0.0.1", port)).expect("UDP port released");
}

#[test]
fn sighup_and_sigquit_end_serve_cleanly_too() {
    for signal in [libc::SIGHUP, libc::SIGQUIT] {
        let mut server = Server::start(&["hello", "--port", "0"], 1);
        let port = server.port;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(server.child.id() as i32, signal) };
        assert_eq!(
            wait_timeout(&mut server.child, Duration::from_secs(5)),
            Some(0),
            "signal {signal}"
        );
        TcpListener::bind(("127.0.0.1", port)).expect("TCP port released");
    }
}

#[test]
fn sigint_ends_check_wait_at_once() {
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let mut child = portctl()
        .args(["check", "--tcp", "--wait", "--timeout", "60", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready: it says it waits once it has seen the port held.
    // (The pipe stays open to the end: a closed stderr is another test.)
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(said.starts_with("waiting"), "{said:?}");
    let started = Instant::now();
    interrupt(&child);
    assert_eq!(
        wait_timeout(&mut child, Duration::from_secs(5)),
        None,
        "ended by the signal"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
#[ignore = "needs script"]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let coloured = on_terminal("whatis 443", &[]);
    assert!(
        coloured.contains("\x1b[") && coloured.contains('│'),
        "{coloured:?}"
    );
    let no_color = on_terminal("whatis 443", &[("NO_COLOR", "1")]);
    assert!(
        !no_color.contains('\x1b') && no_color.contains('│'),
        "{no_color:?}"
    );
    let never = on_terminal("--color never whatis 443", &[]);
    assert!(!never.contains('\x1b'), "{never:?}");
    let forced = on_terminal("--color always whatis 443", &[("NO_COLOR", "1")]);
    assert!(forced.contains("\x1b["), "{forced:?}");
    // Colours too, not only bold: crossterm's own NO_COLOR check loses.
    // A listener of our own, so the table has a LISTEN row to colour.
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listening = on_terminal("--color always list -l", &[("NO_COLOR", "1")]);
    assert!(listening.contains("\x1b[38;"), "{listening:?}");
}

#[test]
fn a_pipe_never_gets_colour() {
    let piped = run(&["--color", "always", "whatis", "443"]);
    assert_exit(&piped, 0);
    assert!(!piped.stdout.contains(&0x1b), "a pipe never gets colour");
}

/// The widest line of the tables on a screen.
fn widest_table_line(screen: &str) -> usize {
    assert!(screen.contains("https"), "{screen}");
    screen
        .lines()
        .filter(|l| l.starts_with(['╭', '│', '╞', '╰']))
        .map(|l| l.trim_end_matches('\r').chars().count())
        .max()
        .unwrap()
}

/// Tables fit the terminal: its own width, or COLUMNS when the terminal
/// reports none (as `script`'s pseudo-terminal does unless told).
#[test]
#[ignore = "needs script"]
fn tables_wrap_to_the_terminal_width() {
    require_script();
    let args = "--color never whatis 443 ssh";
    let narrow = widest_table_line(&on_terminal(args, &[("COLUMNS", "60")]));
    let wide = widest_table_line(&on_terminal(args, &[("COLUMNS", "140")]));
    assert!(narrow <= 60, "{narrow} columns on a 60-column terminal");
    assert!(
        wide <= 140 && wide > 60,
        "{wide} columns on a 140-column terminal"
    );

    // A terminal that knows its size wins over COLUMNS (160 here).
    let sized = Command::new("script")
        .args([
            "-qec",
            &format!(
                "stty rows 30 cols 72; {} {args}",
                env!("CARGO_BIN_EXE_portctl")
            ),
            "/dev/null",
        ])
        .env("COLUMNS", "160")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let sized = widest_table_line(&String::from_utf8_lossy(&sized.stdout));
    assert!(
        sized <= 72 && sized > 60,
        "{sized} columns on a 72-column terminal"
    );
}
