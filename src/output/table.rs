//! Rows of cells shown either as a comfy-table (terminal) or as plain,
//! whitespace-separated columns streamed as they come (pipes).

use super::sanitize::sanitize;
use comfy_table::{presets, Attribute, ContentArrangement, Table};
use std::io::{self, Write};

/// A column: its heading, and the width plain output pads it to so that
/// columns line up without buffering every row.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub plain_width: usize,
}

impl Column {
    pub const fn new(title: &'static str, plain_width: usize) -> Self {
        Column { title, plain_width }
    }
}

/// What a cell's colour means; the output layer picks the colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    #[default]
    Normal,
    Dim,
    Good,
    Bad,
    Warn,
    Bold,
}

/// One value in a row. The text is untrusted until the table escapes it.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    pub style: Style,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            style: Style::Normal,
        }
    }

    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Cell {
            text: text.into(),
            style,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::new(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::new(text)
    }
}

enum Sink {
    Boxed(Box<Table>),
    Plain,
}

/// A table being written; call `finish` to flush it.
pub struct TextTable<'a, W: Write> {
    out: W,
    columns: &'a [Column],
    sink: Sink,
    color: bool,
}

impl<'a, W: Write> TextTable<'a, W> {
    pub fn new(out: W, columns: &'a [Column], boxed: bool, color: bool) -> Self {
        let sink = if boxed {
            let mut table = Table::new();
            table
                .load_style(presets::UTF8_FULL_CONDENSED.with_rounded_corners())
                .set_content_arrangement(ContentArrangement::Dynamic);
            if !color {
                table.force_no_tty();
            }
            table.set_width(terminal_width());
            let header: Vec<comfy_table::Cell> = columns
                .iter()
                .map(|c| {
                    let cell = comfy_table::Cell::new(c.title);
                    if color {
                        cell.add_attribute(Attribute::Bold)
                    } else {
                        cell
                    }
                })
                .collect();
            table.set_header(header);
            Sink::Boxed(Box::new(table))
        } else {
            Sink::Plain
        };
        TextTable {
            out,
            columns,
            sink,
            color,
        }
    }

    pub fn push(&mut self, cells: Vec<Cell>) -> io::Result<()> {
        match &mut self.sink {
            Sink::Boxed(table) => {
                let color = self.color;
                table.add_row(cells.into_iter().map(|c| boxed_cell(c, color)));
                Ok(())
            }
            Sink::Plain => write_plain_row(&mut self.out, self.columns, &cells),
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Sink::Boxed(table) = &self.sink {
            if !table.is_empty() {
                writeln!(self.out, "{table}")?;
            }
        }
        self.out.flush()
    }
}

/// The width to wrap a table to, asked of stdout here: comfy-table's own
/// lookup opens /dev/tty and, failing that, runs `tput`, and portctl starts
/// no programs. A pseudo-terminal may report no width (0 columns): then
/// COLUMNS, then 100, rather than one character per line.
fn terminal_width() -> u16 {
    let usable = |w: &u16| *w >= 20;
    terminal_size::terminal_size_of(io::stdout())
        .map(|(width, _)| width.0)
        .filter(usable)
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok().filter(usable))
        .unwrap_or(100)
}

fn boxed_cell(cell: Cell, color: bool) -> comfy_table::Cell {
    use comfy_table::Color;
    let text = sanitize(&cell.text).into_owned();
    let out = comfy_table::Cell::new(text);
    if !color {
        return out;
    }
    match cell.style {
        Style::Normal => out,
        Style::Dim => out.fg(Color::DarkGrey),
        Style::Good => out.fg(Color::Green),
        Style::Bad => out.fg(Color::Red),
        Style::Warn => out.fg(Color::Yellow),
        Style::Bold => out.add_attribute(Attribute::Bold),
    }
}

/// Columns padded to their plain width and joined by a space; an empty
/// value is `-` and spaces inside any column but the last are escaped, so
/// `awk '{print $2}'` always finds the same column.
fn write_plain_row<W: Write>(out: &mut W, columns: &[Column], cells: &[Cell]) -> io::Result<()> {
    let last = cells.len().saturating_sub(1);
    let mut line = String::with_capacity(96);
    for (i, cell) in cells.iter().enumerate() {
        let text = sanitize(&cell.text);
        let text: &str = if text.is_empty() { "-" } else { &text };
        if i == last {
            line.push_str(text);
        } else {
            let start = line.len();
            for c in text.chars() {
                if c == ' ' {
                    line.push_str("\\x20");
                } else {
                    line.push(c);
                }
            }
            let width = columns.get(i).map_or(0, |c| c.plain_width);
            let written = line[start..].chars().count();
            line.extend(std::iter::repeat_n(' ', width.saturating_sub(written) + 1));
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [
        Column::new("A", 4),
        Column::new("B", 6),
        Column::new("C", 0),
    ];

    fn render(boxed: bool, rows: &[[&str; 3]]) -> String {
        let mut buf = Vec::new();
        let mut table = TextTable::new(&mut buf, &COLUMNS, boxed, false);
        for row in rows {
            table
                .push(row.iter().map(|s| Cell::new(*s)).collect())
                .unwrap();
        }
        table.finish().unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn plain_rows_keep_their_columns() {
        let text = render(false, &[["tcp", "", "two words"], ["a b", "\x1b[2J", "x"]]);
        assert_eq!(text, "tcp  -      two words\na\\x20b \\e[2J  x\n");
        for line in text.lines() {
            assert!(line.split_whitespace().count() >= 3);
        }
    }

    #[test]
    fn boxed_tables_have_headers_and_no_raw_escapes() {
        let text = render(true, &[["tcp", "\x1b]0;x\x07", "c"]]);
        assert!(text.contains('A') && text.contains("tcp"));
        assert!(!text.contains('\x1b'));
    }
}
