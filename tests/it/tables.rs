//! Tables on a terminal of 80 and 120 columns: a value is never split
//! across lines, and columns give way in a deliberate order.
// Unix only: it runs portctl on a pseudo-terminal (util-linux script).
#![cfg(unix)]

use crate::common;

use common::{named_listener, on_terminal};

#[test]
#[ignore = "needs script"]
fn narrow_terminals_hide_columns_before_splitting_values() {
    let (mut child, port) = named_listener(b"averyveryverylongprocessname", "::1");
    let endpoint = format!("[::1]:{port}");
    for (columns, service_shown) in [("80", false), ("120", true)] {
        for args in [
            format!("--color never list --port {port}"),
            format!("--color never list -w --port {port}"),
            format!("--color never check --tcp {port}"),
        ] {
            let screen = on_terminal(&args, &[("COLUMNS", columns)]);
            let width: usize = columns.parse().unwrap();
            for line in screen.lines() {
                let line = line.trim_end_matches('\r');
                assert!(
                    line.chars().count() <= width,
                    "{columns} cols, {args}:\n{screen}"
                );
            }
            // The address, port, state and pid stay whole on one line.
            assert!(
                screen.lines().any(|l| l.contains(&endpoint)),
                "{columns} cols, {args}: {endpoint} split:\n{screen}"
            );
            if args.contains("list") {
                assert!(screen.contains("LISTEN") && screen.contains(&child.id().to_string()));
                if !args.contains(" -w") {
                    assert_eq!(
                        screen.contains("SERVICE"),
                        service_shown,
                        "{columns}:\n{screen}"
                    );
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
