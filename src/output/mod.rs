//! How data is shown: a table on a terminal, plain columns when piped, JSON
//! on request. Commands build rows of cells or serde values; this module
//! alone decides the format, escapes untrusted text and applies colour.

mod json;
pub mod prometheus;
pub mod rows;
mod sanitize;
mod table;
pub mod words;

pub use json::{story_json, write_array, write_line, JsonArray};
pub use sanitize::{incomplete_utf8_tail, sanitize, sanitize_bytes, sanitize_bytes_lines};
pub use table::{cut, fit, Cell, Chrome, Column, Fit, Style, TextTable};

use crate::exit::{Error, Exit, Result};
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};

/// When to colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The three ways output can look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Boxed, width-aware table for a person at a terminal.
    Table,
    /// Whitespace-separated columns, no header, no colour: for pipes.
    Plain,
    Json,
}

/// The choices made once per run from the flags and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub color: bool,
}

impl Output {
    /// Table on a terminal, plain otherwise; colour only on a terminal and
    /// never with `NO_COLOR` set, unless `--color always`.
    pub fn detect(json: bool, color: ColorChoice) -> Self {
        let tty = io::stdout().is_terminal();
        let format = if json {
            Format::Json
        } else if tty {
            Format::Table
        } else {
            Format::Plain
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorChoice::Always => format == Format::Table,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color && format == Format::Table,
        };
        // crossterm, which comfy-table and ratatui colour through, reads
        // NO_COLOR itself: the choice made here must win over it.
        ratatui::crossterm::style::force_color_output(color);
        Output { format, color }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// A text table (boxed or plain) writing to `out`.
    pub fn table<'a, W: Write>(&self, out: W, columns: &'a [Column]) -> TextTable<'a, W> {
        TextTable::new(out, columns, self.format == Format::Table, self.color)
    }
}

/// A hint for the person at the keyboard, on stderr; failures to write it
/// are ignored since stdout carries the answer.
pub fn hint(message: &str) {
    let _ = writeln!(io::stderr(), "hint: {message}");
}

/// Something a person should know about how the answer was got, on
/// stderr, once.
pub fn note(message: &str) {
    let _ = writeln!(io::stderr(), "note: {message}");
}

/// A non-fatal problem, on stderr.
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr(), "warning: {message}");
}

/// `127.0.0.1:80`, `[::1]:80`; a wildcard peer is `*` as in `ss`.
pub fn endpoint(addr: SocketAddr, peer: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    if peer && addr.port() == 0 {
        format!("{ip}:*")
    } else {
        format!("{ip}:{}", addr.port())
    }
}

/// The answer a command computed, whatever became of printing it: the
/// one place a closed stdout is handled. A reader that went away
/// (`check P | true`, `list | head`) must not turn "in use" into success,
/// nor success into an error. Other output errors are failures.
pub fn deliver(answer: Exit, printed: io::Result<()>) -> Result<Exit> {
    match printed {
        Ok(()) => Ok(answer),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(answer),
        Err(e) => Err(Error::Output(e)),
    }
}

/// The end of every run: a command that streams (`talk`, `list --watch`,
/// `serve`'s lines) and finds its reader gone has said all anyone reads;
/// that is success, as `| head` expects.
pub fn settle(result: Result<Exit>) -> Result<Exit> {
    match result {
        Err(Error::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Exit::Ok),
        other => other,
    }
}

/// Prints the error that ended a run, once, with its causes chained
/// (`error: cannot read the tcp socket table: netlink: ...`), escaped:
/// messages may quote what a peer sent.
pub fn report(error: &Error) {
    let text = match error {
        Error::Stop(refused) => words::refusal(refused),
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(e) = cause {
                text.push_str(": ");
                text.push_str(&e.to_string());
                cause = e.source();
            }
            text
        }
    };
    if !text.is_empty() {
        let _ = writeln!(io::stderr(), "error: {}", sanitize(&text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_bracket_ipv6_and_star_wildcard_peers() {
        assert_eq!(
            endpoint("127.0.0.1:80".parse().unwrap(), false),
            "127.0.0.1:80"
        );
        assert_eq!(endpoint("[::1]:80".parse().unwrap(), false), "[::1]:80");
        assert_eq!(endpoint("0.0.0.0:0".parse().unwrap(), true), "0.0.0.0:*");
    }

    #[test]
    fn a_closed_pipe_keeps_the_answer() {
        let closed = || Err(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(deliver(Exit::Negative, closed()).unwrap(), Exit::Negative);
        assert_eq!(deliver(Exit::Ok, closed()).unwrap(), Exit::Ok);
        let full = Err(io::Error::other("disk full"));
        assert_eq!(deliver(Exit::Ok, full).unwrap_err().exit(), Exit::Failure);
    }
}
