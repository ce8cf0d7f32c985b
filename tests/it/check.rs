//! `portctl check` and `portctl free` against real listeners on loopback
//! and the wildcard addresses.
// Unix only: its holders are python3 processes and its nobody case runs through setpriv; held.rs is the portable part.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, assert_usage_error, check_json, check_records, json, quiet_port, quiet_ports, run,
    run_as_nobody, stderr, stdout, SocketHolder,
};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[test]
fn a_free_port_is_free_on_tcp_and_udp() {
    let port = quiet_port();
    let (code, records) = check_json(&[&port.to_string()]);
    assert_eq!(code, 0, "{records:?}");
    assert_eq!(records.len(), 2);
    assert!(
        records.iter().all(|r| r["free"] == true
            && r["status"] == "free"
            && r["holders"].as_array().is_some_and(Vec::is_empty)
            && r.get("reason").is_none()),
        "{records:?}"
    );
    assert_eq!(
        records.iter().map(|r| &r["proto"]).collect::<Vec<_>>(),
        ["tcp", "udp"]
    );
    let out = run(&["check", &port.to_string(), "--tcp"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        [port.to_string().as_str(), "tcp", "free", "-"]
    );
}

#[test]
fn held_ports_name_their_holder_on_every_kind_of_address() {
    for host in ["0.0.0.0", "127.0.0.1", "::", "::1"] {
        // A quiet number: one the OS hands out to a v6 socket may be held
        // on IPv4 by a test beside this one, and then there are two.
        let holder = SocketHolder::start(&[("tcp", host, quiet_port())], false);
        let port = holder.ports[0];
        let (code, records) = check_json(&[&port.to_string(), "--tcp"]);
        assert_eq!(code, 1, "{host}: {records:?}");
        let r = &records[0];
        assert!(r["free"] == false && r["status"] == "in-use", "{host}: {r}");
        let holders = r["holders"].as_array().unwrap();
        assert_eq!(holders.len(), 1, "{host}: {records:?}");
        let h = &holders[0];
        assert_eq!(json::pid(&h["pid"]), Some(holder.pid()), "{h}");
        assert_eq!(h["process"], "python3", "{h}");
        assert_eq!(
            json::ip(&h["local_addr"]),
            host.parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(json::port(&h["local_port"]), port);
        assert_eq!(h["state"], "LISTEN", "{h}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains("python3") && reason.contains(&holder.pid().to_string()),
            "{reason}"
        );
        // The text line says it plainly too.
        let out = run(&["check", &port.to_string(), "--tcp"]);
        assert_exit(&out, 1);
        assert!(
            stdout(&out).contains("in-use") && stdout(&out).contains("python3"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn host_narrows_to_one_address() {
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let port = holder.ports[0].to_string();
    assert_eq!(check_json(&[&port, "--tcp", "--host", "127.0.0.1"]).0, 1);
    // 127.0.0.2 is another loopback address: a server could bind it.
    assert_eq!(check_json(&[&port, "--tcp", "--host", "127.0.0.2"]).0, 0);
    let (code, records) = check_json(&[&port, "--tcp", "--host", "192.0.2.1"]);
    assert_eq!(code, 1);
    assert_eq!(records[0]["status"], "unbindable", "{records:?}");
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not an address of this machine"),
        "{records:?}"
    );
}

#[test]
fn udp_holders() {
    // A quiet number: a UDP port from the OS may match a TCP TIME_WAIT
    // left by another test's client, and TCP must be free here.
    let holder = SocketHolder::start(&[("udp", "127.0.0.1", quiet_port())], false);
    let port = holder.ports[0];
    let (code, records) = check_json(&[&port.to_string(), "--udp"]);
    assert_eq!(code, 1);
    assert_eq!(records[0]["proto"], "udp", "{records:?}");
    let h = &records[0]["holders"][0];
    assert_eq!(json::pid(&h["pid"]), Some(holder.pid()), "{h}");
    assert!(h["state"].is_null(), "UDP has no state: {h}");
    // TCP on the same number is still free.
    assert_eq!(check_json(&[&port.to_string(), "--tcp"]).0, 0);
}

#[test]
fn time_wait_alone_does_not_hold_a_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    // The server closes first, so its end (local port = `port`) waits.
    drop(server);
    let mut buf = [0u8; 1];
    let _ = client.read(&mut buf);
    drop(client);
    drop(listener);
    let out = run(&[
        "list",
        "--json",
        "--state",
        "time-wait",
        "--port",
        &port.to_string(),
    ]);
    let waiting = json::array(&out);
    waiting.iter().for_each(json::socket_record);
    assert!(
        waiting.iter().any(|r| r["local_port"] == port),
        "no TIME_WAIT on {port}: {waiting:?}"
    );
    let (code, records) = check_json(&[&port.to_string(), "--tcp"]);
    assert_eq!(code, 0, "{records:?}");
}

#[test]
fn ranges_give_one_line_per_port_and_transport() {
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let port = holder.ports[0];
    let range = format!("{}-{}", port - 1, port + 1);
    let (code, records) = check_json(&[&range, "--tcp"]);
    assert_eq!(code, 1);
    assert_eq!(
        records
            .iter()
            .map(|r| json::port(&r["port"]))
            .collect::<Vec<_>>(),
        [port - 1, port, port + 1]
    );
    assert!(
        records
            .iter()
            .find(|r| r["port"] == port)
            .is_some_and(|r| r["free"] == false),
        "{records:?}"
    );
}

#[test]
fn wait_returns_when_the_holder_goes() {
    let holder = SocketHolder::start(&[("tcp", "0.0.0.0", 0)], false);
    let port = holder.ports[0].to_string();
    let started = Instant::now();
    let mut waiter = common::portctl()
        .args(["check", "--tcp", "--wait", "--timeout", "20", &port])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The holder goes only once the waiter has seen it and said so.
    let mut said = std::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut said, &mut first).unwrap();
    assert!(first.starts_with("waiting"), "{first}");
    drop(holder);
    let out = waiter.wait_with_output().unwrap();
    let mut rest = String::new();
    said.read_to_string(&mut rest).unwrap();
    assert_eq!(out.status.code(), Some(0), "{first}{rest}");
    assert!(started.elapsed() < Duration::from_secs(15));

    let holder = SocketHolder::start(&[("tcp", "0.0.0.0", 0)], false);
    let started = Instant::now();
    let out = run(&[
        "check",
        "--tcp",
        "--wait",
        "--timeout",
        "0.5",
        &holder.ports[0].to_string(),
    ]);
    assert_exit(&out, 1);
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_input_is_exit_2() {
    for bad in ["70000", "abc", "9000-8000", "80-", "-1", "", "1e3"] {
        assert_usage_error(&run(&["check", bad]), bad);
    }
    assert_usage_error(&run(&["check", "80", "--host", "999.1.1.1"]), "999.1.1.1");
    assert_usage_error(
        &run(&["check", "80", "--wait", "--timeout", "soon"]),
        "soon",
    );
    assert_usage_error(&run(&["free", "--range", "9-1"]), "9-1");
    assert_usage_error(&run(&["free", "-n", "0"]), "0");
}

#[test]
fn free_gives_bindable_distinct_ports() {
    let out = run(&["free"]);
    assert_exit(&out, 0);
    let port: u16 = stdout(&out).trim().parse().unwrap();
    TcpListener::bind(("0.0.0.0", port)).expect("the port free said is free");

    let out = run(&["free", "-n", "5", "--json"]);
    assert_exit(&out, 0);
    let records = json::array(&out);
    records.iter().for_each(json::free_record);
    let mut ports: Vec<u16> = records.iter().map(|r| json::port(&r["port"])).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 5);
    assert!(records.iter().all(|r| r["proto"] == "tcp"), "{records:?}");

    let out = run(&["free", "--udp", "--json"]);
    let records = json::array(&out);
    records.iter().for_each(json::free_record);
    assert_eq!(records[0]["proto"], "udp", "{records:?}");
    std::net::UdpSocket::bind(("0.0.0.0", json::port(&records[0]["port"]))).unwrap();
}

#[test]
fn free_in_a_range_skips_held_ports_and_says_when_it_runs_out() {
    // Three consecutive held ports, found by holding them here.
    // Three consecutive numbers below the ephemeral range, held here; a
    // client's connection never takes the middle one once it is let go.
    let base = quiet_ports(3);
    let held: Vec<TcpListener> = (base..base + 3)
        .map(|p| TcpListener::bind(("0.0.0.0", p)).unwrap())
        .collect();
    let range = format!("{base}-{}", base + 2);
    let out = run(&["free", "--range", &range]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: only 0 of the 1"),
        "{}",
        stderr(&out)
    );
    let mut held = held;
    held.remove(1);
    let out = run(&["free", "--range", &range]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), (base + 1).to_string());
    let out = run(&["free", "--range", &range, "-n", "2"]);
    assert_exit(&out, 1);
}

/// Unprivileged, as CI runs it: a port whose owner is hidden is held, never
/// free; a system port is not bindable.
#[test]
#[ignore = "needs root and setpriv"]
fn without_root_hidden_holders_and_system_ports() {
    common::require_root_and_setpriv();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run_as_nobody(&["check", "--json", "--tcp", &port.to_string()]);
    assert_exit(&out, 1);
    let records = check_records(&out);
    assert_eq!(records[0]["free"], false, "{records:?}");
    assert_eq!(records[0]["status"], "in-use", "{records:?}");
    assert_eq!(json::pid(&records[0]["holders"][0]["pid"]), None);
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot see"),
        "{records:?}"
    );

    let system = (1..1024u16)
        .find(|p| TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .unwrap();
    let out = run_as_nobody(&["check", "--json", "--tcp", &system.to_string()]);
    assert_exit(&out, 1);
    let records = check_records(&out);
    assert_eq!(records[0]["status"], "unbindable", "{records:?}");
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("system port"),
        "{records:?}"
    );

    let out = run_as_nobody(&["list"]);
    assert_exit(&out, 0);
}
