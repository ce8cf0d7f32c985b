//! Ports, ranges, addresses and HOST:PORT never panic, and what parses
//! round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::fuzzing::{parse_host, parse_host_port, parse_host_range, parse_ip, parse_port, parse_range};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(port) = parse_port(text) {
        assert_eq!(parse_port(&port.to_string()), Ok(port));
    }
    if let Ok(range) = parse_range(text) {
        assert!(range.low <= range.high);
        assert_eq!(parse_range(&range.to_string()), Ok(range));
    }
    let _ = parse_ip(text);
    let _ = parse_host(text);
    if let Ok((host, port)) = parse_host_port(text) {
        assert_eq!(parse_host_port(&format!("{host}:{port}")), Ok((host, port)));
    }
    let _ = parse_host_range(text);
});
