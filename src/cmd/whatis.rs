//! `portctl whatis`: port to service and service to port, from the
//! embedded registry.

use crate::cli::WhatisArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::registry::{self, Entry, PortClass, Source, Standing, Transport};
use crate::output::{write_array, Cell, Column, Fit, Format, Output, Style};
use crate::parse::{parse_range, PortRange, RANGE_FORM};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};

/// One (port, transport, service) answer, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `null` for a name registered without a port.
    pub port: Option<u16>,
    /// `null` where the registry names no transport.
    pub proto: Option<Transport>,
    pub service: String,
    pub description: String,
    pub class: Option<PortClass>,
    /// `iana` for the registry, `common` for the project's table of
    /// common unofficial uses.
    pub source: Source,
    /// The whole registered range when the entry covers more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
}

impl ServiceRecord {
    fn new(port: Option<u16>, entry: &Entry) -> Self {
        let (alias_of, renamed_to) = match entry.standing {
            Standing::Current => (None, None),
            Standing::AliasOf(name) => (Some(name.to_string()), None),
            Standing::RenamedTo(name) => (None, Some(name.to_string())),
        };
        ServiceRecord {
            port,
            proto: entry.transport,
            service: entry.name.to_string(),
            description: entry.description.to_string(),
            class: port.map(PortClass::of),
            source: entry.source,
            registered_range: entry
                .range()
                .filter(|r| !r.is_single())
                .map(|r| r.to_string()),
            alias_of,
            renamed_to,
        }
    }
}

/// What the user asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Query {
    Ports(PortRange),
    Name(String),
    Search(String),
}

/// A query starting with a digit or a sign is a port or range, unless it is
/// exactly a registered name (`3com-tsmux`, `9pfs`); anything else printable
/// is a name.
fn classify(text: &str) -> Result<Query> {
    const FORM: &str = "a port (0-65535), a range (LOW-HIGH) or a service name";
    if text.trim().is_empty() || text.chars().any(char::is_control) || text.len() > 64 {
        return Err(Error::usage(format!(
            "invalid query '{}': expected {FORM}",
            crate::output::sanitize(text)
        )));
    }
    let numeric = text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    // Service names hold at least one letter (RFC 6335), so digits alone
    // need no name lookup.
    let may_be_name = text.chars().any(|c| c.is_ascii_alphabetic());
    if numeric && !(may_be_name && registry::named(text).next().is_some()) {
        return parse_range(text)
            .map(Query::Ports)
            .map_err(|_| Error::usage(format!("invalid query '{text}': {RANGE_FORM}")));
    }
    Ok(Query::Name(text.to_string()))
}

fn wanted(entry: &Entry, tcp: bool, udp: bool) -> bool {
    match entry.transport {
        None => true,
        Some(Transport::Tcp) => tcp,
        Some(Transport::Udp) => udp,
        // SCTP and DCCP are shown unless the user narrowed to TCP or UDP.
        Some(_) => tcp && udp,
    }
}

/// The answers to one query, and what to say when there are none.
struct Answer {
    records: Vec<ServiceRecord>,
    missing: Option<String>,
}

fn answer(query: &Query, tcp: bool, udp: bool) -> Answer {
    let records: Vec<ServiceRecord> = match query {
        Query::Ports(range) if range.is_single() => registry::at_port(range.low)
            .filter(|e| wanted(e, tcp, udp))
            .map(|e| ServiceRecord::new(Some(range.low), &e))
            .collect(),
        Query::Ports(range) => registry::in_range(*range)
            .into_iter()
            .filter(|(_, e)| wanted(e, tcp, udp))
            .map(|(port, e)| ServiceRecord::new(Some(port), &e))
            .collect(),
        Query::Name(name) => registry::named(name)
            .filter(|e| wanted(e, tcp, udp))
            .map(|e| ServiceRecord::new(e.ports.map(|(low, _)| low), &e))
            .collect(),
        Query::Search(word) => registry::search(word)
            .into_iter()
            .filter(|e| wanted(e, tcp, udp))
            .map(|e| ServiceRecord::new(e.ports.map(|(low, _)| low), &e))
            .collect(),
    };
    let missing = records.is_empty().then(|| match query {
        Query::Ports(range) if range.is_single() => format!(
            "{}: no service registered; {} is {}",
            range.low,
            range.low,
            PortClass::of(range.low).explain()
        ),
        Query::Ports(range) => format!("{range}: no service registered in this range"),
        Query::Name(name) => format!(
            "{}: no such service name in the registry",
            crate::output::sanitize(name)
        ),
        Query::Search(word) => format!(
            "no service name or description contains '{}'",
            crate::output::sanitize(word)
        ),
    });
    Answer { records, missing }
}

pub fn run(args: &WhatisArgs, output: Output) -> Result<Exit> {
    let mut queries = args
        .queries
        .iter()
        .map(|q| classify(q))
        .collect::<Result<Vec<_>>>()?;
    if let Some(word) = &args.search {
        if word.trim().is_empty() || word.chars().any(char::is_control) {
            return Err(Error::usage(format!(
                "invalid search '{}': expected a word to look for",
                crate::output::sanitize(word)
            )));
        }
        queries.push(Query::Search(word.clone()));
    }
    let (tcp, udp) = (args.transport.wants_tcp(), args.transport.wants_udp());
    let answers: Vec<Answer> = queries.iter().map(|q| answer(q, tcp, udp)).collect();
    let exit = if answers.iter().any(|a| a.missing.is_some()) {
        Exit::Negative
    } else {
        Exit::Ok
    };
    let stdout = io::stdout().lock();
    let printed = match output.format {
        Format::Json => write_array(stdout, answers.iter().flat_map(|a| &a.records)),
        _ => write_text(stdout, output, &queries, &answers),
    };
    crate::output::deliver(exit, printed)
}

const COLUMNS: [Column; 5] = [
    Column::new("PORT", 5),
    Column::new("PROTO", 8),
    Column::new("SERVICE", 16),
    Column::new("CLASS", 7),
    Column::new("DESCRIPTION", 0).fit(Fit::Wrap),
];

/// One row per port and service, with its transports grouped.
fn write_text<W: Write>(
    mut out: W,
    output: Output,
    queries: &[Query],
    answers: &[Answer],
) -> io::Result<()> {
    let boxed = output.format == Format::Table;
    let mut table = output.table(&mut out, &COLUMNS);
    for answer in answers {
        for group in answer.records.chunk_by(|a, b| {
            (
                a.port,
                &a.service,
                &a.description,
                &a.alias_of,
                &a.renamed_to,
            ) == (
                b.port,
                &b.service,
                &b.description,
                &b.alias_of,
                &b.renamed_to,
            )
        }) {
            table.push(row(group, boxed))?;
        }
    }
    table.finish()?;
    if boxed {
        for (query, answer) in queries.iter().zip(answers) {
            if let Some(missing) = &answer.missing {
                writeln!(out, "{missing}")?;
            } else if let Query::Ports(range) = query {
                if range.is_single() && PortClass::of(range.low) == PortClass::System {
                    writeln!(out, "{} is {}", range.low, PortClass::System.explain())?;
                }
            }
        }
        out.flush()
    } else {
        // Piped: stdout keeps only rows; what was not found goes to stderr.
        let mut err = io::stderr().lock();
        for missing in answers.iter().filter_map(|a| a.missing.as_ref()) {
            let _ = writeln!(err, "portctl: {missing}");
        }
        Ok(())
    }
}

fn row(group: &[ServiceRecord], boxed: bool) -> Vec<Cell> {
    let first = &group[0];
    let protos: Vec<&str> = group
        .iter()
        .map(|r| r.proto.map_or("any", Transport::as_str))
        .collect();
    let mut description = first.description.clone();
    if let Some(range) = &first.registered_range {
        description.push_str(&format!(" (registered for {range})"));
    }
    if let Some(alias) = &first.alias_of {
        description.push_str(&format!(" (historic alias of {alias})"));
    }
    if let Some(new) = &first.renamed_to {
        description.push_str(&format!(" (renamed to {new})"));
    }
    if first.source == Source::Common {
        description.push_str(" [common use, not an IANA registration]");
    }
    let historic = first.alias_of.is_some() || first.renamed_to.is_some();
    vec![
        Cell::new(
            first
                .port
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
        ),
        Cell::new(protos.join(if boxed { ", " } else { "," })),
        Cell::styled(
            first.service.clone(),
            if historic { Style::Dim } else { Style::Bold },
        ),
        Cell::new(first.class.map_or("-", PortClass::as_str)),
        Cell::new(description),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_queries() {
        assert_eq!(
            classify("443").unwrap(),
            Query::Ports(PortRange::single(443))
        );
        assert_eq!(
            classify("6000-6010").unwrap(),
            Query::Ports(PortRange {
                low: 6000,
                high: 6010
            })
        );
        assert_eq!(classify("ssh").unwrap(), Query::Name("ssh".into()));
        assert_eq!(classify("9pfs").unwrap(), Query::Name("9pfs".into()));
        for bad in ["", " ", "-1", "65536", "80-", "9000-8000", "1e3", "a\x1bb"] {
            let err = classify(bad).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn transport_filters_keep_blank_transport_rows() {
        let boe = registry::at_port(6400)
            .find(|e| e.name == "boe-cms")
            .unwrap();
        assert!(wanted(&boe, true, false) && wanted(&boe, false, true));
    }
}
