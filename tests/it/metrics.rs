//! `portctl metrics` and `serve metrics` read by real consumers: the
//! official Python client's parser and a real Prometheus scraping `serve
//! metrics` (both ignored unless asked for, as CI does).
// Unix only: it parses with python3 prometheus-client and runs Prometheus.
#![cfg(unix)]

use crate::common;

use common::{named_listener, require_program, run, with_input, Kid, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Parses an exposition with prometheus_client and prints, one per line,
/// `family|sample name|labels as JSON|value`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(family.name + "|" + s.name + "|" + json.dumps(s.labels, sort_keys=True) + "|" + str(s.value))
"#;

fn parse_with_official_client(text: &str) -> Vec<(String, serde_json::Value, f64)> {
    let has_client = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_client,
        "this test needs python3's prometheus_client: pip install prometheus-client \
         (.ci/run installs it)"
    );
    let mut parser = Command::new("python3");
    parser.args(["-c", PARSE]);
    let out = with_input(parser, text.as_bytes());
    assert!(
        out.status.success(),
        "the official parser refused the exposition"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, '|').collect();
            (
                parts[1].to_string(),
                serde_json::from_str(parts[2]).unwrap(),
                parts[3].parse().unwrap(),
            )
        })
        .collect()
}

/// `portctl metrics` for a listener with a hostile name and a closed port:
/// the listener (killed when dropped), its port, the closed port and the
/// exposition, which has every family with its HELP and TYPE.
fn exposition() -> (Kid, u16, u16, String) {
    let (child, port) = named_listener(b"ev\"il\\x\nname", "127.0.0.1");
    let child = Kid(child);
    let closed = common::quiet_port();
    let out = run(&[
        "metrics",
        "--port",
        &port.to_string(),
        "--port",
        &closed.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for family in [
        "portctl_sockets",
        "portctl_listener_info",
        "portctl_port_free",
        "portctl_scrape_duration_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(text.contains(&format!("# TYPE {family} gauge")), "{family}");
    }
    (child, port, closed, text)
}

#[test]
fn every_family_has_its_help_and_type() {
    exposition();
}

#[test]
#[ignore = "needs python3 prometheus-client"]
fn the_official_parser_reads_every_family_and_hostile_names_exactly() {
    let (_child, port, closed, text) = exposition();
    let samples = parse_with_official_client(&text);
    let mine = samples
        .iter()
        .find(|(name, labels, _)| {
            name == "portctl_listener_info"
                && labels["port"].as_str() == Some(port.to_string().as_str())
        })
        .expect("the test's listener is exported");
    // The newline reaches the format made visible (`\n` as two
    // characters), so a terminal never gets it raw; the rest is exact.
    assert_eq!(mine.1["process"], "ev\"il\\x\\nname");
    assert_eq!(mine.1["proto"], "tcp");
    assert_eq!(mine.1["address"], "127.0.0.1");
    for key in ["user", "unit", "container"] {
        assert!(mine.1.get(key).is_some(), "stable label set: {key}");
    }
    let free = |p: u16| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == "portctl_port_free"
                    && l["port"].as_str() == Some(p.to_string().as_str())
                    && l["proto"] == "tcp"
            })
            .map(|s| s.2)
    };
    assert_eq!(free(port), Some(0.0));
    assert_eq!(free(closed), Some(1.0));
    assert!(samples
        .iter()
        .any(|(n, l, v)| n == "portctl_sockets" && l["state"] == "LISTEN" && *v >= 1.0));
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn serve_metrics_answers_scrapes_one_table_at_a_time() {
    let server = Server::start(&["metrics", "--port", "0", "--watch", "9"], 1);
    let reply = get(server.port, "/metrics");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains("Content-Type: text/plain; version=0.0.4"),
        "{reply}"
    );
    assert!(
        reply.contains("portctl_port_free{proto=\"tcp\",port=\"9\"}"),
        "{reply}"
    );
    assert!(
        reply.contains(&format!("port=\"{}\"", server.port)),
        "serve metrics lists itself"
    );
    assert!(get(server.port, "/").starts_with("HTTP/1.1 404"));
    // Twenty scrapes at once all get a whole answer.
    let port = server.port;
    let scrapes: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(port, "/metrics")))
        .collect();
    for scrape in scrapes {
        let reply = scrape.join().unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.contains("portctl_scrape_duration_seconds")
        );
    }
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
}

#[test]
#[ignore = "needs prometheus"]
fn a_real_prometheus_scrapes_serve_metrics() {
    require_program("prometheus", "--version", "apt-get install prometheus");
    let (mut child, watched) = named_listener(b"ev\"il\\x\nname", "127.0.0.1");
    let server = Server::start(&["metrics", "--port", "0", "-q"], 1);
    let web = common::quiet_port();
    let dir = std::env::temp_dir().join(format!("portctl-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: portctl\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            server.port
        ),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = format!("/api/v1/query?query=portctl_listener_info%7Bport%3D%22{watched}%22%7D");
    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        let answer = TcpStream::connect(("127.0.0.1", web)).ok().map(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET {query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            reply
        });
        if let Some(reply) = answer.filter(|r| r.contains("\"result\":[{")) {
            break Some(reply);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = child.kill();
    let _ = child.wait();
    let reply = found.expect("Prometheus never had the test's listener");
    assert!(reply.contains("ev\\\"il\\\\x\\\\nname"), "{reply}");
}
