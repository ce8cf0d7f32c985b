//! portctl's JSON as a reader meets it: parsed into `serde_json::Value`,
//! never into the crate's own types, and checked field by field against
//! the shapes written down here once. A field renamed in the binary fails
//! these checks even if every type inside the crate was renamed with it.
//!
//! Each `*_record` function asserts that one object has every field its
//! kind carries, with the right JSON type and, for enumerations, one of
//! the spelled-out values. Fields the binary leaves out when empty
//! (`reason`, `note`, `pids`, ...) may be missing; every other field must
//! be there, `null` where the binary says it has nothing.

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::process::Output;

/// TCP states as `netstat` names them.
pub const TCP_STATES: [&str; 11] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// What `who` notes are about.
pub const NOTE_KINDS: [&str; 9] = [
    "time-wait",
    "hidden-owner",
    "bound-inactive",
    "privileged",
    "reserved",
    "ephemeral",
    "container-published",
    "excluded",
    "system-holder",
];

/// Parses a whole stdout as one JSON document.
#[track_caller]
pub fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Parses a whole stdout as a JSON array and returns its elements.
#[track_caller]
pub fn array(out: &Output) -> Vec<Value> {
    match parse(out) {
        Value::Array(items) => items,
        other => panic!("not a JSON array: {other}"),
    }
}

/// Parses one line of JSON (`--watch --json`, `serve --json`).
#[track_caller]
pub fn line(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON line ({e}): {text:?}"))
}

#[track_caller]
fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("no `{name}` field in {v}"))
}

#[track_caller]
fn is_string(v: &Value, name: &str) {
    assert!(
        field(v, name).is_string(),
        "`{name}` is not a string in {v}"
    );
}

#[track_caller]
fn is_bool(v: &Value, name: &str) {
    assert!(
        field(v, name).is_boolean(),
        "`{name}` is not a boolean in {v}"
    );
}

#[track_caller]
fn is_string_or_null(v: &Value, name: &str) {
    let f = field(v, name);
    assert!(
        f.is_string() || f.is_null(),
        "`{name}` is neither a string nor null in {v}"
    );
}

/// Present, and a string when present: for fields left out when empty.
#[track_caller]
fn is_string_if_there(v: &Value, name: &str) {
    if let Some(f) = v.get(name) {
        assert!(f.is_string(), "`{name}` is not a string in {v}");
    }
}

#[track_caller]
fn is_uint(v: &Value, name: &str, max: u64) {
    let n = field(v, name).as_u64();
    assert!(
        n.is_some_and(|n| n <= max),
        "`{name}` is not a whole number up to {max} in {v}"
    );
}

#[track_caller]
fn is_uint_or_null(v: &Value, name: &str, max: u64) {
    if !field(v, name).is_null() {
        is_uint(v, name, max);
    }
}

#[track_caller]
fn is_one_of(v: &Value, name: &str, allowed: &[&str]) {
    let f = field(v, name);
    assert!(
        f.as_str().is_some_and(|s| allowed.contains(&s)),
        "`{name}` is not one of {allowed:?} in {v}"
    );
}

#[track_caller]
fn is_one_of_or_null(v: &Value, name: &str, allowed: &[&str]) {
    if !field(v, name).is_null() {
        is_one_of(v, name, allowed);
    }
}

#[track_caller]
fn is_ip(v: &Value, name: &str) {
    ip(field(v, name));
}

#[track_caller]
fn is_array<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    field(v, name)
        .as_array()
        .unwrap_or_else(|| panic!("`{name}` is not an array in {v}"))
}

/// An address field as an `IpAddr`.
#[track_caller]
pub fn ip(v: &Value) -> IpAddr {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an IP address: {v}"))
}

/// A `pid`-like field: `Some` for a number, `None` for null.
#[track_caller]
pub fn pid(v: &Value) -> Option<u32> {
    if v.is_null() {
        return None;
    }
    let n = v.as_u64().unwrap_or_else(|| panic!("not a PID: {v}"));
    Some(u32::try_from(n).unwrap_or_else(|_| panic!("not a PID: {v}")))
}

/// A port field.
#[track_caller]
pub fn port(v: &Value) -> u16 {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("not a port: {v}"))
}

/// One socket with its owner: a row of `list --json`, a holder of `check`,
/// and the base of `who`'s sockets and `list --watch` events.
#[track_caller]
pub fn socket_record(v: &Value) {
    is_one_of(v, "proto", &["tcp", "udp"]);
    is_one_of(v, "family", &["ipv4", "ipv6"]);
    is_ip(v, "local_addr");
    is_uint(v, "local_port", 65535);
    is_ip(v, "remote_addr");
    is_uint(v, "remote_port", 65535);
    is_one_of_or_null(v, "state", &TCP_STATES);
    is_uint_or_null(v, "pid", u32::MAX.into());
    is_string_or_null(v, "process");
    is_string_or_null(v, "user");
    is_uint(v, "inode", u64::MAX);
    is_string_or_null(v, "service");
    if v.get("pids").is_some() {
        for p in is_array(v, "pids") {
            pid(p).unwrap_or_else(|| panic!("a null in `pids` of {v}"));
        }
    }
    is_string_or_null(v, "unit");
    let container = field(v, "container");
    if !container.is_null() {
        container_record(container);
    }
}

/// The container behind a socket.
#[track_caller]
pub fn container_record(v: &Value) {
    is_one_of(
        v,
        "runtime",
        &["docker", "podman", "containerd", "kubernetes"],
    );
    is_string_or_null(v, "id");
    is_string_or_null(v, "name");
    is_string_or_null(v, "image");
    is_uint_or_null(v, "port", 65535);
    is_string_if_there(v, "pod_uid");
    is_string_if_there(v, "pod");
    is_string_if_there(v, "namespace");
}

#[track_caller]
fn is_number_or_null(v: &Value, name: &str) {
    let f = field(v, name);
    assert!(
        f.is_null() || f.is_number(),
        "`{name}` is neither a number nor null in {v}"
    );
}

/// `list --info`'s fields on a socket: numbers for a TCP connection,
/// `null` for UDP and listeners.
#[track_caller]
pub fn info_fields(v: &Value) {
    is_uint_or_null(v, "bytes_sent", u64::MAX);
    is_uint_or_null(v, "bytes_received", u64::MAX);
    is_number_or_null(v, "rtt_ms");
    is_uint_or_null(v, "retransmits", u32::MAX.into());
}

/// One line of `trace --json`: the event, when (RFC 3339 with
/// microseconds), where it came from, the socket's fields; a close's
/// duration and bytes.
#[track_caller]
pub fn trace_event(v: &Value) {
    is_one_of(v, "event", &["connect", "accept", "close"]);
    let time = field(v, "time").as_str().unwrap_or_default();
    assert!(
        time.len() == "2026-12-06T10:08:28.663584Z".len() && time.ends_with('Z'),
        "`time` is not RFC 3339 with microseconds in {v}"
    );
    is_one_of(v, "source", &["kernel", "poll"]);
    socket_record(v);
    if v["event"] == "close" {
        is_number_or_null(v, "duration_ms");
        is_uint_or_null(v, "bytes_sent", u64::MAX);
        is_uint_or_null(v, "bytes_received", u64::MAX);
    } else {
        assert!(
            v.get("duration_ms").is_none(),
            "a duration on an opening: {v}"
        );
    }
}

/// One line of `check --json`.
#[track_caller]
pub fn check_record(v: &Value) {
    is_uint(v, "port", 65535);
    is_one_of(v, "proto", &["tcp", "udp"]);
    is_bool(v, "free");
    is_one_of(v, "status", &["free", "in-use", "unbindable"]);
    assert_eq!(
        v["free"] == true,
        v["status"] == "free",
        "`free` and `status` disagree in {v}"
    );
    for holder in is_array(v, "holders") {
        socket_record(holder);
    }
    is_string_if_there(v, "reason");
    is_string_if_there(v, "note");
}

/// One line of `free --json`.
#[track_caller]
pub fn free_record(v: &Value) {
    is_uint(v, "port", 65535);
    is_one_of(v, "proto", &["tcp", "udp"]);
}

/// `who --json`: a port, its sockets with their owners' stories, and the
/// notes.
#[track_caller]
pub fn story(v: &Value) {
    is_uint(v, "port", 65535);
    for s in is_array(v, "sockets") {
        socket_record(s);
        let cmdline = field(s, "cmdline");
        assert!(
            cmdline.is_null()
                || cmdline
                    .as_array()
                    .is_some_and(|words| words.iter().all(Value::is_string)),
            "`cmdline` is neither null nor an array of strings in {s}"
        );
        is_string_or_null(s, "started");
        for parent in is_array(s, "parents") {
            is_uint(parent, "pid", u32::MAX.into());
            is_string_or_null(parent, "process");
        }
    }
    for note in is_array(v, "notes") {
        is_one_of(note, "kind", &NOTE_KINDS);
        is_string(note, "text");
    }
}

/// One line of `list --watch --json`: an event and the socket's fields.
#[track_caller]
pub fn watch_event(v: &Value) {
    is_one_of(v, "event", &["open", "close", "change"]);
    socket_record(v);
}

/// One row of `list --summary --json`.
#[track_caller]
pub fn summary_row(v: &Value) {
    is_one_of(v, "proto", &["tcp", "udp"]);
    is_one_of_or_null(v, "state", &TCP_STATES);
    is_uint(v, "count", u64::MAX);
}

/// One port of `probe --json`.
#[track_caller]
pub fn probe_record(v: &Value) {
    is_ip(v, "addr");
    is_uint(v, "port", 65535);
    is_one_of(v, "status", &["open", "closed", "no-answer", "error"]);
    let ms = field(v, "ms");
    assert!(
        ms.is_null() || ms.is_f64() || ms.is_u64(),
        "`ms` is neither a number nor null in {v}"
    );
    is_string_or_null(v, "service");
    is_string_if_there(v, "error");
}

/// One answer of `whatis --json`.
#[track_caller]
pub fn service_record(v: &Value) {
    is_uint_or_null(v, "port", 65535);
    is_one_of_or_null(v, "proto", &["tcp", "udp", "sctp", "dccp"]);
    is_string(v, "service");
    is_string(v, "description");
    is_one_of_or_null(v, "class", &["system", "user", "dynamic"]);
    is_one_of(v, "source", &["iana", "common"]);
    is_string_if_there(v, "registered_range");
    is_string_if_there(v, "alias_of");
    is_string_if_there(v, "renamed_to");
}

/// What `wait --json` reports.
#[track_caller]
pub fn wait_report(v: &Value) {
    is_string(v, "target");
    is_bool(v, "open");
    is_uint(v, "waited_ms", u64::MAX);
}

/// What `kill --json` reports.
#[track_caller]
pub fn kill_report(v: &Value) {
    is_uint(v, "port", 65535);
    for s in is_array(v, "signals") {
        is_uint(s, "pid", u32::MAX.into());
        is_string_or_null(s, "process");
        is_one_of(
            s,
            "signal",
            &["SIGTERM", "SIGKILL", "WM_CLOSE", "TerminateProcess"],
        );
    }
    if v.get("failed").is_some() {
        for f in is_array(v, "failed") {
            is_uint(f, "pid", u32::MAX.into());
            is_string(f, "error");
        }
    }
    is_bool(v, "free");
    is_string_if_there(v, "note");
}

/// The line `serve --json` prints once per transport when listening.
#[track_caller]
pub fn listening_event(v: &Value) {
    is_one_of(v, "event", &["listening"]);
    is_string(v, "service");
    is_one_of(v, "proto", &["tcp", "udp"]);
    is_ip(v, "addr");
    is_uint(v, "port", 65535);
}

/// What `serve http` replies about a request, as JSON.
#[track_caller]
pub fn request_description(v: &Value) {
    is_string(v, "method");
    is_string(v, "path");
    is_string(v, "version");
    for end in ["client", "server"] {
        let addr = field(v, end).as_str().map(str::parse::<SocketAddr>);
        assert!(
            matches!(addr, Some(Ok(_))),
            "`{end}` is not a socket address in {v}"
        );
    }
    for header in is_array(v, "headers") {
        let pair = header.as_array();
        assert!(
            pair.is_some_and(|p| p.len() == 2 && p.iter().all(Value::is_string)),
            "a header is not a [name, value] pair in {v}"
        );
    }
}

/// One thing the server said, as `talk --json` prints it.
#[track_caller]
pub fn exchange(v: &Value) {
    is_one_of(v, "kind", &["greeting", "reply"]);
    is_string_or_null(v, "sent");
    is_string(v, "data");
    if v.get("partial").is_some() {
        is_bool(v, "partial");
    }
}
