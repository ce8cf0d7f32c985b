//! `portctl completions` and `portctl man`.

mod common;

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
