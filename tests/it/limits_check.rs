//! Hard limits for the commands that answer about this machine: `check`,
//! `free`, `list`, `kill` and `probe` give the right answer, to the right
//! holder, with the right advice, whatever the addresses, namespaces and
//! readers they meet. Each case here was answered wrongly before.
// Unix only: it needs python3 holders, /proc and signals.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, check_json, json, named_listener, on_terminal, portctl, python, require_program,
    require_root, require_script, run, stderr, stdout, Server,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
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

/// `net.ipv6.bindv6only` of the network namespace this thread is in.
fn bindv6only() -> bool {
    let value = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
        .expect("read /proc/sys/net/ipv6/bindv6only");
    match value.trim() {
        "0" => false,
        "1" => true,
        other => panic!("net.ipv6.bindv6only is {other:?}"),
    }
}

/// A server binding `[::]` the default way while another process holds
/// the port on IPv4 (the wildcard and loopback): with
/// `net.ipv6.bindv6only=0`, Linux's default, `[::]` takes IPv4 too, so the
/// port is not free for it; with 1 it is IPv6-only and the port is free.
/// Asserted for whichever this thread's network namespace has.
fn ipv6_wildcard_beside_an_ipv4_holder() {
    let v6only = bindv6only();
    for host in ["0.0.0.0", "127.0.0.1"] {
        let (holder, port) = hold("AF_INET", "", host, true);
        let p = port.to_string();
        let (code, records) = check_json(&[&p, "--tcp", "--host", "::"]);
        let free = run(&["free", "--host", "::", "--range", &format!("{p}-{p}")]);
        if v6only {
            // IPv6-only: the IPv4 holder takes nothing from [::].
            assert_eq!(code, 0, "{host}, bindv6only=1: {records:?}");
            assert_eq!(records[0]["status"], "free", "{records:?}");
            assert_exit(&free, 0);
            assert_eq!(stdout(&free).trim(), p, "free hands it out for [::]");
            // And a real server binds it the default way.
            let server = Server::start(&["hello", "--bind", "::", "--port", &p], 1);
            assert_eq!(server.port, port, "{:?}", server.lines);
        } else {
            // What a server meets: binding [::] the default way fails.
            let serve = run(&["serve", "hello", "--bind", "::", "--port", &p]);
            assert_exit(&serve, 1);
            assert_eq!(code, 1, "{host}: {records:?}");
            assert_eq!(records[0]["status"], "in-use", "{records:?}");
            let holders = records[0]["holders"].as_array().unwrap();
            assert_eq!(holders.len(), 1, "{records:?}");
            assert_eq!(json::pid(&holders[0]["pid"]), Some(holder.id()));
            // free never hands it out for [::].
            assert_exit(&free, 1);
        }
        stop(holder);
    }
}

#[test]
fn a_dual_stack_server_on_the_ipv6_wildcard_is_not_free_while_ipv4_holds_the_port() {
    ipv6_wildcard_beside_an_ipv4_holder();
}

/// Runs `f` on a thread of its own in a new network namespace, its
/// loopback up and `net.ipv6.bindv6only` set to `v6only`: the processes
/// the thread starts (holders, portctl) live in that namespace too.
fn in_network_namespace(v6only: bool, f: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: unshare(2) moves only this thread, which ends
                // with the namespace when `f` returns.
                let moved = unsafe { libc::unshare(libc::CLONE_NEWNET) };
                assert_eq!(
                    moved,
                    0,
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                );
                let up = Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status()
                    .expect("run ip");
                assert!(up.success(), "ip link set lo up");
                std::fs::write(
                    "/proc/sys/net/ipv6/bindv6only",
                    if v6only { "1" } else { "0" },
                )
                .expect("write net.ipv6.bindv6only in the new namespace");
                assert_eq!(bindv6only(), v6only);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
}

/// Both settings of `net.ipv6.bindv6only`, each in a network namespace of
/// its own, whatever this machine's own setting.
#[test]
#[ignore = "needs root"]
fn the_ipv6_wildcard_beside_an_ipv4_holder_under_both_bindv6only_settings() {
    require_root();
    require_program("ip", "-V", "apt-get install iproute2");
    for v6only in [false, true] {
        in_network_namespace(v6only, ipv6_wildcard_beside_an_ipv4_holder);
    }
}

#[test]
fn holders_are_matched_by_the_address_a_server_would_meet() {
    // An IPv4-mapped holder is the IPv4 address it maps.
    let (mapped, port) = hold("AF_INET6", "", "::ffff:127.0.0.1", true);
    let (code, records) = check_json(&[&port.to_string(), "--tcp", "--host", "127.0.0.1"]);
    assert_eq!(code, 1);
    assert_eq!(holder_pids(&records[0]), [Some(mapped.id())], "{records:?}");
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
    assert_eq!(holder_pids(&records[0]), [Some(v4.id())], "{records:?}");
    // And ::1 is held by the IPv6-only one alone.
    let (_, records) = check_json(&[&port.to_string(), "--tcp", "--host", "::1"]);
    assert_eq!(holder_pids(&records[0]), [Some(v6only.id())], "{records:?}");
    stop(v4);
    stop(v6only);
}

/// The PIDs of a check record's holders, in order.
fn holder_pids(record: &Value) -> Vec<Option<u32>> {
    record["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json::pid(&h["pid"]))
        .collect()
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
    let records = json::array(&out);
    records.iter().for_each(json::socket_record);
    let listener = records
        .iter()
        .find(|r| r["state"] == "LISTEN")
        .expect("the thread's listener is listed");
    assert_eq!(json::pid(&listener["pid"]), Some(child.id()), "{records:?}");
    let (_, held) = check_json(&[&port, "--tcp"]);
    assert_eq!(json::pid(&held[0]["holders"][0]["pid"]), Some(child.id()));
    stop(child);
}

#[test]
fn a_socket_bound_without_listening_is_named_not_blamed_on_a_namespace() {
    for (family, host) in [("AF_INET", "127.0.0.1"), ("AF_INET6", "::1")] {
        let (holder, port) = hold(family, "", host, false);
        let (code, records) = check_json(&[&port.to_string(), "--tcp"]);
        assert_eq!(code, 1, "{records:?}");
        let reason = records[0]["reason"].as_str().unwrap();
        assert!(!reason.contains("namespace"), "{reason}");
        assert!(reason.contains("bound, not listening"), "{reason}");
        assert_eq!(
            json::pid(&records[0]["holders"][0]["pid"]),
            Some(holder.id()),
            "{records:?}"
        );
        stop(holder);
    }
}

#[test]
#[ignore = "needs root"]
fn root_is_never_told_to_use_sudo() {
    require_root();
    require_program("unshare", "--version", "apt-get install util-linux");
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

/// U+202E (RIGHT-TO-LEFT OVERRIDE) and U+2066 in a 15-byte comm.
const BIDI_NAME: &str = "a\u{202e}b\u{2066}c";

#[track_caller]
fn assert_bidi_escaped(text: &str) {
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{2066}'),
        "{text:?}"
    );
    assert!(text.contains("a\\u{202e}b\\u{2066}c"), "{text:?}");
}

#[test]
fn bidirectional_overrides_in_process_names_are_escaped() {
    let (child, port) = named_listener(BIDI_NAME.as_bytes(), "127.0.0.1");
    let port = port.to_string();
    let pid = child.id().to_string();
    for text in [
        stdout(&run(&["list", "--pid", &pid])),
        stdout(&run(&["check", "--tcp", &port])),
    ] {
        assert_bidi_escaped(&text);
    }
    stop(child);
}

#[test]
#[ignore = "needs script"]
fn bidirectional_overrides_in_process_names_are_escaped_on_a_terminal() {
    let (child, _) = named_listener(BIDI_NAME.as_bytes(), "127.0.0.1");
    let pid = child.id();
    assert_bidi_escaped(&on_terminal(
        &format!("--color never list --pid {pid}"),
        &[],
    ));
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
    let next = || -> Value {
        let event = json::line(&lines.recv_timeout(Duration::from_secs(20)).unwrap());
        json::watch_event(&event);
        event
    };
    // The first scan: the listener and both ends of the connection.
    let first: Vec<Value> = (0..3).map(|_| next()).collect();
    assert!(first.iter().all(|e| e["event"] == "open"), "{first:?}");
    // The client leaves; the accepted side goes to CLOSE_WAIT.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    let change = loop {
        let e = next();
        if e["event"] == "change" {
            break e;
        }
        assert!(Instant::now() < deadline, "no change event");
    };
    assert_eq!(change["state"], "CLOSE_WAIT", "{change}");
    assert_eq!(change["local_port"], port, "{change}");
    let _ = watcher.kill();
    let _ = watcher.wait();
    drop(accepted);
}

#[test]
#[ignore = "needs script"]
fn kill_signals_only_what_still_listens_after_the_prompt() {
    require_script();
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

/// `probe NAME:PORT` against a listener on each loopback address in
/// turn, with `probe` running portctl's probe on a target: open, at that
/// address, exactly when NAME resolves to it (`resolves`), else closed.
fn probe_by_name(name: &str, probe: impl Fn(&str) -> Output, resolves: impl Fn(&str) -> bool) {
    for host in ["127.0.0.1", "::1"] {
        // A quiet number: nothing else may listen on the other address.
        let port = common::quiet_port();
        let _listener = TcpListener::bind((host, port)).unwrap();
        let out = probe(&format!("{name}:{port}"));
        let records = json::array(&out);
        records.iter().for_each(json::probe_record);
        if resolves(host) {
            assert_exit(&out, 0);
            assert_eq!(records[0]["status"], "open", "{host}: {records:?}");
            assert_eq!(records[0]["addr"], host, "{records:?}");
        } else {
            // An address the name does not have is never tried.
            assert_exit(&out, 1);
            assert_eq!(records[0]["status"], "closed", "{host}: {records:?}");
            assert_ne!(records[0]["addr"], host, "{records:?}");
        }
    }
}

/// `localhost` as this machine resolves it: to both loopback addresses on
/// most, to 127.0.0.1 alone on some (see the root test below for both).
#[test]
fn probe_tries_every_address_of_a_name() {
    let resolves = |ip: &str| {
        std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 1))
            .map(|mut a| a.any(|a| a.ip().to_string() == ip))
            .unwrap_or(false)
    };
    assert!(
        resolves("127.0.0.1") || resolves("::1"),
        "localhost resolves to no loopback address"
    );
    probe_by_name(
        "localhost",
        |target| run(&["probe", "--json", target]),
        resolves,
    );
}

/// A name with both loopback addresses, whatever this machine's
/// /etc/hosts says: portctl runs in a mount namespace of its own where
/// /etc/hosts names `portctl-dual` on both.
#[test]
#[ignore = "needs root"]
fn probe_tries_both_addresses_of_a_name_that_has_two() {
    require_root();
    require_program("unshare", "--version", "apt-get install util-linux");
    let hosts = std::env::temp_dir().join(format!("portctl-hosts-{}", std::process::id()));
    std::fs::write(&hosts, "127.0.0.1 portctl-dual\n::1 portctl-dual\n").unwrap();
    probe_by_name(
        "portctl-dual",
        |target| {
            Command::new("unshare")
                .args(["--mount", "--", "sh", "-c"])
                .arg(r#"mount --bind "$0" /etc/hosts && exec "$1" probe --json "$2""#)
                .arg(&hosts)
                .arg(env!("CARGO_BIN_EXE_portctl"))
                .arg(target)
                .stdin(Stdio::null())
                .output()
                .expect("run unshare")
        },
        |_| true,
    );
    let _ = std::fs::remove_file(&hosts);
}
