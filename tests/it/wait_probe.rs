//! `portctl wait` and `portctl probe` against listeners on loopback.

use crate::common;

use common::{assert_exit, assert_usage_error, json, portctl, run, stdout};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn wait_returns_once_a_listener_appears() {
    let port = common::quiet_port();
    let target = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let waiter = portctl()
        .args(["wait", "--json", &target, "--timeout", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ready: a second wait, started after the first, has tried for 0.3 s
    // and given up, so the first is trying too. Its own report below says
    // whether it had tried in vain before the listener came.
    let later = run(&["wait", &target, "--timeout", "0.3"]);
    assert_exit(&later, 1);
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let report = json::parse(&out);
    json::wait_report(&report);
    assert_eq!(report["target"], target.as_str(), "{report}");
    assert_eq!(report["open"], true, "{report}");
    // Tries are 100 ms apart: at least one failed before the listener.
    assert!(
        report["waited_ms"].as_u64().unwrap() >= 100,
        "it never waited: {report}"
    );
    // The words for it, now that something listens.
    let out = run(&["wait", &target, "--timeout", "20"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("is accepting connections"),
        "{}",
        stdout(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn wait_times_out_with_exit_1() {
    let port = common::quiet_port();
    let started = Instant::now();
    let out = run(&["wait", &format!("localhost:{port}"), "--timeout", "0.6"]);
    assert_exit(&out, 1);
    // The upper bound is loose: a process starts in seconds under Wine.
    assert!(
        started.elapsed() >= Duration::from_millis(600)
            && started.elapsed() < Duration::from_secs(20)
    );
    for bad in ["localhost", "999.1.1.1:80", "[::1]:99999"] {
        assert_usage_error(&run(&["wait", bad]), bad);
    }
}

#[test]
fn probe_tells_open_from_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = common::quiet_port();
    let out = run(&["probe", &format!("127.0.0.1:{open}")]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("open"), "{}", stdout(&out));
    let out = run(&["probe", &format!("127.0.0.1:{closed}")]);
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("closed"));

    let (low, high) = (open.saturating_sub(20), open.saturating_add(20));
    let out = run(&[
        "probe",
        "--json",
        "--concurrency",
        "8",
        &format!("127.0.0.1:{low}-{high}"),
    ]);
    assert_exit(&out, 0);
    let records = json::array(&out);
    records.iter().for_each(json::probe_record);
    assert_eq!(records.len(), usize::from(high - low) + 1);
    assert!(records
        .windows(2)
        .all(|w| json::port(&w[0]["port"]) < json::port(&w[1]["port"])));
    let mine = records.iter().find(|r| r["port"] == open).unwrap();
    assert_eq!(mine["status"], "open", "{mine}");
    assert!(mine["ms"].is_number(), "{mine}");
    let over_ipv6 = run(&["probe", &format!("[::1]:{closed}")]);
    assert_exit(&over_ipv6, 1);
}

#[test]
fn probe_bad_input_is_exit_2() {
    for (args, value) in [
        (vec!["probe", "127.0.0.1"], "127.0.0.1"),
        (vec!["probe", "127.0.0.1:9-1"], "9-1"),
        (vec!["probe", "127.0.0.1:80", "--concurrency", "0"], "0"),
        (vec!["probe", "127.0.0.1:80", "--timeout", "never"], "never"),
    ] {
        assert_usage_error(&run(&args), value);
    }
}
