//! Hard limits for the commands that answer about this machine: `check`,
//! `free`, `list`, `kill` and `probe` give the right answer, to the right
//! holder, with the right advice, whatever the addresses, namespaces and
//! readers they meet. Each case here was answered wrongly before.
// Unix only: it needs python3 holders, /proc and signals.
#![cfg(unix)]

mod common;

use common::{
    assert_exit, check_json, named_listener, needs_root, on_terminal, portctl, python, run, stderr,
    stdout,
};
use portctl::check::Status;
use portctl::list::WatchEvent;
use portctl::model::TcpState;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A python3 child holding one TCP socket bound to (host, port), set up
/// by `setup` (Python statements on `s`, an unbound socket of `family`);
/// returns it with the port it got.
fn hold(family: &str, setup: &str, host: &str, listen: bool) -> (Child, u16) {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n\
         {setup}\n\
         s.bind(('{host}', 0))\n\
         {}\n\
         print(s.getsockname()[1], flush=True)\n\
         time.sleep(60)\n",
        if listen { "s.listen(8)" } else { "pass" }
    );
    let (child, line) = python(&script, &[]);
    (child, line.trim().parse().unwrap())
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_dual_stack_server_on_the_ipv6_wildcard_is_not_free_while_ipv4_holds_the_port() {
    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    if v6only.trim() == "1" {
        eprintln!("skipped: net.ipv6.bindv6only=1, [::] does not cover IPv4 here");
        return;
    }
    for host in ["0.0.0.0", "127.0.0.1"] {
        let (holder, port) = hold("AF_INET", "", host, true);
        let p = port.to_string();
        // What a server meets: binding [::] the default way fails.
        let serve = run(&["serve", "hello", "--bind", "::", "--port", &p]);
        assert_exit(&serve, 1);
        let (code, records) = check_json(&[&p, "--tcp", "--host", "::"]);
        assert_eq!(code, 1, "{host}: {records:?}");
        assert_eq!(records[0].status, Status::InUse);
        assert_eq!(records[0].holders.len(), 1, "{records:?}");
        assert_eq!(records[0].holders[0].pid, Some(holder.id()));
        // free never hands it out for [::].
        let free = run(&["free", "--host", "::", "--range", &format!("{p}-{p}")]);
        assert_exit(&free, 1);
        stop(holder);
    }
}

#[test]
fn holders_are_matched_by_the_address_a_server_would_meet() {
    // An IPv4-mapped holder is the IPv4 address it maps.
    let (mapped, port) = hold("AF_INET6", "", "::ffff:127.0.0.1", true);
    let (code, records) = check_json(&[&port.to_string(), "--tcp", "--host", "127.0.0.1"]);
    assert_eq!(code, 1);
    assert_eq!(records[0].holders.len(), 1, "{records:?}");
    assert_eq!(records[0].holders[0].pid, Some(mapped.id()));
    stop(mapped);

    // An IPv6-only [::] listener takes nothing from 127.0.0.1: with
    // 127.0.0.1 held by another process, only that one is named.
    let (v4, port) = hold("AF_INET", "", "127.0.0.1", true);
    let (v6only, _) = python(
        &format!(
            "import socket, time\n\
             s = socket.socket(socket.AF_INET6)\n\
             s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
             s.bind(('::', {port})); s.listen(8)\n\
             print('ok', flush=True); time.sleep(60)\n"
        ),
        &[],
    );
    let (code, records) = check_json(&[&port.to_string(), "--tcp", "--host", "127.0.0.1"]);
    assert_eq!(code, 1);
    let pids: Vec<Option<u32>> = records[0].holders.iter().map(|h| h.pid).collect();
    assert_eq!(pids, [Some(v4.id())], "{records:?}");
    // And ::1 is held by the IPv6-only one alone.
    let (_, records) = check_json(&[&port.to_string(), "--tcp", "--host", "::1"]);
    let pids: Vec<Option<u32>> = records[0].holders.iter().map(|h| h.pid).collect();
    assert_eq!(pids, [Some(v6only.id())], "{records:?}");
    stop(v4);
    stop(v6only);
}

#[test]
fn a_socket_in_a_thread_with_its_own_descriptor_table_has_an_owner() {
    let script = r#"
import ctypes, socket, threading, time
libc = ctypes.CDLL(None, use_errno=True)
ready = threading.Event()
port = []
def worker():
    if libc.unshare(0x400) != 0:  # CLONE_FILES
        raise OSError(ctypes.get_errno(), "unshare")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
    port.append(s.getsockname()[1])
    ready.set()
    time.sleep(60)
threading.Thread(target=worker, daemon=True).start()
ready.wait()
print(port[0], flush=True)
time.sleep(60)
"#;
    let (child, line) = python(script, &[]);
    let port = line.trim().to_string();
    let out = run(&["list", "--json", "--tcp", "--port", &port]);
    let records: Vec<portctl::record::SocketRecord> = serde_json::from_slice(&out.stdout).unwrap();
    let listener = records
        .iter()
        .find(|r| r.state == Some(TcpState::Listen))
        .expect("the thread's listener is listed");
    assert_eq!(listener.pid, Some(child.id()), "{records:?}");
    let (_, held) = check_json(&[&port, "--tcp"]);
    assert_eq!(held[0].holders[0].pid, Some(child.id()));
    stop(child);
}

#[test]
fn a_socket_bound_without_listening_is_named_not_blamed_on_a_namespace() {
    for (family, host) in [("AF_INET", "127.0.0.1"), ("AF_INET6", "::1")] {
        let (holder, port) = hold(family, "", host, false);
        let (code, records) = check_json(&[&port.to_string(), "--tcp"]);
        assert_eq!(code, 1, "{records:?}");
        let reason = records[0].reason.clone().unwrap();
        assert!(!reason.contains("namespace"), "{reason}");
        assert!(reason.contains("bound, not listening"), "{reason}");
        assert_eq!(records[0].holders[0].pid, Some(holder.id()), "{records:?}");
        stop(holder);
    }
}

#[test]
fn root_is_never_told_to_use_sudo() {
    if !needs_root("portctl in a PID namespace of its own") {
        return;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have unshare (util-linux)"
        );
        eprintln!("skipped: unshare (util-linux) is missing");
        return;
    }
    // portctl in a PID namespace of its own, with its own /proc, cannot see
    // the holder outside: as root that is the namespace, not privileges.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let inside = |args: &[&str]| {
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--"])
            .arg(env!("CARGO_BIN_EXE_portctl"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = inside(&["check", "--tcp", &port]);
    assert_exit(&out, 1);
    let text = stdout(&out) + &stderr(&out);
    assert!(!text.contains("sudo"), "{text}");
    assert!(text.contains("PID namespace"), "{text}");
    let out = inside(&["kill", "--yes", &port]);
    assert_exit(&out, 1);
    let text = stdout(&out) + &stderr(&out);
    assert!(
        !text.contains("sudo") && text.contains("PID namespace"),
        "{text}"
    );
    drop(listener);
}

/// A stdout whose reader is already gone: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is ours and closed once; fds[1] moves into the Stdio.
    unsafe {
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

use std::os::fd::FromRawFd;

#[test]
fn a_closed_stdout_never_turns_a_negative_answer_into_success() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let answer = |args: &[&str]| {
        portctl()
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(answer(&["check", &port]), Some(1));
    assert_eq!(answer(&["check", "--json", &port]), Some(1));
    assert_eq!(answer(&["whatis", "4"]), Some(1)); // nothing registered
    assert_eq!(answer(&["whatis", "443"]), Some(0));
    drop(listener);
    let gone = common::quiet_port();
    assert_eq!(
        answer(&["probe", &format!("127.0.0.1:{gone}")]),
        Some(1),
        "a closed port stays closed"
    );
}

#[test]
fn bidirectional_overrides_in_process_names_are_escaped() {
    // U+202E (RIGHT-TO-LEFT OVERRIDE) and U+2066 in a 15-byte comm.
    let (child, port) = named_listener("a\u{202e}b\u{2066}c".as_bytes(), "127.0.0.1");
    let port = port.to_string();
    let pid = child.id().to_string();
    for text in [
        stdout(&run(&["list", "--pid", &pid])),
        stdout(&run(&["check", "--tcp", &port])),
        on_terminal(&format!("--color never list --pid {pid}"), &[]),
    ] {
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{2066}'),
            "{text:?}"
        );
        assert!(text.contains("a\\u{202e}b\\u{2066}c"), "{text:?}");
    }
    stop(child);
}

#[test]
fn watch_reports_a_state_change_as_an_event() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = server.accept().unwrap();
    let mut watcher = portctl()
        .args(["list", "--watch", "0.2", "--json", "--tcp", "--port"])
        .arg(port.to_string())
        .arg("--pid")
        .arg(std::process::id().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let out = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next = || -> WatchEvent {
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap()
    };
    // The first scan: the listener and both ends of the connection.
    let first: Vec<WatchEvent> = (0..3).map(|_| next()).collect();
    assert!(
        first.iter().all(|e| e.event.as_str() == "open"),
        "{first:?}"
    );
    // The client leaves; the accepted side goes to CLOSE_WAIT.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    let change = loop {
        let e = next();
        if e.event.as_str() == "change" {
            break e;
        }
        assert!(Instant::now() < deadline, "no change event");
    };
    assert_eq!(change.socket.state, Some(TcpState::CloseWait), "{change:?}");
    assert_eq!(change.socket.local_port, port);
    let _ = watcher.kill();
    let _ = watcher.wait();
    drop(accepted);
}

#[test]
fn kill_signals_only_what_still_listens_after_the_prompt() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have script (util-linux)"
        );
        eprintln!("skipped: script (util-linux) is missing");
        return;
    }
    let (first, port) = hold(
        "AF_INET",
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
        "127.0.0.1",
        true,
    );
    let mut session = Command::new("script")
        .args([
            "-qec",
            &format!("{} kill {port}", env!("CARGO_BIN_EXE_portctl")),
            "/dev/null",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut screen = session.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("[y/N]") {
        assert!(Instant::now() < deadline, "no prompt: {seen:?}");
        let mut byte = [0u8; 256];
        let n = screen.read(&mut byte).unwrap();
        assert!(n > 0, "no prompt: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&byte[..n]);
    }
    // While the prompt waits, the holder goes and another process takes
    // the port: agreeing to stop the first must not stop the second.
    stop(first);
    let (second, _) = python(
        &format!(
            "import socket, time\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', {port})); s.listen(8)\n\
             print('ok', flush=True); time.sleep(60)\n"
        ),
        &[],
    );
    session.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    let status = common::wait_timeout(&mut session, Duration::from_secs(15));
    let mut rest = String::new();
    let _ = screen.read_to_string(&mut rest);
    assert!(status.is_some(), "kill did not finish");
    let mut second = second;
    assert!(
        matches!(second.try_wait(), Ok(None)),
        "the second holder was signalled: {rest}"
    );
    assert!(!rest.contains(&format!("pid {}", second.id())), "{rest}");
    stop(second);
}

#[test]
fn probe_tries_every_address_of_a_name() {
    let resolves = |ip: &str| {
        std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 1))
            .map(|mut a| a.any(|a| a.ip().to_string() == ip))
            .unwrap_or(false)
    };
    if !(resolves("127.0.0.1") && resolves("::1")) {
        eprintln!("skipped: localhost does not resolve to both 127.0.0.1 and ::1 here");
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        let listener = TcpListener::bind((host, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = run(&["probe", "--json", &format!("localhost:{port}")]);
        assert_exit(&out, 0);
        let records: Vec<portctl::probe::ProbeRecord> =
            serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            records[0].status,
            portctl::probe::ProbeStatus::Open,
            "{host}"
        );
        assert_eq!(records[0].addr.to_string(), host);
    }
}
