//! JSON arrays written one element at a time, so a list of tens of
//! thousands of sockets never sits in memory as one document.

use serde::Serialize;
use std::io::{self, Write};

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
        serde_json::to_writer(&mut self.out, item).map_err(io::Error::from)
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
    serde_json::to_writer(&mut out, item).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

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
