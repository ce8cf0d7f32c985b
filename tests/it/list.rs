//! `portctl list` against real sockets on loopback, opened by the test and
//! by child processes.
// Unix only: it cross-checks ss and needs python3 holders and /proc.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, assert_usage_error, json, run, run_as_nobody, stderr, stdout, SocketHolder,
};
use serde_json::Value;
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// `list --json ARGS`: exit 0 and its rows, each of a socket record's shape.
#[track_caller]
fn list(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["list", "--json"];
    full.extend_from_slice(args);
    let out = run(&full);
    assert_exit(&out, 0);
    let records = json::array(&out);
    records.iter().for_each(json::socket_record);
    records
}

/// The rows for local `port` on `proto` (`tcp` or `udp`).
fn find<'a>(records: &'a [Value], proto: &str, port: u16) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["proto"] == proto && r["local_port"] == port)
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A row's `(proto, local port)`, for comparing sets of rows.
fn proto_port(r: &Value) -> (String, u16) {
    (
        r["proto"].as_str().unwrap().to_string(),
        json::port(&r["local_port"]),
    )
}

#[test]
fn a_listener_of_this_test_shows_with_its_owner() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let records = list(&["--port", &port.to_string()]);
    // Only on 127.0.0.1: a test beside this one may be given the same
    // number on ::1, or a connection from it.
    let found: Vec<_> = find(&records, "tcp", port)
        .into_iter()
        .filter(|r| json::ip(&r["local_addr"]) == ip("127.0.0.1") && r["state"] == "LISTEN")
        .collect();
    assert_eq!(found.len(), 1, "{records:?}");
    let r = found[0];
    assert_eq!(r["family"], "ipv4", "{r}");
    assert_eq!(json::ip(&r["local_addr"]), ip("127.0.0.1"));
    assert_eq!(json::ip(&r["remote_addr"]), ip("0.0.0.0"));
    assert_eq!(r["remote_port"], 0, "{r}");
    assert_eq!(r["state"], "LISTEN", "{r}");
    assert_eq!(json::pid(&r["pid"]), Some(std::process::id()), "{r}");
    let name = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(
        r["process"]
            .as_str()
            .is_some_and(|p| name.trim().starts_with(p) || p.starts_with(name.trim())),
        "{} vs {name}",
        r["process"]
    );
    assert!(
        r["inode"].as_u64().is_some_and(|i| i != 0) && r["user"].is_string(),
        "{r}"
    );
}

#[test]
fn a_child_process_on_ipv6_loopback_shows_as_python3() {
    let holder = SocketHolder::start(&[("tcp", "::1", 0), ("udp", "::1", 0)], false);
    let (tcp, udp) = (holder.ports[0], holder.ports[1]);
    let records = list(&["--pid", &holder.pid().to_string()]);
    let t = find(&records, "tcp", tcp);
    assert_eq!(t.len(), 1, "{records:?}");
    assert_eq!(
        (
            &t[0]["family"],
            json::ip(&t[0]["local_addr"]),
            &t[0]["state"]
        ),
        (&Value::from("ipv6"), ip("::1"), &Value::from("LISTEN"))
    );
    assert_eq!(json::pid(&t[0]["pid"]), Some(holder.pid()));
    assert_eq!(t[0]["process"], "python3", "{}", t[0]);
    let u = find(&records, "udp", udp);
    assert_eq!(u.len(), 1);
    assert_eq!(
        (
            &u[0]["state"],
            json::ip(&u[0]["remote_addr"]),
            json::port(&u[0]["remote_port"])
        ),
        (&Value::Null, ip("::"), 0)
    );
    assert_eq!(
        records.len(),
        2,
        "--pid keeps only the child's sockets: {records:?}"
    );
}

#[test]
fn established_pairs_and_connected_udp_keep_their_peers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(peer.local_addr().unwrap()).unwrap();
    let udp_port = udp.local_addr().unwrap().port();

    let records = list(&["--pid", &std::process::id().to_string()]);
    // Other tests in this process connect too, and a client's port is
    // shared between connections to different peers: ours is the one to
    // our server.
    let client_side: Vec<_> = find(&records, "tcp", client_port)
        .into_iter()
        .filter(|r| r["remote_port"] == server_port)
        .collect();
    assert_eq!(client_side.len(), 1, "{records:?}");
    assert_eq!(client_side[0]["state"], "ESTABLISHED", "{}", client_side[0]);
    assert_eq!(json::port(&client_side[0]["remote_port"]), server_port);
    let server_side: Vec<_> = find(&records, "tcp", server_port)
        .into_iter()
        .filter(|r| r["state"] == "ESTABLISHED" && r["remote_port"] == client_port)
        .collect();
    assert_eq!(server_side.len(), 1, "{records:?}");
    assert_eq!(json::port(&server_side[0]["remote_port"]), client_port);

    let connected: Vec<_> = find(&records, "udp", udp_port)
        .into_iter()
        .filter(|r| r["family"] == "ipv4")
        .collect();
    assert_eq!(connected.len(), 1, "{records:?}");
    assert_eq!(json::ip(&connected[0]["remote_addr"]), ip("127.0.0.1"));
    assert_eq!(
        json::port(&connected[0]["remote_port"]),
        peer.local_addr().unwrap().port()
    );
}

#[test]
fn every_filter_and_their_combinations() {
    let holder = SocketHolder::start(
        &[
            ("tcp", "127.0.0.1", 0),
            ("udp", "127.0.0.1", 0),
            ("tcp", "::1", 0),
            ("udp", "::1", 0),
        ],
        false,
    );
    let pid = holder.pid().to_string();
    let ports = &holder.ports;
    let by = |extra: &[&str]| -> Vec<(String, u16)> {
        let mut args = vec!["--pid", pid.as_str()];
        args.extend_from_slice(extra);
        let mut got: Vec<_> = list(&args).iter().map(proto_port).collect();
        got.sort();
        got
    };
    let sorted = |v: Vec<(&str, u16)>| {
        let mut v: Vec<(String, u16)> = v.into_iter().map(|(p, n)| (p.to_string(), n)).collect();
        v.sort();
        v
    };
    assert_eq!(
        by(&["-t"]),
        sorted(vec![("tcp", ports[0]), ("tcp", ports[2])])
    );
    assert_eq!(
        by(&["-u"]),
        sorted(vec![("udp", ports[1]), ("udp", ports[3])])
    );
    assert_eq!(
        by(&["-4"]),
        sorted(vec![("tcp", ports[0]), ("udp", ports[1])])
    );
    assert_eq!(by(&["-6", "-u"]), sorted(vec![("udp", ports[3])]));
    assert_eq!(by(&["-l"]).len(), 4);
    assert_eq!(
        by(&["--state", "LISTEN"]),
        sorted(vec![("tcp", ports[0]), ("tcp", ports[2])])
    );
    assert_eq!(by(&["--state", "established"]), vec![]);
    assert_eq!(
        by(&["--state", "time-wait", "--state", "listen", "-4"]),
        sorted(vec![("tcp", ports[0])])
    );
    let p0 = ports[0].to_string();
    assert_eq!(by(&["--port", &p0, "-t"]), sorted(vec![("tcp", ports[0])]));
    let lo = ports.iter().min().unwrap();
    let hi = ports.iter().max().unwrap();
    assert_eq!(by(&["--port", &format!("{lo}-{hi}")]).len(), 4);
    assert_eq!(
        by(&["--process", "PYTHON"]).len(),
        4,
        "case-insensitive substring"
    );
    assert_eq!(by(&["--process", "no-such-process-name"]), vec![]);
    // --process alone (without --pid) finds the child too.
    let records = list(&[
        "--process",
        "python",
        "-t",
        "-6",
        "--port",
        &ports[2].to_string(),
    ]);
    assert!(
        records
            .iter()
            .any(|r| json::pid(&r["pid"]) == Some(holder.pid())),
        "{records:?}"
    );
}

#[test]
fn piped_output_is_plain_columns() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run(&["list", "--port", &port.to_string()]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        !text.contains('│') && !text.contains('─') && !text.contains('\x1b'),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))
        .expect(&text);
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], "tcp");
    assert_eq!(cols[1], format!("127.0.0.1:{port}"));
    assert_eq!(cols[2], "0.0.0.0:*");
    assert_eq!(cols[3], "LISTEN");
    // Another test may be starting a process right now: until it execs, the
    // child shares this listener too, shown as PID+1 (lowest PID first).
    let owner = cols[6].split('+').next().unwrap();
    assert_eq!(owner, std::process::id().to_string(), "{line}");
}

/// The same sockets as `ss -tunapH` reports for one process.
#[test]
#[ignore = "needs ss"]
fn agrees_with_ss() {
    common::require_program("ss", "-V", "apt-get install iproute2");
    let holder = SocketHolder::start(
        &[
            ("tcp", "127.0.0.1", 0),
            ("udp", "127.0.0.1", 0),
            ("tcp", "::1", 0),
            ("tcp", "::", 0),
            ("udp", "0.0.0.0", 0),
        ],
        false,
    );
    let ss = std::process::Command::new("ss")
        .arg("-tunapH")
        .output()
        .unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    let marker = format!("pid={},", holder.pid());
    // ss writes a dual-stack wildcard as `*` and brackets IPv6.
    let parse_ss = |field: &str| -> (IpAddr, u16) {
        let (host, port) = field.rsplit_once(':').unwrap();
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            "*" => "::",
            h => h,
        };
        (ip(host), port.parse().unwrap())
    };
    let mut from_ss: Vec<(String, IpAddr, u16)> = ss
        .lines()
        .filter(|l| l.contains(&marker))
        .map(|l| {
            // Netid State Recv-Q Send-Q Local Peer Process
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = parse_ss(f[4]);
            (f[0].to_string(), addr, port)
        })
        .collect();
    from_ss.sort();
    let mut ours: Vec<(String, IpAddr, u16)> = list(&["--pid", &holder.pid().to_string()])
        .iter()
        .map(|r| {
            let (proto, port) = proto_port(r);
            (proto, json::ip(&r["local_addr"]), port)
        })
        .collect();
    ours.sort();
    assert_eq!(from_ss.len(), 5, "ss said:\n{ss}");
    assert_eq!(ours, from_ss, "ss said:\n{ss}");
}

/// Sockets opening and closing thousands of times a second never make
/// `list` fail or print broken output.
#[test]
fn churn_never_breaks_list() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && Instant::now() < deadline
                    && n < 200_000
                {
                    let l = TcpListener::bind("127.0.0.1:0").unwrap();
                    let c = TcpStream::connect(l.local_addr().unwrap()).ok();
                    drop((l, c));
                    let _ = UdpSocket::bind("127.0.0.1:0");
                    n += 1;
                }
            })
        })
        .collect();
    for _ in 0..15 {
        // Whole JSON, every row of a socket record's shape.
        list(&[]);
        let plain = run(&["list"]);
        assert_exit(&plain, 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in churners {
        c.join().unwrap();
    }
}

#[test]
fn bad_filters_are_usage_errors() {
    assert_usage_error(&run(&["list", "--port", "70000"]), "70000");
    assert_usage_error(&run(&["list", "--port", "9000-8000"]), "9000-8000");
    assert_usage_error(&run(&["list", "--port", "-1"]), "-1");
    assert_usage_error(&run(&["list", "--state", "sleepy"]), "sleepy");
    assert_usage_error(&run(&["list", "--pid", "abc"]), "abc");
}

/// Without root, other users' sockets are listed with no PID and one hint.
#[test]
#[ignore = "needs root and setpriv"]
fn without_root_hidden_owners_are_listed_not_dropped() {
    common::require_root_and_setpriv();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run_as_nobody(&["list", "--json", "--port", &port.to_string()]);
    assert_exit(&out, 0);
    let records = json::array(&out);
    records.iter().for_each(json::socket_record);
    let mine: Vec<_> = find(&records, "tcp", port)
        .into_iter()
        .filter(|r| json::ip(&r["local_addr"]) == ip("127.0.0.1") && r["state"] == "LISTEN")
        .collect();
    assert_eq!(mine.len(), 1, "{records:?}");
    assert!(mine[0]["pid"].is_null(), "{}", mine[0]);
    assert!(mine[0]["process"].is_null(), "{}", mine[0]);
    assert_eq!(mine[0]["user"], "root", "{}", mine[0]);
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("hint:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("sudo"), "{err}");
}

#[test]
fn summary_counts_by_transport_and_state() {
    let holder = SocketHolder::start(
        &[
            ("tcp", "127.0.0.1", 0),
            ("tcp", "::1", 0),
            ("udp", "127.0.0.1", 0),
        ],
        false,
    );
    let out = run(&[
        "list",
        "--summary",
        "--json",
        "--pid",
        &holder.pid().to_string(),
    ]);
    assert_exit(&out, 0);
    let rows = json::array(&out);
    rows.iter().for_each(json::summary_row);
    let get = |proto: &str, state: Value| {
        rows.iter()
            .find(|r| r["proto"] == proto && r["state"] == state)
            .map(|r| r["count"].as_u64().unwrap())
    };
    assert_eq!(get("tcp", Value::from("LISTEN")), Some(2), "{rows:?}");
    assert_eq!(get("udp", Value::Null), Some(1), "{rows:?}");
    let text = stdout(&run(&["list", "-s", "--pid", &holder.pid().to_string()]));
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["all", "-", "3"]),
        "{text}"
    );
}

#[test]
fn watch_reports_sockets_opening_and_closing() {
    let port = common::quiet_port();
    // Only this process's sockets, and of those only our listener counts:
    // other tests here connect too, and may share the number.
    let mut watcher = common::portctl()
        .args([
            "list",
            "--watch",
            "0.2",
            "--json",
            "--port",
            &port.to_string(),
            "--pid",
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread of its own, so a missing event fails, not hangs.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let out = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The next `event` for our socket of `proto` (`tcp` means our listener).
    let next_of_ours = |event: &str, proto: &str| -> Value {
        for _ in 0..100 {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {event} event on {port}/{proto} in 20 s"));
            let seen = json::line(&line);
            json::watch_event(&seen);
            if seen["event"] == event
                && seen["proto"] == proto
                && seen["local_port"] == port
                && (proto == "udp" || seen["state"] == "LISTEN")
            {
                return seen;
            }
        }
        panic!("no {event} event for our {proto} socket on {port} among 100 events");
    };
    // Ready: the watcher has scanned once it reports a UDP socket of ours
    // on the port, so the listener, bound after, is new to a later scan.
    let marker = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    next_of_ours("open", "udp");
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let opened = next_of_ours("open", "tcp");
    assert_eq!(opened["local_addr"], "127.0.0.1", "{opened}");
    drop(listener);
    next_of_ours("close", "tcp");
    drop(marker);
    // SIGINT ends it at once, and nothing is left behind.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGINT) };
    assert!(
        common::wait_timeout(&mut watcher, Duration::from_secs(5)).is_none(),
        "ended by SIGINT"
    );
    assert_usage_error(&run(&["list", "--watch", "soon"]), "soon");
}

/// An argument that is not UTF-8 (a name copied from a raw byte dump) is
/// named in the one-line error, its bytes escaped, wherever it stands.
#[cfg(unix)]
#[test]
fn an_argument_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"web\xff\xfe");
    for args in [
        vec!["list".as_ref(), "--process".as_ref(), bad],
        vec!["whatis".as_ref(), bad],
    ] {
        let out = common::portctl().args(args).output().unwrap();
        assert_usage_error(&out, r"web\xFF\xFE");
    }
    // Every such argument is named (a path may be bytes), quotes kept.
    let quoted = std::ffi::OsStr::from_bytes(b"a\"x\xff");
    let out = common::portctl()
        .args(["whatis".as_ref(), bad, quoted])
        .output()
        .unwrap();
    assert_usage_error(&out, r#"'web\xFF\xFE' 'a\"x\xFF'"#);
}
