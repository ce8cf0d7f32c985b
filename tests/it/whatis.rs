//! `portctl whatis` against the real binary.

use crate::common;

use common::{assert_exit, assert_usage_error, run, stderr, stdout};
use serde_json::Value;

/// `whatis --json ARGS`: the exit code and the answers, each of a service
/// record's shape.
#[track_caller]
fn json(args: &[&str]) -> (i32, Vec<Value>) {
    let mut full = vec!["whatis", "--json"];
    full.extend_from_slice(args);
    let out = run(&full);
    let records = common::json::array(&out);
    records.iter().for_each(common::json::service_record);
    (out.status.code().unwrap(), records)
}

/// The transports `service` is answered for, `any` for none named.
fn protos(records: &[Value], service: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["service"] == service)
        .map(|r| r["proto"].as_str().unwrap_or("any").to_string())
        .collect()
}

#[test]
fn https_is_443() {
    let (code, records) = json(&["443"]);
    assert_eq!(code, 0);
    assert_eq!(protos(&records, "https"), ["tcp", "udp", "sctp"]);
    let tcp = &records[0];
    assert_eq!(tcp["port"], 443, "{tcp}");
    assert_eq!(tcp["description"], "http protocol over TLS/SSL", "{tcp}");
    assert_eq!(tcp["class"], "system", "{tcp}");
    assert_eq!(tcp["source"], "iana", "{tcp}");
}

#[test]
fn ssh_by_name_in_any_case() {
    for name in ["ssh", "SSH"] {
        let (code, records) = json(&[name]);
        assert_eq!(code, 0);
        assert!(records
            .iter()
            .any(|r| r["port"] == 22 && r["proto"] == "tcp"));
        assert!(records.iter().all(|r| r["service"] == "ssh"));
    }
}

#[test]
fn unassigned_port_is_exit_1_with_its_class() {
    let (code, records) = json(&["4"]);
    assert_eq!(code, 1);
    assert!(records.is_empty());
    let out = run(&["whatis", "4"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("no service registered"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("system port"));
    let (code, _) = json(&["60000"]);
    assert_eq!(code, 1, "dynamic ports are never registered");
}

#[test]
fn a_port_inside_a_registered_range() {
    let (code, records) = json(&["6005"]);
    assert_eq!(code, 0);
    let x11: Vec<_> = records.iter().filter(|r| r["service"] == "x11").collect();
    assert_eq!(x11.len(), 2);
    assert!(x11
        .iter()
        .all(|r| r["port"] == 6005 && r["registered_range"] == "6000-6063"));
}

#[test]
fn a_range_query_expands_to_ports_with_entries() {
    let (code, records) = json(&["6062-6065", "--tcp"]);
    assert_eq!(code, 0);
    let x11_ports: Vec<u64> = records
        .iter()
        .filter(|r| r["service"] == "x11")
        .filter_map(|r| r["port"].as_u64())
        .collect();
    assert_eq!(x11_ports, [6062, 6063]);
}

#[test]
fn transport_filters() {
    let (_, tcp) = json(&["53", "--tcp"]);
    assert_eq!(protos(&tcp, "domain"), ["tcp"]);
    let (_, udp) = json(&["53", "--udp"]);
    assert_eq!(protos(&udp, "domain"), ["udp"]);
    let (_, both) = json(&["53", "--tcp", "--udp"]);
    assert_eq!(protos(&both, "domain"), ["tcp", "udp"]);
}

#[test]
fn newer_registrations_from_the_overlay() {
    let (code, records) = json(&["11434"]);
    assert_eq!(code, 0);
    assert_eq!(records[0]["service"], "ollama");
    let (_, renamed) = json(&["1980", "--tcp"]);
    assert_eq!(renamed[0]["service"], "panquest-xact");
    assert_eq!(renamed[1]["renamed_to"], "panquest-xact", "{renamed:?}");
}

#[test]
fn historic_aliases_are_marked() {
    let (_, records) = json(&["80", "--tcp"]);
    assert_eq!(records[0]["service"], "http");
    assert!(records[0].get("alias_of").is_none(), "{}", records[0]);
    let www = records.iter().find(|r| r["service"] == "www").unwrap();
    assert_eq!(www["alias_of"], "http", "{www}");
}

#[test]
fn names_without_a_port() {
    let (code, records) = json(&["argus"]);
    assert_eq!(code, 0);
    assert!(!records.is_empty() && records.iter().all(|r| r["port"].is_null()));
}

#[test]
fn several_queries_and_one_miss_is_exit_1() {
    let (code, records) = json(&["22", "no-such-service-xyz", "443"]);
    assert_eq!(code, 1);
    assert!(records.iter().any(|r| r["service"] == "ssh"));
    assert!(records.iter().any(|r| r["service"] == "https"));
}

#[test]
fn piped_text_is_plain_columns() {
    let out = run(&["whatis", "443"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(!text.contains('│') && !text.contains('\x1b'), "{text}");
    let first: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&first[..4], ["443", "tcp,udp", "https", "system"]);
}

#[test]
fn bad_input_is_exit_2_with_one_error_line() {
    for bad in [
        "-1",
        "65536",
        "80-",
        "9000-8000",
        "",
        "1e3",
        "99999999999999999999",
        "-",
        " ",
    ] {
        let out = run(&["whatis", bad]);
        assert_usage_error(&out, bad.trim());
    }
    assert_usage_error(&run(&["whatis", "--bogus", "4"]), "--bogus");
    assert_usage_error(&run(&["whatis"]), "QUERY");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let (code, err) = common::into_closed_pipe(&["whatis", "0-65535"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn common_uses_are_marked_apart_from_the_registry() {
    let (code, records) = json(&["5173"]);
    assert_eq!(code, 0);
    assert!(
        records.iter().all(|r| r["source"] == "common"),
        "{records:?}"
    );
    assert_eq!(records[0]["service"], "vite-dev");
    let (_, at_443) = json(&["443", "--udp"]);
    assert!(at_443
        .iter()
        .any(|r| r["service"] == "https" && r["source"] == "iana"));
    assert!(at_443
        .iter()
        .any(|r| r["service"] == "quic" && r["source"] == "common"));
    // The classic confusion: SSH's SFTP is on 22, port 115 is another protocol.
    let (_, sftp) = json(&["sftp"]);
    assert!(sftp
        .iter()
        .any(|r| r["port"] == 22 && r["source"] == "common"));
    assert!(sftp
        .iter()
        .any(|r| r["port"] == 115 && r["source"] == "iana"));
    let text = stdout(&run(&["whatis", "115", "--tcp"]));
    assert!(text.contains("SSH's SFTP runs on 22"), "{text}");
    let count = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/common-ports.csv"
    ))
    .unwrap()
    .lines()
    .count();
    assert!(count > 100, "at least 100 common uses: {count}");
}

#[test]
fn search_looks_through_names_and_descriptions() {
    let (code, records) = json(&["--search", "ELASTICSEARCH"]);
    assert_eq!(code, 0);
    assert!(records.iter().any(|r| r["port"] == 9200));
    let (_, by_description) = json(&["--search", "Secure Shell"]);
    assert!(by_description.iter().any(|r| r["service"] == "ssh"));
    let (code, none) = json(&["--search", "zzqqxxnothing"]);
    assert_eq!((code, none.len()), (1, 0));
    assert_usage_error(&run(&["whatis", "--search", ""]), "''");
}
