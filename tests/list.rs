//! `portctl list` against real sockets on loopback, opened by the test and
//! by child processes.
// Unix only: it cross-checks ss and needs python3 holders and /proc.
#![cfg(unix)]

mod common;

use common::{
    assert_exit, assert_usage_error, needs_root, run, run_as_nobody, stderr, stdout, SocketHolder,
};
use portctl::model::{Family, Proto, TcpState};
use portctl::record::SocketRecord;
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn list(args: &[&str]) -> Vec<SocketRecord> {
    let mut full = vec!["list", "--json"];
    full.extend_from_slice(args);
    let out = run(&full);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)))
}

fn find(records: &[SocketRecord], proto: Proto, port: u16) -> Vec<&SocketRecord> {
    records
        .iter()
        .filter(|r| r.proto == proto && r.local_port == port)
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_listener_of_this_test_shows_with_its_owner() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let records = list(&["--port", &port.to_string()]);
    // Only on 127.0.0.1: a test beside this one may be given the same
    // number on ::1, or a connection from it.
    let found: Vec<_> = find(&records, Proto::Tcp, port)
        .into_iter()
        .filter(|r| r.local_addr == ip("127.0.0.1") && r.state == Some(TcpState::Listen))
        .collect();
    assert_eq!(found.len(), 1, "{records:?}");
    let r = found[0];
    assert_eq!(r.family, Family::Ipv4);
    assert_eq!(r.local_addr, ip("127.0.0.1"));
    assert_eq!(r.remote_addr, ip("0.0.0.0"));
    assert_eq!(r.remote_port, 0);
    assert_eq!(r.state, Some(TcpState::Listen));
    assert_eq!(r.pid, Some(std::process::id()));
    let name = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(
        r.process
            .as_deref()
            .is_some_and(|p| name.trim().starts_with(p) || p.starts_with(name.trim())),
        "{:?} vs {name}",
        r.process
    );
    assert!(r.inode != 0 && r.user.is_some());
}

#[test]
fn a_child_process_on_ipv6_loopback_shows_as_python3() {
    let holder = SocketHolder::start(&[("tcp", "::1", 0), ("udp", "::1", 0)], false);
    let (tcp, udp) = (holder.ports[0], holder.ports[1]);
    let records = list(&["--pid", &holder.pid().to_string()]);
    let t = find(&records, Proto::Tcp, tcp);
    assert_eq!(t.len(), 1, "{records:?}");
    assert_eq!(
        (t[0].family, t[0].local_addr, t[0].state),
        (Family::Ipv6, ip("::1"), Some(TcpState::Listen))
    );
    assert_eq!(t[0].pid, Some(holder.pid()));
    assert_eq!(t[0].process.as_deref(), Some("python3"));
    let u = find(&records, Proto::Udp, udp);
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].state, u[0].remote_addr, u[0].remote_port),
        (None, ip("::"), 0)
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
    let client_side: Vec<_> = find(&records, Proto::Tcp, client_port)
        .into_iter()
        .filter(|r| r.remote_port == server_port)
        .collect();
    assert_eq!(client_side.len(), 1, "{records:?}");
    assert_eq!(client_side[0].state, Some(TcpState::Established));
    assert_eq!(client_side[0].remote_port, server_port);
    let server_side: Vec<_> = find(&records, Proto::Tcp, server_port)
        .into_iter()
        .filter(|r| r.state == Some(TcpState::Established) && r.remote_port == client_port)
        .collect();
    assert_eq!(server_side.len(), 1, "{records:?}");
    assert_eq!(server_side[0].remote_port, client_port);

    let connected: Vec<_> = find(&records, Proto::Udp, udp_port)
        .into_iter()
        .filter(|r| r.family == Family::Ipv4)
        .collect();
    assert_eq!(connected.len(), 1, "{records:?}");
    assert_eq!(connected[0].remote_addr, ip("127.0.0.1"));
    assert_eq!(connected[0].remote_port, peer.local_addr().unwrap().port());
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
    let by = |extra: &[&str]| -> Vec<(Proto, u16)> {
        let mut args = vec!["--pid", pid.as_str()];
        args.extend_from_slice(extra);
        let mut got: Vec<_> = list(&args)
            .iter()
            .map(|r| (r.proto, r.local_port))
            .collect();
        got.sort();
        got
    };
    let sorted = |mut v: Vec<(Proto, u16)>| {
        v.sort();
        v
    };
    assert_eq!(
        by(&["-t"]),
        sorted(vec![(Proto::Tcp, ports[0]), (Proto::Tcp, ports[2])])
    );
    assert_eq!(
        by(&["-u"]),
        sorted(vec![(Proto::Udp, ports[1]), (Proto::Udp, ports[3])])
    );
    assert_eq!(
        by(&["-4"]),
        sorted(vec![(Proto::Tcp, ports[0]), (Proto::Udp, ports[1])])
    );
    assert_eq!(by(&["-6", "-u"]), vec![(Proto::Udp, ports[3])]);
    assert_eq!(by(&["-l"]).len(), 4);
    assert_eq!(
        by(&["--state", "LISTEN"]),
        sorted(vec![(Proto::Tcp, ports[0]), (Proto::Tcp, ports[2])])
    );
    assert_eq!(by(&["--state", "established"]), vec![]);
    assert_eq!(
        by(&["--state", "time-wait", "--state", "listen", "-4"]),
        vec![(Proto::Tcp, ports[0])]
    );
    let p0 = ports[0].to_string();
    assert_eq!(by(&["--port", &p0, "-t"]), vec![(Proto::Tcp, ports[0])]);
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
        records.iter().any(|r| r.pid == Some(holder.pid())),
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
fn agrees_with_ss() {
    if std::process::Command::new("ss").arg("-V").output().is_err() {
        eprintln!("ss is not installed: cross-check skipped");
        return;
    }
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
        .map(|r| (r.proto.as_str().to_string(), r.local_addr, r.local_port))
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
        let out = run(&["list", "--json"]);
        assert_exit(&out, 0);
        let parsed: Result<Vec<SocketRecord>, _> = serde_json::from_slice(&out.stdout);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
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
fn without_root_hidden_owners_are_listed_not_dropped() {
    if !needs_root("the nobody case runs through setpriv") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run_as_nobody(&["list", "--json", "--port", &port.to_string()]);
    assert_exit(&out, 0);
    let records: Vec<SocketRecord> = serde_json::from_slice(&out.stdout).unwrap();
    let mine: Vec<_> = find(&records, Proto::Tcp, port)
        .into_iter()
        .filter(|r| r.local_addr == ip("127.0.0.1") && r.state == Some(TcpState::Listen))
        .collect();
    assert_eq!(mine.len(), 1, "{records:?}");
    assert_eq!(mine[0].pid, None);
    assert_eq!(mine[0].process, None);
    assert_eq!(mine[0].user.as_deref(), Some("root"));
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
    let rows: Vec<portctl::list::SummaryRow> = serde_json::from_slice(&out.stdout).unwrap();
    let get = |proto, state| {
        rows.iter()
            .find(|r| r.proto == proto && r.state == state)
            .map(|r| r.count)
    };
    assert_eq!(get(Proto::Tcp, Some(TcpState::Listen)), Some(2));
    assert_eq!(get(Proto::Udp, None), Some(1));
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
    let next_of_ours = |event: &str| -> portctl::list::WatchEvent {
        for _ in 0..100 {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {event} event on {port} in 20 s"));
            let seen: portctl::list::WatchEvent = serde_json::from_str(&line).unwrap();
            if seen.event.as_str() == event
                && seen.socket.local_port == port
                && seen.socket.state == Some(TcpState::Listen)
            {
                return seen;
            }
        }
        panic!("no {event} event for our listener on {port} among 100 events");
    };
    std::thread::sleep(Duration::from_millis(400));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let opened = next_of_ours("open");
    assert_eq!(opened.socket.local_addr.to_string(), "127.0.0.1");
    drop(listener);
    next_of_ours("close");
    // SIGINT ends it at once, and nothing is left behind.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGINT) };
    assert!(
        common::wait_timeout(&mut watcher, Duration::from_secs(5)).is_none(),
        "ended by SIGINT"
    );
    assert_usage_error(&run(&["list", "--watch", "soon"]), "soon");
}
