//! `portctl completions` and `portctl man`.

use crate::common;

use common::{assert_exit, assert_usage_error, run, stdout};

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_exit(&out, 0);
        let script = stdout(&out);
        assert!(
            script.contains("portctl") && script.contains("whatis"),
            "{shell}"
        );
    }
    assert_usage_error(&run(&["completions", "tcsh"]), "tcsh");
}

#[test]
fn man_page_is_roff() {
    let out = run(&["man"]);
    assert_exit(&out, 0);
    let page = stdout(&out);
    assert!(page.contains(".TH portctl"), "{page}");
    assert!(page.contains("whatis") && page.contains("serve"));
}

/// Each subcommand's help opens with the line `portctl --help` lists for it
/// (clap builds subcommands lazily; a flattened doc comment must not take
/// that place).
#[test]
fn every_subcommand_help_opens_with_its_summary() {
    let top = stdout(&run(&["--help"]));
    let commands = top
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands section");
    let mut seen = 0;
    for line in commands.lines() {
        let (name, summary) = line.trim().split_once(char::is_whitespace).unwrap();
        if name == "help" {
            continue;
        }
        let help = stdout(&run(&[name, "--help"]));
        assert_eq!(
            help.lines().next(),
            Some(summary.trim()),
            "portctl {name} --help"
        );
        seen += 1;
    }
    assert!(seen >= 10, "{top}");
}
