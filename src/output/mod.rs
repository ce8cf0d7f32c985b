//! How data is shown: a table on a terminal, plain columns when piped, JSON
//! on request. Commands build rows of cells or serde values; this module
//! alone decides the format, escapes untrusted text and applies colour.

mod json;
mod sanitize;
mod table;

pub use json::{write_array, write_line, JsonArray};
pub use sanitize::{sanitize, sanitize_bytes};
pub use table::{Cell, Column, Style, TextTable};

use crate::cli::ColorChoice;
use std::io::{self, IsTerminal, Write};

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

/// A non-fatal problem, on stderr.
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr(), "warning: {message}");
}
