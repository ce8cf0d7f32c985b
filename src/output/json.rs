//! JSON arrays written one element at a time, so a list of tens of
//! thousands of sockets never sits in memory as one document. Strings are
//! escaped past what JSON needs: C1 controls and bidirectional controls
//! become `\uXXXX`, so JSON read on a terminal is as safe as text, and
//! still parses to the exact string.

use super::sanitize::needs_escape;
use super::words;
use crate::facts::port_story::{Story, WhoSocket};
use crate::facts::why_busy::{Note, NoteKind};
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
        while let Some(at) = first_escape(rest) {
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

/// Where the first character that needs an escape starts. Printable
/// ASCII, nearly every byte written, is passed over a byte at a time
/// before any character is decoded.
fn first_escape(text: &str) -> Option<usize> {
    let start = text.bytes().position(|b| !matches!(b, b' '..=b'~'))?;
    text[start..].find(needs_escape).map(|at| start + at)
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

/// Every item as one streamed array: the whole output of a command,
/// written in blocks.
pub fn write_array<W: Write, T: Serialize>(
    out: W,
    items: impl IntoIterator<Item = T>,
) -> io::Result<()> {
    let mut array = JsonArray::new(Blocks::new(out));
    for item in items {
        array.push(&item)?;
    }
    array.finish()
}

/// Bytes gathered before a write to the real output.
const BLOCK: usize = 64 * 1024;

/// A write buffer (as `BufWriter`) that copies short pieces with inlined
/// moves instead of a call to `memcpy`. serde_json writes a socket as some
/// forty pieces of a few bytes (keys, values, digits); musl's `memcpy`
/// starts every copy with string instructions (`rep movsq`, `movsb`) whose
/// fixed cost was the largest part of the static build's extra time in
/// `list --json`.
struct Blocks<W: Write> {
    out: W,
    block: Box<[u8]>,
    len: usize,
}

impl<W: Write> Blocks<W> {
    fn new(out: W) -> Self {
        Blocks {
            out,
            block: vec![0; BLOCK].into_boxed_slice(),
            len: 0,
        }
    }

    fn write_block(&mut self) -> io::Result<()> {
        let len = std::mem::take(&mut self.len);
        self.out.write_all(&self.block[..len])
    }
}

impl<W: Write> Write for Blocks<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > BLOCK - self.len {
            self.write_block()?;
            if bytes.len() > BLOCK {
                return self.out.write_all(bytes);
            }
        }
        copy_short(&mut self.block[self.len..self.len + bytes.len()], bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_block()?;
        self.out.flush()
    }
}

/// `dst.copy_from_slice(src)`, in two fixed-size (overlapping) moves when
/// `src` is at most 32 bytes long.
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=8 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        9..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// A note as `--json` shows it: its kind and the sentence `words` makes
/// of it, the same as the text output's.
#[derive(Debug, Clone, Serialize)]
pub struct NoteJson {
    pub kind: NoteKind,
    pub text: String,
}

pub fn note_json(note: &Note) -> NoteJson {
    NoteJson {
        kind: note.kind(),
        text: words::note(note),
    }
}

/// `who --json`: the port, its sockets and its worded notes.
#[derive(Debug, Serialize)]
pub struct StoryJson<'a> {
    pub port: u16,
    pub sockets: &'a [WhoSocket],
    pub notes: Vec<NoteJson>,
}

pub fn story_json(story: &Story) -> StoryJson<'_> {
    StoryJson {
        port: story.port,
        sockets: &story.sockets,
        notes: story.notes.iter().map(note_json).collect(),
    }
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
    fn blocks_keep_every_byte_in_order() {
        let text: Vec<u8> = (0..=255u8).cycle().take(3 * BLOCK).collect();
        let mut out = Vec::new();
        let mut blocks = Blocks::new(&mut out);
        let mut at = 0;
        for n in (0..=40).chain([BLOCK - 7, BLOCK + 1]).cycle() {
            let Some(piece) = text.get(at..at + n) else {
                break;
            };
            blocks.write_all(piece).unwrap();
            at += n;
        }
        blocks.flush().unwrap();
        assert_eq!(out, text[..at]);
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
