//! A held port is never called free, on every OS: the holders are the
//! test's own sockets and a real `portctl serve`, which run the same on
//! Linux and on Windows (under Wine in CI, where Windows binds with
//! SO_EXCLUSIVEADDRUSE and a conflict comes back as WSAEACCES).

use crate::common;

use common::{assert_exit, check_json, run, stdout, Server};
use serde_json::Value;
use std::net::{TcpListener, UdpSocket};

/// The one record of `check --json` for `proto` (`tcp` or `udp`).
#[track_caller]
fn verdict<'a>(records: &'a [Value], proto: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["proto"] == proto)
        .unwrap_or_else(|| panic!("no {proto} record in {records:?}"))
}

/// In use, exit 1, and never worded as a missing privilege or a PID 0.
#[track_caller]
fn assert_held(args: &[&str], proto: &str) {
    let (code, records) = check_json(args);
    let record = verdict(&records, proto);
    assert_eq!(record["status"], "in-use", "{args:?}: {records:?}");
    assert_eq!(code, 1, "{args:?}: {records:?}");
    let text = stdout(&run(&[&["check"], args].concat()));
    for wrong in [
        "root",
        "CAP_NET_BIND_SERVICE",
        "pid 0",
        "free  ",
        "namespace",
        "shows no socket",
    ] {
        assert!(!text.contains(wrong), "{args:?} says {wrong:?}: {text}");
    }
}

#[test]
fn a_port_held_by_another_process_is_in_use() {
    let server = Server::start(&["hello", "--port", "0"], 1);
    let port = server.port.to_string();
    assert_held(&["--tcp", &port], "tcp");
    assert_held(&["--tcp", "--host", "127.0.0.1", &port], "tcp");
}

#[test]
fn a_port_held_by_this_process_is_in_use_on_every_address_it_covers() {
    let specific = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = specific.local_addr().unwrap().port().to_string();
    assert_held(&["--tcp", &port], "tcp");
    assert_held(&["--tcp", "--host", "127.0.0.1", &port], "tcp");

    let wildcard = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = wildcard.local_addr().unwrap().port().to_string();
    assert_held(&["--tcp", "--host", "127.0.0.1", &port], "tcp");
    assert_held(&["--tcp", &port], "tcp");
}

#[test]
fn a_dual_stack_wildcard_holds_ipv4_too() {
    // As Node and Java listen: [::] with IPV6_V6ONLY off. Windows' table
    // does not say so, and the holder must still be found.
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
    socket.set_only_v6(false).unwrap();
    let any: std::net::SocketAddr = "[::]:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    socket.listen(8).unwrap();
    let port = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .port()
        .to_string();
    assert_held(&["--tcp", "--host", "127.0.0.1", &port], "tcp");
    assert_held(&["--tcp", "--host", "0.0.0.0", &port], "tcp");
    assert_held(&["--tcp", &port], "tcp");
}

#[test]
fn a_udp_port_held_is_in_use() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    assert_held(&["--udp", &port], "udp");
}

#[test]
fn a_port_let_go_is_free_again() {
    // A quiet number: one the OS hands out could be another test's by now.
    let port = common::quiet_port();
    drop(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let (code, records) = check_json(&["--tcp", &port.to_string()]);
    assert_eq!(verdict(&records, "tcp")["status"], "free", "{records:?}");
    assert_eq!(code, 0);
}

#[test]
fn free_hands_out_a_port_a_server_can_bind() {
    let out = run(&["free"]);
    assert_exit(&out, 0);
    let port: u16 = stdout(&out).trim().parse().unwrap();
    TcpListener::bind(("127.0.0.1", port)).expect("the port free said was free");
}

#[test]
fn list_shows_the_listener_and_never_pid_0() {
    let server = Server::start(&["hello", "--port", "0"], 1);
    let out = run(&["list", "--json", "--listening", "--tcp"]);
    assert_exit(&out, 0);
    let rows = common::json::array(&out);
    rows.iter().for_each(common::json::socket_record);
    let row = rows
        .iter()
        .find(|r| r["local_port"] == server.port)
        .unwrap_or_else(|| panic!("port {} not listed: {rows:?}", server.port));
    // The server's own PID where the OS names owners; none under Wine,
    // which keeps every socket in its own server process (PID 0).
    assert!(
        row["pid"].is_null() || row["pid"] == server.child.id(),
        "{row}"
    );
    assert!(
        rows.iter().all(|r| r["pid"] != 0),
        "a PID 0 owner: {rows:?}"
    );
}
