//! What `deploy/` gives a fleet, checked with the tools a fleet runs: the
//! alert rules and their unit tests with promtool, a real scrape with
//! `promtool check metrics`, and the DaemonSet's least privilege. (The
//! image itself is built, run and scraped by `scripts/check-image.sh`,
//! after `scripts/package.sh` has made the static binary it holds.)

use crate::common;

use common::{require_program, run};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

#[track_caller]
fn promtool(args: &[&str], input: Option<&[u8]>) -> String {
    require_program("promtool", "--version", "apt-get install prometheus");
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        std::io::Write::write_all(&mut stdin, input).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
#[ignore = "needs prometheus"]
fn the_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "rules.yml"], None);
    let tested = promtool(&["test", "rules", "rules_test.yml"], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
    promtool(&["check", "config", "prometheus.yml"], None);
    // Every alert of the rules has tests, firing and not.
    let rules = std::fs::read_to_string(deploy("prometheus/rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/rules_test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} untested"
        );
    }
}

#[test]
#[ignore = "needs prometheus"]
fn a_real_scrape_passes_promtool_check_metrics() {
    let out = run(&["metrics"]);
    assert!(out.status.success());
    promtool(&["check", "metrics"], Some(&out.stdout));
}

/// The DaemonSet asks for the host's view and the two capabilities that
/// name other users' processes, and nothing more.
#[test]
fn the_daemonset_takes_the_least_privilege_that_names_owners() {
    let daemonset = std::fs::read_to_string(deploy("kubernetes/daemonset.yaml")).unwrap();
    let code: Vec<&str> = daemonset
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect();
    for wanted in [
        "kind: DaemonSet",
        "hostPID: true",
        "hostNetwork: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "privileged: false",
        "prometheus.io/scrape: \"true\"",
    ] {
        assert!(code.contains(&wanted), "{wanted} missing");
    }
    let added: Vec<&str> = code
        .iter()
        .skip_while(|l| **l != "add:")
        .skip(1)
        .take_while(|l| l.starts_with("- "))
        .copied()
        .collect();
    assert_eq!(added, ["- SYS_PTRACE", "- DAC_READ_SEARCH"], "{daemonset}");
    assert!(
        code.contains(&"drop: [\"ALL\"]") || (code.contains(&"drop:") && code.contains(&"- ALL")),
        "not every other capability is dropped"
    );
    assert!(
        code.iter().any(|l| l.starts_with("memory:")),
        "no resource limits"
    );
}
