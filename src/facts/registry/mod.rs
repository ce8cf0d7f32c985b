//! The IANA Service Name and Transport Protocol Port Number Registry,
//! embedded at build time (see `build.rs`), and its lookups.

mod layout;
#[cfg(test)]
mod load;

pub use layout::Transport;

use crate::model::Proto;
use crate::parse::PortRange;
use serde::{Deserialize, Serialize};
use std::fmt;

impl From<Proto> for Transport {
    fn from(p: Proto) -> Self {
        match p {
            Proto::Tcp => Transport::Tcp,
            Proto::Udp => Transport::Udp,
        }
    }
}

/// How an entry's name stands today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Current,
    /// A historic alias the registry keeps for an older spelling.
    AliasOf(&'static str),
    /// A name IANA has since replaced.
    RenamedTo(&'static str),
}

/// One registry row with a service name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Inclusive; `None` for names registered without a port.
    pub ports: Option<(u16, u16)>,
    /// `None` where the registry leaves the transport blank.
    pub transport: Option<Transport>,
    pub name: &'static str,
    pub description: &'static str,
    pub standing: Standing,
    /// Registered or renamed after the bundled CSV (March 2023).
    pub updated: bool,
    pub source: Source,
}

/// Where an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The IANA registry.
    Iana,
    /// The project's table of common unofficial uses (`data/common-ports.csv`).
    Common,
}

impl Entry {
    pub fn range(&self) -> Option<PortRange> {
        self.ports.map(|(low, high)| PortRange { low, high })
    }

    /// Whether the entry applies to a transport; a blank transport applies
    /// to any.
    pub fn serves(&self, transport: Transport) -> bool {
        self.transport.is_none_or(|t| t == transport)
    }
}

/// An entry as the generated table stores it: integers only, with
/// offsets into one string; the flags as `layout` packs them.
struct Raw {
    low: u16,
    high: u16,
    flags: u8,
    text: [(u32, u16); 3],
}

impl Raw {
    #[allow(clippy::too_many_arguments)] // the generated table's one constructor
    const fn new(
        low: u16,
        high: u16,
        flags: u8,
        n: u32,
        nl: u16,
        d: u32,
        dl: u16,
        o: u32,
        ol: u16,
    ) -> Self {
        Raw {
            low,
            high,
            flags,
            text: [(n, nl), (d, dl), (o, ol)],
        }
    }

    fn str(&self, which: usize) -> &'static str {
        let (at, len) = self.text[which];
        &STRINGS[at as usize..at as usize + len as usize]
    }

    fn entry(&self) -> Entry {
        let standing = match layout::standing(self.flags) {
            layout::ALIAS => Standing::AliasOf(self.str(2)),
            layout::RENAMED => Standing::RenamedTo(self.str(2)),
            _ => Standing::Current,
        };
        Entry {
            ports: (self.flags & layout::HAS_PORT != 0).then_some((self.low, self.high)),
            transport: layout::transport(self.flags),
            name: self.str(0),
            description: self.str(1),
            standing,
            updated: self.flags & layout::UPDATED != 0,
            source: if self.flags & layout::COMMON != 0 {
                Source::Common
            } else {
                Source::Iana
            },
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/registry_table.rs"));

/// RFC 6335 §6 port classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortClass {
    System,
    User,
    Dynamic,
}

impl PortClass {
    pub fn of(port: u16) -> Self {
        match port {
            0..=1023 => PortClass::System,
            1024..=49151 => PortClass::User,
            _ => PortClass::Dynamic,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PortClass::System => "system",
            PortClass::User => "user",
            PortClass::Dynamic => "dynamic",
        }
    }

    /// A sentence a person can act on.
    pub fn explain(self) -> &'static str {
        match self {
            PortClass::System if crate::platform::privileged_ports() => {
                "a system port (0-1023): binding it needs root or CAP_NET_BIND_SERVICE"
            }
            PortClass::System => {
                "a system port (0-1023), assigned by IANA; any user may bind it on this OS"
            }
            PortClass::User => "a user port (1024-49151), registered with IANA on request",
            PortClass::Dynamic => {
                "a dynamic port (49152-65535): never registered, used for ephemeral connections"
            }
        }
    }
}

impl fmt::Display for PortClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn with_port() -> &'static [Raw] {
    &RAW[..WITH_PORT]
}

/// Range entries overlapping `low..=high`.
fn ranges_over(low: u16, high: u16) -> impl Iterator<Item = &'static Raw> {
    RANGES
        .iter()
        .filter(move |&&(l, h, _)| l <= high && low <= h)
        .map(|&(_, _, i)| &RAW[usize::from(i)])
}

/// Every entry covering `port`, single-port entries in registry order (the
/// primary name first), then ranges.
pub fn at_port(port: u16) -> impl Iterator<Item = Entry> {
    // The last PORT_INDEX row only marks the end, never a port of its own.
    let ports = &PORT_INDEX[..PORT_INDEX.len() - 1];
    let exact = match ports.binary_search_by_key(&port, |&(p, _)| p) {
        Ok(i) => &RAW[usize::from(PORT_INDEX[i].1)..usize::from(PORT_INDEX[i + 1].1)],
        Err(_) => &RAW[..0],
    };
    let ranges = ranges_over(port, port).filter(move |r| r.low < port);
    exact.iter().chain(ranges).map(Raw::entry)
}

/// Every (port, entry) pair inside `range`, in port order.
pub fn in_range(range: PortRange) -> Vec<(u16, Entry)> {
    let ranges: Vec<&Raw> = ranges_over(range.low, range.high).collect();
    let raw = with_port();
    let start = raw.partition_point(|r| r.low < range.low);
    let mut singles = raw[start..]
        .iter()
        .take_while(|r| r.low <= range.high)
        .filter(|r| r.low == r.high)
        .peekable();
    let mut out = Vec::new();
    for port in range.ports() {
        while let Some(r) = singles.next_if(|r| r.low == port) {
            out.push((port, r.entry()));
        }
        for r in ranges.iter().filter(|r| r.low <= port && port <= r.high) {
            out.push((port, r.entry()));
        }
    }
    out
}

/// Compares a registry name with a lowercase key, ignoring ASCII case.
fn cmp_name(name: &str, lowercase_key: &str) -> std::cmp::Ordering {
    name.bytes()
        .map(|b| b.to_ascii_lowercase())
        .cmp(lowercase_key.bytes())
}

/// Every entry with this service name, case-insensitively.
pub fn named(name: &str) -> impl Iterator<Item = Entry> {
    let key = name.to_ascii_lowercase();
    // The index holds each name's place in STRINGS, so the search reads
    // only the index and the names, not RAW.
    let name_of = |&(packed, _): &(u32, u16)| {
        let (at, len) = layout::name_span(packed);
        &STRINGS[at..at + len]
    };
    let start = BY_NAME.partition_point(|e| cmp_name(name_of(e), &key).is_lt());
    BY_NAME[start..]
        .iter()
        .take_while(move |e| cmp_name(name_of(e), &key).is_eq())
        .map(|&(_, i)| RAW[usize::from(i)].entry())
}

/// The current service name for a port and transport, for labelling
/// sockets: the first non-historic registry entry, else a common use.
pub fn service_name(port: u16, transport: Transport) -> Option<&'static str> {
    at_port(port)
        .find(|e| e.serves(transport) && e.standing == Standing::Current)
        .map(|e| e.name)
}

/// Entries with a port whose name or description contains `word`
/// (case-insensitive), in port order.
pub fn search(word: &str) -> Vec<Entry> {
    let word = word.to_lowercase();
    with_port()
        .iter()
        .map(Raw::entry)
        .filter(|e| {
            e.name.to_lowercase().contains(&word) || e.description.to_lowercase().contains(&word)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_443_over_tcp_udp_and_sctp() {
        let entries: Vec<_> = at_port(443).filter(|e| e.name == "https").collect();
        let transports: Vec<_> = entries.iter().filter_map(|e| e.transport).collect();
        assert_eq!(
            transports,
            [Transport::Tcp, Transport::Udp, Transport::Sctp]
        );
    }

    #[test]
    fn primary_name_comes_first_and_aliases_are_marked() {
        let at_80: Vec<_> = at_port(80)
            .filter(|e| e.transport == Some(Transport::Tcp))
            .collect();
        assert_eq!(at_80[0].name, "http");
        assert!(at_80
            .iter()
            .any(|e| e.name == "www" && e.standing == Standing::AliasOf("http")));
    }

    #[test]
    fn ranges_cover_their_ports() {
        assert!(at_port(6005).any(|e| e.name == "x11"));
        assert!(!at_port(6064).any(|e| e.name == "x11"));
        let found = in_range(PortRange {
            low: 6062,
            high: 6064,
        });
        assert!(found.iter().any(|(p, e)| *p == 6063 && e.name == "x11"));
        assert!(!found.iter().any(|(p, e)| *p == 6064 && e.name == "x11"));
    }

    #[test]
    fn unassigned_and_dynamic_ports_have_no_entries() {
        assert_eq!(at_port(4).count(), 0, "4 is Unassigned");
        assert_eq!(at_port(60000).count(), 0);
    }

    #[test]
    fn overlay_knows_newer_registrations() {
        let ollama: Vec<_> = at_port(11434).collect();
        assert_eq!(ollama[0].name, "ollama");
        assert!(ollama[0].updated);
        let renamed = at_port(1980).find(|e| e.name == "pearldoc-xact").unwrap();
        assert_eq!(renamed.standing, Standing::RenamedTo("panquest-xact"));
        assert_eq!(service_name(1980, Transport::Tcp), Some("panquest-xact"));
    }

    #[test]
    fn names_are_case_insensitive_and_portless_names_exist() {
        assert!(named("SSH").any(|e| e.ports == Some((22, 22))));
        let argus: Vec<_> = named("argus").collect();
        assert!(!argus.is_empty() && argus.iter().all(|e| e.ports.is_none()));
        assert_eq!(named("no-such-service-here").count(), 0);
    }

    #[test]
    fn common_uses_follow_the_registry() {
        let at_3000: Vec<_> = at_port(3000).collect();
        assert_eq!(at_3000[0].source, Source::Iana);
        assert!(at_3000
            .iter()
            .any(|e| e.source == Source::Common && e.name == "web-dev-server"));
        assert!(named("sftp").any(|e| e.ports == Some((22, 22)) && e.source == Source::Common));
        assert!(at_port(443).any(|e| e.name == "quic" && e.transport == Some(Transport::Udp)));
        assert!(search("elasticsearch")
            .iter()
            .any(|e| e.ports == Some((9200, 9200))));
    }

    #[test]
    fn classes_follow_rfc_6335() {
        assert_eq!(PortClass::of(1023), PortClass::System);
        assert_eq!(PortClass::of(1024), PortClass::User);
        assert_eq!(PortClass::of(49151), PortClass::User);
        assert_eq!(PortClass::of(49152), PortClass::Dynamic);
    }
}
