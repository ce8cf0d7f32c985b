//! JSON arrays written one element at a time, so a list of tens of
//! thousands of sockets never sits in memory as one document. Strings are
//! escaped past what JSON needs: C1 controls and bidirectional controls
//! become `\uXXXX`, so JSON read on a terminal is as safe as text, and
//! still parses to the exact string.

use super::sanitize::needs_escape;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};
use std::io::{self, Write};

/// serde_json's compact output, with every character that could drive or
/// reorder a terminal written as a `\u` escape (JSON itself escapes only
/// C0 controls).
struct TerminalSafe;

impl Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(needs_escape) {
            out.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(out, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        CompactFormatter.write_string_fragment(out, rest)
    }
}

fn to_writer<W: Write, T: Serialize + ?Sized>(out: W, item: &T) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, TerminalSafe);
    item.serialize(&mut serializer).map_err(io::Error::from)
}

/// A streaming `[ ... ]` of serde values.
pub struct JsonArray<W: Write> {
    out: W,
    empty: bool,
}

impl<W: Write> JsonArray<W> {
    pub fn new(out: W) -> Self {
        JsonArray { out, empty: true }
    }

    pub fn push<T: Serialize>(&mut self, item: &T) -> io::Result<()> {
        self.out
            .write_all(if self.empty { b"[\n  " } else { b",\n  " })?;
        self.empty = false;
        to_writer(&mut self.out, item)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out
            .write_all(if self.empty { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

/// Every item as one streamed array: the whole output of a command.
pub fn write_array<W: Write, T: Serialize>(
    out: W,
    items: impl IntoIterator<Item = T>,
) -> io::Result<()> {
    let mut array = JsonArray::new(out);
    for item in items {
        array.push(&item)?;
    }
    array.finish()
}

/// One JSON value on its own line (events, single results).
pub fn write_line<W: Write, T: Serialize>(mut out: W, item: &T) -> io::Result<()> {
    to_writer(&mut out, item)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped_and_round_trip() {
        let hostile = "a\u{202e}b\u{9b}31m\u{1b}c\u{2066}é";
        let mut buf = Vec::new();
        write_line(&mut buf, &hostile).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{9b}'),
            "{text}"
        );
        assert!(
            text.contains("\\u202e") && text.contains("\\u009b"),
            "{text}"
        );
        assert!(text.contains('é'));
        let back: String = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn empty_and_full_arrays_parse() {
        let mut buf = Vec::new();
        JsonArray::new(&mut buf).finish().unwrap();
        assert_eq!(
            serde_json::from_slice::<Vec<u32>>(&buf).unwrap(),
            Vec::<u32>::new()
        );
        let mut buf = Vec::new();
        let mut array = JsonArray::new(&mut buf);
        for i in 0..3u32 {
            array.push(&i).unwrap();
        }
        array.finish().unwrap();
        assert_eq!(
            serde_json::from_slice::<Vec<u32>>(&buf).unwrap(),
            vec![0, 1, 2]
        );
    }
}
