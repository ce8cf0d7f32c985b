//! Traffic without capture, against real transfers on loopback: a sender
//! pushes exactly 20 MB to a receiver that reads it all, both keeping the
//! connection open; `list --info`, `who` and `metrics` read the same
//! counters from the kernel (as root and as `nobody`); `top` shows a
//! steady sender's rate and, with `p`, its process.
#![cfg(unix)]

use crate::common;

use common::json;
use common::{assert_exit, python, require_root_and_setpriv, run, run_as_nobody, stdout, Kid};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

/// Bytes the sender pushes.
const SENT: u64 = 20_000_000;

/// A receiver that reads everything, and a sender (another process)
/// that sends exactly `SENT` bytes; both keep the connection open.
/// Returns them, the receiver's port and the sender's local port.
fn transfer() -> (Kid, Kid, u16, u16) {
    // The receiver writes how much it read to a file once it has it all.
    let receiver = r#"
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); got = 0
while got < int(sys.argv[1]):
    got += len(c.recv(1 << 20))
open(sys.argv[2], "w").write(str(got))
time.sleep(120)
"#;
    let sender = r#"
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"x" * int(sys.argv[2]))
print(c.getsockname()[1], flush=True)
time.sleep(120)
"#;
    let done = std::env::temp_dir().join(format!(
        "portctl-transfer-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&done);
    let (receiving, port) = python(receiver, &[SENT.to_string(), done.display().to_string()]);
    let receiving = Kid(receiving);
    let port: u16 = port.trim().parse().unwrap();
    let (sending, local) = python(sender, &[port.to_string(), SENT.to_string()]);
    let local: u16 = local.trim().parse().unwrap();
    common::eventually(
        Duration::from_secs(30),
        "the receiver to read it all",
        || std::fs::read_to_string(&done).is_ok_and(|n| n == SENT.to_string()),
    );
    let _ = std::fs::remove_file(&done);
    (receiving, Kid(sending), port, local)
}

#[track_caller]
fn within_1_percent(v: &Value, what: &str) {
    let n = v
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(
        n.abs_diff(SENT) <= SENT / 100,
        "{what}: {n} bytes, not within 1% of {SENT}"
    );
}

/// The sender's `bytes_sent` within 1% of what it sent, once what it
/// sent again is taken off: the kernel counts retransmitted bytes too, and
/// even loopback drops segments when the receiver falls behind (a loaded
/// machine). Each retransmission is at most one segment (64 KiB here).
#[track_caller]
fn sent_within_1_percent(sending: &Value) {
    let sent = sending["bytes_sent"].as_u64().expect("bytes_sent");
    let again = sending["retransmits"].as_u64().expect("retransmits") * 65_536;
    assert!(
        sent + SENT / 100 >= SENT && sent <= SENT + SENT / 100 + again,
        "the sender's bytes_sent: {sent} bytes, not within 1% of {SENT} (after {again} bytes of retransmissions)"
    );
}

/// The two sockets of the transfer in `list --info --json`: the
/// receiver's accepted one (local `port`), the sender's (local `local`).
fn both_ends(rows: &[Value], port: u16, local: u16) -> (Value, Value) {
    let find = |l: u16, r: u16| {
        rows.iter()
            .find(|s| s["local_port"] == l && s["remote_port"] == r)
            .cloned()
            .unwrap_or_else(|| panic!("no socket {l} → {r} in {rows:?}"))
    };
    (find(port, local), find(local, port))
}

/// `list -t --info --json --port PORT` through `run` (as root, or as
/// nobody): its rows.
fn info_rows(run: fn(&[&str]) -> Output, port: u16) -> Vec<Value> {
    let port = port.to_string();
    let out = run(&["list", "-t", "--info", "--json", "--port", &port]);
    assert_exit(&out, 0);
    json::array(&out)
}

#[test]
fn list_info_counts_a_20_mb_transfer_at_both_ends() {
    let (_receiver, _sender, port, local) = transfer();
    let rows = info_rows(run, port);
    for r in &rows {
        json::socket_record(r);
        json::info_fields(r);
    }
    let (receiving, sending) = both_ends(&rows, port, local);
    within_1_percent(
        &receiving["bytes_received"],
        "the receiver's bytes_received",
    );
    sent_within_1_percent(&sending);
    assert!(receiving["bytes_sent"].as_u64().unwrap() < SENT / 100);
    assert!(sending["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(sending["retransmits"].as_u64().is_some());
    // The listener has no counters; UDP none either.
    let listener = rows.iter().find(|s| s["state"] == "LISTEN").unwrap();
    assert!(listener["bytes_sent"].is_null() && listener["rtt_ms"].is_null());
    let udp = json::array(&run(&["list", "-u", "--info", "--json"]));
    assert!(udp.iter().all(|s| s["bytes_sent"].is_null()), "{udp:?}");
    // Without --info, no such fields.
    let plain = json::array(&run(&["list", "-t", "--json", "--port", &port.to_string()]));
    assert!(plain.iter().all(|s| s.get("bytes_sent").is_none()));
    // The text table's columns.
    let text = stdout(&run(&["list", "-t", "--info", "--port", &port.to_string()]));
    assert!(text.contains("19.1MiB"), "{text}");
}

#[test]
#[ignore = "needs root and setpriv"]
fn nobody_reads_the_counters_of_roots_connections_too() {
    require_root_and_setpriv();
    let (_receiver, _sender, port, local) = transfer();
    let rows = info_rows(run_as_nobody, port);
    let (receiving, sending) = both_ends(&rows, port, local);
    assert!(
        receiving["pid"].is_null(),
        "nobody cannot see root's process"
    );
    within_1_percent(&receiving["bytes_received"], "bytes_received, as nobody");
    sent_within_1_percent(&sending);
}

#[test]
fn who_and_metrics_show_the_same_bytes() {
    let (_receiver, _sender, port, local) = transfer();
    let who = run(&["who", &port.to_string(), "--json"]);
    assert_exit(&who, 0);
    let story = json::parse(&who);
    json::story(&story);
    let accepted = story["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["remote_port"] == local)
        .unwrap_or_else(|| panic!("{story:#}"));
    within_1_percent(&accepted["bytes_received"], "who's bytes_received");
    let text = stdout(&run(&["who", &port.to_string()]));
    assert!(text.contains("received 19.1MiB"), "{text}");
    let metrics = stdout(&run(&["metrics"]));
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("portctl_tcp_bytes_received{") && l.contains(&format!("port=\"{port}\""))
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    within_1_percent(
        &serde_json::json!(value as u64),
        "portctl_tcp_bytes_received",
    );
    let rtt_count = metrics
        .lines()
        .find(|l| {
            l.starts_with("portctl_tcp_rtt_seconds_count{")
                && l.contains(&format!("port=\"{port}\""))
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(rtt_count.ends_with(" 1"), "{rtt_count}");
}
