//! How `talk` shows what a server said, as it arrives: raw bytes to a
//! pipe, escaped text to a terminal, objects in a JSON array. At most a
//! fixed amount of one reply is held, however long it runs.

use crate::output::{incomplete_utf8_tail, sanitize_bytes, JsonArray, Output};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};

/// A JSON reply longer than this is printed as several objects, all but
/// the last marked `partial`.
const JSON_PIECE: usize = 64 * 1024;

/// What a server's words answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// Sent on connect, before any message.
    Greeting,
    /// The answer to a message.
    Reply,
}

impl PartialEq<&str> for ExchangeKind {
    fn eq(&self, other: &&str) -> bool {
        matches!(
            (self, *other),
            (ExchangeKind::Greeting, "greeting") | (ExchangeKind::Reply, "reply")
        )
    }
}

/// One thing the server said, as `talk --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub kind: ExchangeKind,
    /// The message this answers; `null` for a greeting.
    pub sent: Option<String>,
    /// What came back (invalid UTF-8 replaced).
    pub data: String,
    /// More of the same reply follows in the next object.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

pub struct Printer<W: Write> {
    out: Option<W>,
    json: Option<JsonArray<W>>,
    terminal: bool,
    kind: ExchangeKind,
    sent: Option<String>,
    /// Bytes not printed yet: a trailing line end (dropped if the reply
    /// ends there), an incomplete UTF-8 character, or a JSON piece.
    held: Vec<u8>,
    started: bool,
}

impl<W: Write> Printer<W> {
    /// Prints to `out`, escaping for a terminal when `terminal`.
    pub fn new(out: W, output: Output, terminal: bool) -> Self {
        let (out, json) = if output.is_json() {
            (None, Some(JsonArray::new(out)))
        } else {
            (Some(out), None)
        };
        Printer {
            out,
            json,
            terminal,
            kind: ExchangeKind::Reply,
            sent: None,
            held: Vec::new(),
            started: false,
        }
    }

    /// A new reply starts.
    pub fn begin(&mut self, kind: ExchangeKind, sent: Option<&[u8]>) {
        self.kind = kind;
        self.sent = sent.map(|s| String::from_utf8_lossy(s).into_owned());
        self.held.clear();
        self.started = false;
    }

    /// The next bytes of the reply.
    pub fn piece(&mut self, bytes: &[u8]) -> io::Result<()> {
        // An empty datagram is a reply too: it gets its (empty) line.
        self.started = true;
        self.held.extend_from_slice(bytes);
        if self.json.is_some() {
            if self.held.len() >= JSON_PIECE {
                let rest = self.held.split_off(JSON_PIECE);
                self.push_json(true)?;
                self.held = rest;
            }
            return Ok(());
        }
        let keep = self.tail_to_hold();
        let cut = self.held.len() - keep;
        self.write_text(cut, false)?;
        self.held.drain(..cut);
        Ok(())
    }

    /// The reply is over: what is held is printed, without its line end,
    /// and the reply gets a line of its own.
    pub fn end(&mut self) -> io::Result<()> {
        if !self.started {
            return Ok(());
        }
        let body = strip_line_end(&self.held).len();
        self.held.truncate(body);
        if self.json.is_some() {
            self.push_json(false)?;
        } else {
            self.write_text(body, true)?;
        }
        self.held.clear();
        self.started = false;
        Ok(())
    }

    pub fn finish(self) -> io::Result<()> {
        match self.json {
            Some(json) => json.finish(),
            None => Ok(()),
        }
    }

    /// How many bytes at the end of `held` must wait for the next piece.
    fn tail_to_hold(&self) -> usize {
        let line_end = self.held.len() - strip_line_end(&self.held).len();
        let before = &self.held[..self.held.len() - line_end];
        let partial_char = if self.terminal {
            incomplete_utf8_tail(before)
        } else {
            0
        };
        line_end + partial_char
    }

    /// Writes the first `len` held bytes (and a line end when the reply
    /// is over).
    fn write_text(&mut self, len: usize, end: bool) -> io::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let text = &self.held[..len];
        if self.terminal {
            out.write_all(sanitize_bytes(text).as_bytes())?;
        } else {
            out.write_all(text)?;
        }
        if end {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn push_json(&mut self, partial: bool) -> io::Result<()> {
        let exchange = Exchange {
            kind: self.kind,
            sent: self.sent.clone(),
            data: String::from_utf8_lossy(&self.held).into_owned(),
            partial,
        };
        self.held.clear();
        match &mut self.json {
            Some(json) => json.push(&exchange),
            None => Ok(()),
        }
    }
}

/// A reply without the one line end (`\n`, `\r\n` or `\r`) that closes it.
fn strip_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_stripped_once() {
        assert_eq!(strip_line_end(b"hi\r\n"), b"hi");
        assert_eq!(strip_line_end(b"hi\n\n"), b"hi\n");
        assert_eq!(strip_line_end(b"hi\r"), b"hi");
        assert_eq!(strip_line_end(b"hi"), b"hi");
    }
}
