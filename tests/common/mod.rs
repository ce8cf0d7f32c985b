//! Shared helpers for the integration tests: run the real binary with a
//! clean environment and read its output.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::process::{Command, Output, Stdio};

/// The real portctl binary, with an environment that cannot leak colour
/// or terminal settings into the assertions.
pub fn portctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portctl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// Runs portctl with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    portctl().args(args).output().expect("run portctl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts a usage error: exit 2, exactly one `error:` line naming `value`,
/// and no panic.
#[track_caller]
pub fn assert_usage_error(out: &Output, value: &str) {
    assert_exit(out, 2);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(value), "'{value}' not named in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}
