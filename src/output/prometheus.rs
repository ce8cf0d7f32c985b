//! A scrape in the Prometheus text exposition format (version 0.0.4):
//! families with `# HELP` and `# TYPE`, each series (name and label set)
//! once, label values escaped as the format requires. Label values are
//! outside text (process and container names): control, bidirectional
//! and invisible characters are first made visible (`sanitize`), so the
//! text is safe on a terminal and still valid exposition format.

use super::sanitize;
use crate::facts::scrape::{ListenerTraffic, Scrape};
use crate::facts::socket_record::SocketRecord;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The content type a scrape answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family, all gauges here.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    labels: Vec<(&'static str, String)>,
    value: f64,
}

/// The whole exposition text of a scrape.
pub fn exposition(scrape: &Scrape) -> String {
    let mut text = String::with_capacity(4096);
    write(
        &mut text,
        &[
            sockets(scrape),
            listener_info(&scrape.listeners),
            listener_pid(&scrape.listeners),
            traffic_total(
                "portctl_tcp_bytes_sent",
                "Bytes sent over each TCP listener's open connections, summed (tcp_info); falls when they close: a gauge, not a counter.",
                scrape,
                |t| t.bytes_sent,
            ),
            traffic_total(
                "portctl_tcp_bytes_received",
                "Bytes received over each TCP listener's open connections, summed (tcp_info); falls when they close: a gauge, not a counter.",
                scrape,
                |t| t.bytes_received,
            ),
            port_free(scrape),
            Family {
                name: "portctl_scrape_duration_seconds",
                help: "How long reading the socket table and its owners took.",
                samples: vec![Sample {
                    labels: Vec::new(),
                    value: scrape.duration.as_secs_f64(),
                }],
            },
        ],
    );
    rtt_histogram(&mut text, scrape);
    text
}

fn traffic_total(
    name: &'static str,
    help: &'static str,
    scrape: &Scrape,
    amount: fn(&ListenerTraffic) -> u64,
) -> Family {
    Family {
        name,
        help,
        samples: scrape
            .traffic
            .iter()
            .map(|t| Sample {
                labels: vec![
                    ("address", t.address.to_string()),
                    ("port", t.port.to_string()),
                ],
                value: amount(t) as f64,
            })
            .collect(),
    }
}

/// The round trips' upper bounds, in seconds: loopback to a far continent.
const RTT_BUCKETS: [f64; 10] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// `portctl_tcp_rtt_seconds`, a histogram per TCP listener over its open
/// connections' round trips.
fn rtt_histogram(out: &mut String, scrape: &Scrape) {
    let name = "portctl_tcp_rtt_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Smoothed round-trip times of each TCP listener's open connections now (tcp_info): a snapshot, whose buckets fall as connections close; take histogram_quantile() of it directly, never of rate()."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for t in &scrape.traffic {
        let labels = format!("address=\"{}\",port=\"{}\"", t.address, t.port);
        for bound in RTT_BUCKETS {
            let within = t.rtts.iter().filter(|r| r.as_secs_f64() <= bound).count();
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {within}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            t.rtts.len()
        );
        let sum: f64 = t.rtts.iter().map(|r| r.as_secs_f64()).sum();
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", number(sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", t.rtts.len());
    }
}

fn sockets(scrape: &Scrape) -> Family {
    Family {
        name: "portctl_sockets",
        help: "Sockets on this machine by transport, address family and TCP state (empty for UDP).",
        samples: scrape
            .sockets
            .iter()
            .map(|c| Sample {
                labels: vec![
                    ("proto", c.proto.to_string()),
                    (
                        "family",
                        match c.family {
                            crate::model::Family::Ipv4 => "ipv4",
                            crate::model::Family::Ipv6 => "ipv6",
                        }
                        .into(),
                    ),
                    ("state", c.state.map_or("", |s| s.as_str()).into()),
                ],
                value: c.count as f64,
            })
            .collect(),
    }
}

/// One series per distinct listener: two `SO_REUSEPORT` sockets of one
/// process on one port are one listener, not two identical series.
fn listener_info(listeners: &[SocketRecord]) -> Family {
    let mut series: Vec<Vec<(&'static str, String)>> = listeners
        .iter()
        .map(|r| {
            let container = r.container.as_ref();
            vec![
                ("proto", r.proto.to_string()),
                ("address", r.local_addr.to_string()),
                ("port", r.local_port.to_string()),
                ("process", r.process.clone().unwrap_or_default()),
                ("user", r.user.clone().unwrap_or_default()),
                ("unit", r.unit.clone().unwrap_or_default()),
                (
                    "container",
                    container
                        .and_then(|c| c.name.clone().or_else(|| c.id.clone()))
                        .unwrap_or_default(),
                ),
                (
                    "runtime",
                    container.map(|c| c.runtime.to_string()).unwrap_or_default(),
                ),
                (
                    "pod_uid",
                    container
                        .and_then(|c| c.pod_uid.clone())
                        .unwrap_or_default(),
                ),
                (
                    "pod",
                    container.and_then(|c| c.pod.clone()).unwrap_or_default(),
                ),
                (
                    "namespace",
                    container
                        .and_then(|c| c.namespace.clone())
                        .unwrap_or_default(),
                ),
            ]
        })
        .collect();
    series.sort();
    series.dedup();
    Family {
        name: "portctl_listener_info",
        help: "A listening socket (TCP LISTEN or unconnected UDP) and who holds it; always 1.",
        samples: series
            .into_iter()
            .map(|labels| Sample { labels, value: 1.0 })
            .collect(),
    }
}

/// The owner's PID per listener (the lowest where several share it), so
/// `changes()` tells when the process behind a port changed.
fn listener_pid(listeners: &[SocketRecord]) -> Family {
    let mut lowest: BTreeMap<(String, String, u16), u32> = BTreeMap::new();
    for r in listeners {
        let Some(pid) = r.pid else { continue };
        let key = (r.proto.to_string(), r.local_addr.to_string(), r.local_port);
        let entry = lowest.entry(key).or_insert(pid);
        *entry = (*entry).min(pid);
    }
    Family {
        name: "portctl_listener_pid",
        help: "The process holding each listener (its lowest PID); absent where the owner cannot be seen.",
        samples: lowest
            .into_iter()
            .map(|((proto, address, port), pid)| Sample {
                labels: vec![
                    ("proto", proto),
                    ("address", address),
                    ("port", port.to_string()),
                ],
                value: f64::from(pid),
            })
            .collect(),
    }
}

fn port_free(scrape: &Scrape) -> Family {
    Family {
        name: "portctl_port_free",
        help: "1 when a server could bind the port right now (a real bind), 0 when not.",
        samples: scrape
            .ports
            .iter()
            .map(|p| Sample {
                labels: vec![("proto", p.proto.to_string()), ("port", p.port.to_string())],
                value: f64::from(u8::from(p.free)),
            })
            .collect(),
    }
}

/// Writes `families` in the text format, appending to `out`.
fn write(out: &mut String, families: &[Family]) {
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for sample in &family.samples {
            out.push_str(family.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
}

/// Made visible first (`\e`, `\u{202e}`, ...), then `\` → `\\`, `"` →
/// `\"`: a reader gets the visible text back, and a terminal never sees a
/// control character.
fn escape_label(value: &str) -> String {
    let visible = sanitize(value);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `\` → `\\`, newline → `\n` (help text).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Integers without a fraction; the rest as Rust prints floats.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaped_labels() {
        let mut out = String::new();
        write(
            &mut out,
            &[Family {
                name: "portctl_listener_info",
                help: "A listening socket.",
                samples: vec![Sample {
                    labels: vec![("process", "a\"b\\c".into()), ("port", "80".into())],
                    value: 1.0,
                }],
            }],
        );
        assert_eq!(
            out,
            "# HELP portctl_listener_info A listening socket.\n\
             # TYPE portctl_listener_info gauge\n\
             portctl_listener_info{process=\"a\\\"b\\\\c\",port=\"80\"} 1\n"
        );
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
    }

    #[test]
    fn control_bidi_and_invisible_characters_never_reach_the_text() {
        let label = escape_label("x\u{1b}]0;pwned\u{7}\u{202e}\u{200b}\ny");
        assert!(
            !label.chars().any(|c| c.is_control()
                || ('\u{200b}'..='\u{200f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{label:?}"
        );
        // The escapes themselves are escaped as the format requires.
        assert_eq!(label, "x\\\\e]0;pwned\\\\x07\\\\u{202e}\\\\u{200b}\\\\ny");
    }
}
