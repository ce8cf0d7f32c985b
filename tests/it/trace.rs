//! `portctl trace` against real connections on loopback: thousands that
//! each live a millisecond, made by a program with a name of its own,
//! caught from the kernel's record (as root) with their process; the
//! filters and the ends; the fallback to polling as `nobody`; and
//! `list --watch --json` naming the process of connections that open and
//! close between two scans.
#![cfg(unix)]

use crate::common;

use common::json;
use common::{
    assert_exit, assert_usage_error, portctl, require_root, require_root_and_setpriv, run, Kid,
    Server,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The tests that read the kernel's record take turns: every trace sees
/// every connection on the machine, and one test's flood would fill the
/// others' rings.
static KERNEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kernel_turn() -> std::sync::MutexGuard<'static, ()> {
    KERNEL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The name the client program goes by (at most 15 bytes: `comm`).
const CLIENT: &str = "tracedclient";

/// A copy of the system's python3 called `tracedclient`, so its process
/// has a name of its own.
fn client_program() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portctl-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(CLIENT);
    if !path.exists() {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("a system python3 (apt-get install python3)");
        let copied = Command::new("cp")
            .args(["-L", python])
            .arg(&path)
            .status()
            .unwrap();
        assert!(copied.success());
    }
    path
}

/// `n` connections to each `(host, port)`, each closed at once.
const CONNECT_PY: &str = r#"
import socket, sys, os
n = int(sys.argv[1])
print(os.getpid(), flush=True)
sys.stdin.readline()
for target in sys.argv[2:]:
    host, port = target.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(n):
        s = socket.socket(family); s.connect((host, int(port))); s.close()
print("done", flush=True)
"#;

/// A running `trace --json`: its lines as they come.
struct Trace {
    child: Child,
    lines: Receiver<String>,
}

impl Trace {
    fn start(args: &[&str]) -> Trace {
        let mut child = portctl()
            .args(["trace", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sent, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if sent.send(line).is_err() {
                    return;
                }
            }
        });
        Trace { child, lines }
    }

    /// Every event that came within `limit`, until `done` says enough.
    fn read_until(&self, limit: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut events = Vec::new();
        while !done(&events) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let event = json::line(&line);
                    json::trace_event(&event);
                    events.push(event);
                }
                Err(_) => break,
            }
        }
        events
    }

    /// The accept of the connection from local port `from`, which must
    /// come within 5 s.
    fn accept_from(&self, from: u16) -> Value {
        let is_it = |e: &Value| e["event"] == "accept" && e["remote_port"] == from;
        let events = self.read_until(Duration::from_secs(5), |e| e.iter().any(is_it));
        events
            .iter()
            .find(|e| is_it(e))
            .cloned()
            .unwrap_or_else(|| panic!("no accept from {from}: {events:?}"))
    }

    /// SIGINT, then the exit code and stderr.
    fn interrupt(&mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let code = common::wait_timeout(&mut self.child, Duration::from_secs(10));
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (code, err)
    }
}

/// Every line `trace` printed that was not read yet, once it has ended.
fn trace_lines_left(trace: &Trace) -> Vec<Value> {
    trace.lines.iter().map(|line| json::line(&line)).collect()
}

/// Connects to `port` until `trace` shows it does: then it is following.
fn wait_until_tracing(trace: &Trace, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        let seen = trace.read_until(Duration::from_millis(300), |e| {
            e.iter()
                .any(|e| e["remote_port"] == port && e["event"] == "connect")
        });
        if seen.iter().any(|e| e["remote_port"] == port) {
            return;
        }
        assert!(Instant::now() < deadline, "trace never showed a connection");
    }
}

/// `portctl ARGS LAST`, which must end by itself with exit 0: its events.
fn trace_events(args: &[&str], last: impl AsRef<std::ffi::OsStr>) -> Vec<Value> {
    let out = portctl().args(args).arg(last).output().unwrap();
    assert_exit(&out, 0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json::line)
        .collect()
}

/// Runs the client: `count` connections to each of `targets`, each closed
/// at once, started once the client is up; returns its PID when it is
/// done.
fn connect_often(count: u32, targets: &[String]) -> u64 {
    let mut args = vec![count.to_string()];
    args.extend_from_slice(targets);
    run_client(CONNECT_PY, &args)
}

/// Starts `cmd`, reads the first line it prints, tells it to go on (a
/// line on its stdin) and reads the next: the child and the two lines.
fn told_to_go(cmd: &mut Command) -> (Child, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut next) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
    out.read_line(&mut next).unwrap();
    (child, first, next)
}

/// The numbers in a line a helper program printed.
fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

/// Starts `cmd` and reads the numbers of the first line it prints.
fn started_saying(cmd: &mut Command) -> (Kid, Vec<u64>) {
    let mut child = Kid(cmd.stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let said = numbers(&line);
    (child, said)
}

/// Runs `script` as the client program: it prints its PID, waits for a
/// line, does its work and prints "done". Returns the PID once it is done.
fn run_client(script: &str, args: &[String]) -> u64 {
    let (mut client, first, done) = told_to_go(
        Command::new(client_program())
            .args(["-c", script])
            .args(args),
    );
    let client_pid: u64 = first.trim().parse().unwrap();
    assert_eq!(done.trim(), "done");
    let _ = client.wait();
    client_pid
}

#[test]
#[ignore = "needs root"]
fn every_short_connection_comes_with_its_process_and_its_duration() {
    require_root();
    let _turn = kernel_turn();
    let v4 = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let v6 = Server::start(&["echo", "--bind", "::1", "--port", "0", "--quiet"], 1);
    let mut trace = Trace::start(&[]);
    wait_until_tracing(&trace, v4.port);
    let client_pid = connect_often(
        1000,
        &[format!("127.0.0.1:{}", v4.port), format!("::1:{}", v6.port)],
    );
    let ours = |e: &Value| e["pid"] == client_pid;
    let events = trace.read_until(Duration::from_secs(20), |events| {
        events
            .iter()
            .filter(|e| e["event"] == "close" && ours(e))
            .count()
            >= 2000
    });
    let (code, err) = trace.interrupt();
    assert_eq!(code, Some(0), "{err}");

    let to = |e: &Value, port: u16| e["remote_port"] == port;
    for (server, family) in [(&v4, "ipv4"), (&v6, "ipv6")] {
        let connects: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "connect" && to(e, server.port))
            .collect();
        // The client lives through its connections: its user can be read.
        let named = connects
            .iter()
            .filter(|e| ours(e) && e["process"] == CLIENT && e["source"] == "kernel")
            .filter(|e| e["user"] == "root")
            .count();
        assert!(
            named >= 999,
            "{family}: {named} of 1000 connects with the client's PID, name and user ({} seen)",
            connects.len()
        );
        assert!(connects
            .iter()
            .all(|e| e["family"] == family && e["local_port"] != 0));
        let closes: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "close" && ours(e) && to(e, server.port))
            .collect();
        assert!(closes.len() >= 999, "{family}: {} closes", closes.len());
        assert!(
            closes.iter().all(|e| e["duration_ms"].as_f64().is_some()),
            "a close without its duration"
        );
        let accepts = events
            .iter()
            .filter(|e| e["event"] == "accept" && e["local_port"] == server.port)
            .filter(|e| e["pid"] == server.pid() && e["process"] == "portctl")
            .count();
        assert!(
            accepts >= 999,
            "{family}: {accepts} accepts by the listener's owner"
        );
    }
    assert!(
        !err.contains("dropped"),
        "the kernel dropped records at this load: {err}"
    );
}

#[test]
#[ignore = "needs root"]
fn the_filters_and_the_ends() {
    require_root();
    let _turn = kernel_turn();
    let server = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let other = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let connect_loop = |port: u16| {
        std::thread::spawn(move || {
            for _ in 0..200 {
                let _ = std::net::TcpStream::connect(("127.0.0.1", port));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // --port and --count: three events of this port, then exit 0.
    let started = Instant::now();
    let feeding = connect_loop(server.port);
    let feeding_other = connect_loop(other.port);
    let events = trace_events(
        &["trace", "--json", "--count", "3", "--port"],
        server.port.to_string(),
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["local_port"] == server.port || e["remote_port"] == server.port));
    assert!(started.elapsed() < Duration::from_secs(5));
    // --pid: only the listener's own (its accepts and their closes).
    let events = trace_events(
        &["trace", "--json", "--duration", "1", "--pid"],
        server.pid().to_string(),
    );
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["pid"] == server.pid()),
        "{events:?}"
    );
    // --process, and --duration ends it.
    let started = Instant::now();
    let out = run(&["trace", "--json", "--duration", "1", "--process", "PORTCTL"]);
    assert_exit(&out, 0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json::line)
        .collect();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["process"] == "portctl"),
        "{events:?}"
    );
    feeding.join().unwrap();
    feeding_other.join().unwrap();
}

#[test]
fn udp_and_bad_values_are_refused() {
    let out = run(&["trace", "--udp"]);
    assert_usage_error(&out, "--udp");
    assert_usage_error(&run(&["trace", "--count", "0"]), "0");
    assert_usage_error(&run(&["trace", "--port", "70000"]), "70000");
    assert_usage_error(&run(&["trace", "--duration", "-1"]), "-1");
    assert_usage_error(&run(&["trace", "--pid", "x"]), "x");
}

/// A trace stopped (SIGSTOP) while 15,000 connections come and go cannot
/// keep up: its rings fill. What the kernel dropped is reported, on
/// stderr and in a last `lost` line, never hidden; what it did record is
/// printed before the trace ends, however soon it is told to.
#[test]
#[ignore = "needs root"]
fn records_the_kernel_dropped_are_reported() {
    require_root();
    let _turn = kernel_turn();
    let server = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    // One trace ends as asked, the other is killed: both stopped while
    // a flood goes by, so their rings overflow.
    let mut trace = Trace::start(&["--port", &server.port.to_string()]);
    let mut killed = Trace::start(&["--port", &server.port.to_string()]);
    wait_until_tracing(&trace, server.port);
    wait_until_tracing(&killed, server.port);
    let pids = [trace.child.id() as i32, killed.child.id() as i32];
    for pid in pids {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    let client_pid = connect_often(15_000, &[format!("127.0.0.1:{}", server.port)]);
    for pid in pids {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    // The killed one: what it dropped was said before it was killed.
    let caught_before_kill = killed.read_until(Duration::from_secs(3), |_| false);
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    let mut killed_err = String::new();
    if let Some(mut e) = killed.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut killed_err);
    }
    let connects = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["event"] == "connect" && e["pid"] == client_pid)
            .count()
    };
    let killed_caught = connects(&caught_before_kill);
    assert!(
        killed_caught == 15_000 || killed_err.contains("dropped"),
        "{killed_caught} of 15000 connects, and no word of drops before the kill: {killed_err}"
    );
    let (code, err) = trace.interrupt();
    assert_eq!(code, Some(0), "{err}");
    let events = trace_lines_left(&trace);
    let caught = connects(&events);
    assert!(caught > 0, "what the rings held was dropped at the end");
    if caught < 15_000 {
        let lost = events
            .iter()
            .find(|e| e["event"] == "lost")
            .unwrap_or_else(|| {
                panic!("{caught} of 15000 connects, and no lost line; stderr: {err}")
            });
        assert!(lost["count"].as_u64().is_some_and(|n| n > 0), "{lost}");
        assert!(err.contains("dropped"), "{err}");
    }
}

#[test]
fn sigint_ends_a_trace_with_success() {
    let mut trace = Trace::start(&["--poll"]);
    std::thread::sleep(Duration::from_millis(300)); // it runs: the case itself
    let (code, err) = trace.interrupt();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
#[ignore = "needs root and setpriv"]
fn without_the_privilege_it_polls_and_says_so() {
    require_root_and_setpriv();
    let server = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let port = server.port;
    let child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(common::binary_for_nobody())
        .args([
            "trace",
            "--json",
            "--duration",
            "3",
            "--port",
            &port.to_string(),
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Connections that live long enough for a scan to see them.
    let holding = std::thread::spawn(move || {
        for _ in 0..3 {
            let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            drop(c);
        }
    });
    holding.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("note:").count(), 1, "{err}");
    assert!(err.contains("needs root, or CAP_PERFMON"), "{err}");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json::line)
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "connect"),
        "no connection seen: {events:?}"
    );
    for e in &events {
        json::trace_event(e);
        assert_eq!(e["source"], "poll", "{e}");
    }
}

#[test]
#[ignore = "needs root"]
fn list_watch_names_the_process_of_connections_between_two_scans() {
    require_root();
    let _turn = kernel_turn();
    let server = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let mut watch = portctl()
        .args([
            "list",
            "--watch",
            "--json",
            "--port",
            &server.port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (sent, lines) = mpsc::channel::<String>();
    let out = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if sent.send(line).is_err() {
                return;
            }
        }
    });
    let _watch = Kid(watch);
    // The first scan: the listener opens.
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the first scan");
    assert_eq!(json::line(&first)["event"], "open");
    let client_pid = connect_often(200, &[format!("127.0.0.1:{}", server.port)]);
    // Each connection is the client's local port: named if an `open`
    // event for it carries the client's PID.
    let mut named = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while named.len() < 200 && Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(3)) else {
            break;
        };
        let e = json::line(&line);
        json::watch_event(&e);
        if e["event"] == "open" && e["pid"] == client_pid && e["remote_port"] == server.port {
            named.insert(json::port(&e["local_port"]));
        }
    }
    assert!(
        named.len() >= 190,
        "{} of 200 connections named",
        named.len()
    );
}

/// A listener that never accepts, with room for one connection, and a
/// client whose second connect therefore waits in SYN_SENT (its SYNs are
/// dropped), as to a host behind a firewall; three, as a client that
/// retries makes them. Prints the client's PID and the waiting sockets'
/// ports, then holds them.
const STUCK_PY: &str = r#"
import socket, sys, os, time
port = int(sys.argv[1])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(0)
first = socket.create_connection(("127.0.0.1", port))
time.sleep(0.2)
stuck = []
for _ in range(3):
    s = socket.socket(); s.setblocking(False)
    s.connect_ex(("127.0.0.1", port)); stuck.append(s)
    time.sleep(0.7)
print(os.getpid(), *[s.getsockname()[1] for s in stuck], flush=True)
time.sleep(8)
"#;

/// A connect that never completes is told while it waits, with its
/// process and port, not when it gives up (minutes later), and the
/// events stay in the order of their times.
#[test]
#[ignore = "needs root"]
fn a_connect_that_waits_for_an_answer_is_told_while_it_waits() {
    require_root();
    let _turn = kernel_turn();
    let port = common::quiet_ports(2);
    let closed = port + 1; // nothing listens: each connect there is refused
    let range = format!("{port}-{closed}");
    let mut trace = Trace::start(&["--port", &range]);
    wait_until_tracing(&trace, closed);
    let (mut client, said) =
        started_saying(Command::new(client_program()).args(["-c", STUCK_PY, &port.to_string()]));
    let (pid, stuck_ports) = (said[0], &said[1..]);
    let told = Instant::now();
    let events = trace.read_until(Duration::from_secs(3), |e| {
        stuck_ports
            .iter()
            .all(|p| e.iter().any(|e| e["local_port"] == *p))
    });
    assert!(told.elapsed() < Duration::from_secs(3));
    for stuck_port in stuck_ports {
        let connect = events
            .iter()
            .find(|e| e["local_port"] == *stuck_port)
            .unwrap_or_else(|| panic!("connect from {stuck_port} not told in time: {events:?}"));
        assert_eq!(connect["event"], "connect", "{connect}");
        assert_eq!(connect["remote_port"], port, "{connect}");
        assert_eq!(connect["pid"], pid, "{connect}");
        assert_eq!(connect["process"], CLIENT, "{connect}");
        assert_eq!(connect["state"], "SYN_SENT", "{connect}");
    }
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "connect" && e["local_port"] == 0),
        "a port left unknown: {events:?}"
    );
    // Still waiting: the client holds them for seconds more.
    assert!(client.0.try_wait().unwrap().is_none());
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "events out of order: {events:?}");
    let (code, _) = trace.interrupt();
    assert_eq!(code, Some(0));
}

/// In a network namespace of its own: listens on two ports, prints its
/// PID, then connects to each and accepts, and holds the connections.
const NETNS_PY: &str = r#"
import socket, sys, os, time
ports = [int(p) for p in sys.argv[1:]]
ls = []
for p in ports:
    l = socket.socket(); l.bind(("127.0.0.1", p)); l.listen(); ls.append(l)
print(os.getpid(), flush=True)
sys.stdin.readline()
held = []
for l, p in zip(ls, ports):
    c = socket.create_connection(("127.0.0.1", p)); a, _ = l.accept(); held += [c, a]
print(*[c.getsockname()[1] for c in held[::2]], flush=True)
time.sleep(30)
"#;

/// The kernel's record names no network namespace. An accept in another
/// namespace on a port this one listens on too is not blamed on this
/// one's listener; on a port only that namespace listens on, it goes to
/// that listener's owner.
#[test]
#[ignore = "needs root and unshare"]
fn an_accept_in_another_network_namespace_is_not_blamed_on_a_listener_here() {
    require_root();
    common::require_program("unshare", "--version", "apt-get install util-linux");
    common::require_program("ip", "-V", "apt-get install iproute2");
    let _turn = kernel_turn();
    let both = common::quiet_ports(2);
    let only_there = both + 1;
    // Here: a listener on `both` that takes no connection at all.
    let here = std::net::TcpListener::bind(("127.0.0.1", both)).unwrap();
    let range = format!("{both}-{only_there}");
    let mut trace = Trace::start(&["--port", &range]);
    wait_until_tracing(&trace, both);
    let (there, line, clients) = told_to_go(
        Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" -c \"$1\" \"$2\" \"$3\"",
            ])
            .arg(client_program())
            .args([NETNS_PY, &both.to_string(), &only_there.to_string()]),
    );
    let _there = Kid(there);
    let there_pid: u64 = line.trim().parse().expect("the namespace's server started");
    // The namespace's clients' ports: its accepts are those from them.
    let clients: Vec<u16> = clients
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let theirs =
        |e: &Value| e["event"] == "accept" && clients.iter().any(|c| e["remote_port"] == *c);
    let events = trace.read_until(Duration::from_secs(5), |e| {
        e.iter().filter(|e| theirs(e)).count() >= 2
    });
    let accept_on = |port: u16| {
        events
            .iter()
            .find(|e| theirs(e) && e["local_port"] == port)
            .unwrap_or_else(|| panic!("no accept on {port} from {clients:?}: {events:?}"))
    };
    let on_both = accept_on(both);
    assert!(
        on_both["pid"].is_null(),
        "blamed on a listener of this namespace: {on_both}"
    );
    assert_eq!(accept_on(only_there)["pid"], there_pid, "{events:?}");
    // A connection here, to the address both listen on: this namespace's
    // table has it, so it is this listener's.
    let mine = std::net::TcpStream::connect(("127.0.0.1", both)).unwrap();
    let from = mine.local_addr().unwrap().port();
    let accept = trace.accept_from(from);
    assert_eq!(accept["pid"], std::process::id(), "{accept}");
    drop(mine);
    drop(here);
    let (code, _) = trace.interrupt();
    assert_eq!(code, Some(0));
}

/// 1,000 times: a new listener, a connection to it, its accept, all
/// closed. Prints the PID first and "done" at the end.
const CHURN_PY: &str = r#"
import socket, os, sys
print(os.getpid(), flush=True)
sys.stdin.readline()
for _ in range(1000):
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
    c = socket.create_connection(l.getsockname()); a, _ = l.accept()
    a.close(); c.close(); l.close()
print("done", flush=True)
"#;

/// Listeners that come and go as fast as connections: each accept still
/// goes to its listener's owner (listen(2) says who, no table read per
/// accept), and a trace whose end comes while it is behind prints all it
/// was given before it exits.
#[test]
#[ignore = "needs root"]
fn listeners_that_come_and_go_keep_their_accepts_and_the_end_waits_for_the_backlog() {
    require_root();
    let _turn = kernel_turn();
    let probe = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let mut trace = Trace::start(&["--duration", "6"]);
    wait_until_tracing(&trace, probe.port);
    let pid = run_client(CHURN_PY, &[]);
    let code = common::wait_timeout(&mut trace.child, Duration::from_secs(30));
    assert_eq!(code, Some(0));
    let events = trace_lines_left(&trace);
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["pid"] == pid)
            .count()
    };
    assert_eq!(count("connect"), 1000, "connects");
    assert!(
        count("accept") >= 999,
        "{} accepts of 1000 with their owner",
        count("accept")
    );
}

/// Takes the listener handed over on descriptor 3, says its port, and
/// accepts one connection.
const HANDED_OVER_PY: &str = r#"
import os, socket, time
s = socket.socket(fileno=3)
print(os.getpid(), s.getsockname()[1], flush=True)
c, _ = s.accept()
time.sleep(5)
"#;

/// A listener made by one program that then becomes another (`free
/// --exec` listens, then execs the server): its accepts name the server,
/// as it is called now, not the program that called listen(2).
#[test]
#[ignore = "needs root"]
fn an_accept_names_the_listeners_owner_as_it_is_called_now() {
    require_root();
    let _turn = kernel_turn();
    let probe = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let mut trace = Trace::start(&[]);
    wait_until_tracing(&trace, probe.port);
    let (_server, said) = started_saying(
        portctl()
            .args(["free", "--exec", "--"])
            .arg(client_program())
            .args(["-c", HANDED_OVER_PY]),
    );
    let (pid, port) = (said[0], said[1]);
    let client = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    let from = client.local_addr().unwrap().port();
    let accept = trace.accept_from(from);
    assert_eq!(accept["pid"], pid, "{accept}");
    assert_eq!(accept["process"], CLIENT, "{accept}");
    drop(client);
    let (code, _) = trace.interrupt();
    assert_eq!(code, Some(0));
}

/// Two ways the process that called listen(2) is not the one whose
/// accept it is: `fork` hands the listener to a child and the parent
/// closes its copy (and lives on); and an IPv6-only listener opened
/// during the trace next to an IPv4 one that was there before it. Prints
/// its PID and the IPv4 port, then (told to go on) the child's PID and
/// its port; the child accepts, the others are left in the backlog.
const HANDED_ON_PY: &str = r#"
import os, socket, sys, time
older = socket.socket(); older.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
older.bind(("0.0.0.0", 0)); older.listen()
port = older.getsockname()[1]
print(os.getpid(), port, flush=True)
sys.stdin.readline()   # the trace runs now
v6 = socket.socket(socket.AF_INET6)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
v6.bind(("::", port)); v6.listen()
forked = socket.socket(); forked.bind(("127.0.0.1", 0)); forked.listen()
fport = forked.getsockname()[1]
child = os.fork()
if child == 0:
    older.close(); v6.close()
    c, _ = forked.accept(); time.sleep(10); os._exit(0)
forked.close()
print(child, fport, flush=True)
time.sleep(10)
"#;

#[test]
#[ignore = "needs root"]
fn an_accept_is_the_holders_not_the_callers_of_listen() {
    require_root();
    let _turn = kernel_turn();
    let mut holder = Command::new(client_program())
        .args(["-c", HANDED_ON_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let said: Vec<u64> = numbers(&line);
    let (parent, port) = (said[0], said[1] as u16);
    let probe = Server::start(&["echo", "--port", "0", "--quiet"], 1);
    let mut trace = Trace::start(&[]);
    wait_until_tracing(&trace, probe.port);
    std::io::Write::write_all(holder.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let said: Vec<u64> = numbers(&line);
    let (child, forked_port) = (said[0], said[1] as u16);
    let _holder = Kid(holder);
    let to_older = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let to_child = std::net::TcpStream::connect(("127.0.0.1", forked_port)).unwrap();
    let from = |s: &std::net::TcpStream| s.local_addr().unwrap().port();
    let (a, b) = (from(&to_older), from(&to_child));
    let events = trace.read_until(Duration::from_secs(5), |e| {
        [a, b].iter().all(|p| {
            e.iter()
                .any(|e| e["event"] == "accept" && e["remote_port"] == *p)
        })
    });
    let accept_from = |p: u16| {
        events
            .iter()
            .find(|e| e["event"] == "accept" && e["remote_port"] == p)
            .unwrap_or_else(|| panic!("no accept from {p}: {events:?}"))
            .clone()
    };
    assert_eq!(
        accept_from(a)["pid"],
        parent,
        "the IPv4 listener's, not the IPv6-only one's"
    );
    assert_eq!(accept_from(b)["pid"], child, "the child's, which holds it");
    let (code, _) = trace.interrupt();
    assert_eq!(code, Some(0));
}
