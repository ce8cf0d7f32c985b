//! `portctl kill` against child processes holding ports.
// Unix only: its holders are python3 processes that handle SIGTERM.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, assert_usage_error, json, python, run, stderr, stdout, wait_timeout, SocketHolder,
};
use std::net::TcpListener;
use std::time::Duration;

fn alive(holder: &mut SocketHolder) -> bool {
    matches!(holder.child.try_wait(), Ok(None))
}

#[test]
fn stops_the_listener_and_not_its_clients() {
    let mut server = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let port = server.ports[0];
    // A client process connected to the port: it must survive.
    let (mut client, _) = python(
        &format!("import socket,time; s=socket.create_connection(('127.0.0.1',{port})); print('ok', flush=True); time.sleep(60)"),
        &[],
    );
    let out = run(&["kill", &port.to_string(), "--yes"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("sent SIGTERM to python3 (pid {})", server.pid())),
        "{text}"
    );
    assert!(text.contains("the port is free"), "{text}");
    assert!(
        wait_timeout(&mut server.child, Duration::from_secs(5)).is_none(),
        "killed by a signal"
    );
    assert!(
        matches!(client.try_wait(), Ok(None)),
        "the client must not be signalled"
    );
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn sigkill_only_with_force() {
    let mut stubborn =
        SocketHolder::start(&[("tcp", "127.0.0.1", 0), ("udp", "127.0.0.1", 0)], true);
    let port = stubborn.ports[0].to_string();
    let out = run(&["kill", &port, "--yes", "--tcp", "--timeout", "0.5"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("--force sends SIGKILL"),
        "{}",
        stdout(&out)
    );
    assert!(
        alive(&mut stubborn),
        "SIGTERM is ignored and no SIGKILL without --force"
    );
    let out = run(&[
        "kill",
        &port,
        "--yes",
        "--tcp",
        "--timeout",
        "0.5",
        "--force",
        "--json",
    ]);
    assert_exit(&out, 0);
    let report = json::parse(&out);
    json::kill_report(&report);
    assert_eq!(report["free"], true, "{report}");
    let signals: Vec<&str> = report["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal"].as_str().unwrap())
        .collect();
    assert_eq!(signals, ["SIGTERM", "SIGKILL"]);
    assert_eq!(
        json::pid(&report["signals"][1]["pid"]),
        Some(stubborn.pid()),
        "{report}"
    );
}

#[test]
fn without_a_terminal_it_needs_yes() {
    let mut holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let out = run(&["kill", &holder.ports[0].to_string()]);
    assert_usage_error(&out, "--yes");
    assert!(alive(&mut holder));
}

#[test]
fn never_its_parent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run(&["kill", &port.to_string(), "--yes"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("never stops PID 1, itself or its parent"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_free_port_is_exit_0_and_bad_ports_exit_2() {
    let port = common::quiet_port();
    let out = run(&["kill", &port.to_string(), "--yes", "--tcp"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("nothing listens"), "{}", stdout(&out));
    for bad in ["70000", "abc", "-1", ""] {
        assert_usage_error(&run(&["kill", bad, "--yes"]), bad);
    }
    assert_usage_error(&run(&["kill", "80", "--timeout", "x"]), "x");
}
