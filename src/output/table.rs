//! Rows of cells shown either as a comfy-table (terminal) or as plain,
//! whitespace-separated columns streamed as they come (pipes).
//!
//! On a narrow terminal a table gives way in a deliberate order instead of
//! breaking values across lines: columns that may go are hidden first
//! (lowest `Fit::Drop` first), then names are cut with `…`, then free text
//! wraps; an address, a port, a state or a PID is never split.

use super::sanitize::sanitize;
use comfy_table::{presets, Attribute, ColumnConstraint, ContentArrangement, Table};
use std::io::{self, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A column: its heading, the width plain output pads it to so that
/// columns line up without buffering every row, and how it gives way on a
/// narrow terminal.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub plain_width: usize,
    pub fit: Fit,
}

/// How a column gives way when the terminal is too narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never split or cut: addresses, ports, states, PIDs.
    Keep,
    /// Hidden when the table does not fit, lowest first.
    Drop(u8),
    /// Cut with `…` (names), after every droppable column is gone.
    Truncate,
    /// Free text that may wrap, last of all.
    Wrap,
}

impl Column {
    pub const fn new(title: &'static str, plain_width: usize) -> Self {
        Column {
            title,
            plain_width,
            fit: Fit::Keep,
        }
    }

    /// The same column, giving way as `fit` says.
    pub const fn fit(self, fit: Fit) -> Self {
        Column { fit, ..self }
    }
}

/// The narrowest a cut column gets, `…` included.
const MIN_CUT: usize = 8;

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
    /// Rows kept until `finish`, when the layout is decided.
    Boxed(Vec<Vec<Cell>>),
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
            Sink::Boxed(Vec::new())
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
            Sink::Boxed(rows) => {
                rows.push(cells);
                Ok(())
            }
            Sink::Plain => write_plain_row(&mut self.out, self.columns, &cells),
        }
    }

    /// Sends what plain rows were written so far on to the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Sink::Boxed(rows) = &mut self.sink {
            if !rows.is_empty() {
                let table = layout(self.columns, rows, terminal_width().into(), self.color);
                writeln!(self.out, "{table}")?;
            }
        }
        self.out.flush()
    }
}

/// What a table draws around each shown column beyond its text, and
/// once around the whole.
#[derive(Debug, Clone, Copy)]
pub struct Chrome {
    pub per_column: usize,
    pub frame: usize,
}

/// comfy-table's boxes: a space either side and a border per column, one
/// more border at the end.
const BOXED: Chrome = Chrome {
    per_column: 3,
    frame: 1,
};

/// How a table fits its width: which columns show and how wide each is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub shown: Vec<bool>,
    pub widths: Vec<usize>,
}

/// Escapes `rows` and decides how they fit in `width` columns, giving way
/// as each column's `Fit` says: droppable columns are hidden (lowest
/// first), then `Truncate` cells are cut with `…`. The printed tables and
/// `top` follow the same decision.
pub fn fit(columns: &[Column], rows: &mut [Vec<Cell>], width: usize, chrome: Chrome) -> Fitted {
    for row in rows.iter_mut() {
        for cell in row.iter_mut() {
            cell.text = sanitize(&cell.text).into_owned();
        }
    }
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.text.width())
                .chain([c.title.width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let needed = |shown: &[bool], widths: &[usize]| -> usize {
        chrome.frame
            + (0..columns.len())
                .filter(|&i| shown[i])
                .map(|i| widths[i] + chrome.per_column)
                .sum::<usize>()
    };
    let mut shown = vec![true; columns.len()];
    let mut widths = natural.clone();
    let mut droppable: Vec<(u8, usize)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.fit {
            Fit::Drop(order) => Some((order, i)),
            _ => None,
        })
        .collect();
    droppable.sort_unstable();
    for (_, i) in droppable {
        if needed(&shown, &widths) <= width {
            break;
        }
        shown[i] = false;
    }
    for (i, c) in columns.iter().enumerate() {
        let over = needed(&shown, &widths).saturating_sub(width);
        if over > 0 && c.fit == Fit::Truncate && shown[i] {
            widths[i] = widths[i].saturating_sub(over).max(MIN_CUT.min(natural[i]));
            for row in rows.iter_mut() {
                if let Some(cell) = row.get_mut(i) {
                    cell.text = cut(&cell.text, widths[i]);
                }
            }
        }
    }
    Fitted { shown, widths }
}

/// The narrowest `Fitted::clip` cuts a column: a character and `…`.
const MIN_CLIP: usize = 2;

impl Fitted {
    /// For a table that can neither wrap nor squeeze a column (top's):
    /// what `fit` could not make fit is left off. A column too wide for
    /// the room left is left off whole, and the columns after it still get
    /// their chance; a `Truncate` column then takes whatever room is left
    /// (at least `MIN_CLIP`), its cells cut with `…`. Never cut: the rest.
    pub fn clip(
        mut self,
        columns: &[Column],
        rows: &mut [Vec<Cell>],
        width: usize,
        chrome: Chrome,
    ) -> Fitted {
        let truncate = |i: usize| columns.get(i).is_some_and(|c| c.fit == Fit::Truncate);
        let least = |i: usize, widths: &[usize]| {
            if truncate(i) {
                MIN_CLIP.min(widths[i])
            } else {
                widths[i]
            }
        };
        let mut room = width.saturating_sub(chrome.frame);
        for i in 0..self.shown.len() {
            let need = least(i, &self.widths) + chrome.per_column;
            if self.shown[i] && need <= room {
                room -= need;
            } else {
                self.shown[i] = false;
            }
        }
        for i in (0..self.shown.len()).filter(|&i| self.shown[i] && truncate(i)) {
            let least = least(i, &self.widths);
            let grown = (least + room).min(self.widths[i]);
            room -= grown - least;
            if grown < self.widths[i] {
                self.widths[i] = grown;
                for row in rows.iter_mut() {
                    if let Some(cell) = row.get_mut(i) {
                        cell.text = cut(&cell.text, grown);
                    }
                }
            }
        }
        self
    }
}

/// The comfy-table for `rows` in `width` columns, fitted by `fit`.
fn layout(columns: &[Column], rows: &mut [Vec<Cell>], width: usize, color: bool) -> Table {
    let Fitted { shown, .. } = fit(columns, rows, width, BOXED);
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !color {
        table.force_no_tty();
    }
    table.set_width(u16::try_from(width).unwrap_or(u16::MAX));
    table.set_header(columns.iter().map(|c| {
        let cell = comfy_table::Cell::new(c.title);
        if color {
            cell.add_attribute(Attribute::Bold)
        } else {
            cell
        }
    }));
    for row in rows.iter_mut() {
        table.add_row(
            std::mem::take(row)
                .into_iter()
                .map(|c| boxed_cell(c, color)),
        );
    }
    table.set_constraints(columns.iter().enumerate().map(|(i, c)| {
        if !shown[i] {
            ColumnConstraint::Hidden
        } else if c.fit == Fit::Wrap {
            ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(
                u16::try_from(MIN_CUT).unwrap_or(8),
            ))
        } else {
            ColumnConstraint::ContentWidth
        }
    }));
    table
}

/// `text` in at most `width` screen columns (a CJK character takes two),
/// ending in `…` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let Some(room) = width.checked_sub(1) else {
        return String::new();
    };
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        used += c.width().unwrap_or(0);
        if used > room {
            break;
        }
        out.push(c);
    }
    // A string's width is not always the sum of its characters' (emoji
    // sequences): measure what was kept as a whole.
    while out.width() > room {
        out.pop();
    }
    out.push('…');
    out
}

/// The width to wrap a table to, asked of stdout (`platform`):
/// comfy-table's own lookup opens /dev/tty and, failing that, runs `tput`,
/// and portctl starts no programs. A pseudo-terminal may report no width
/// (0 columns): then COLUMNS, then 100, rather than one character per
/// line.
fn terminal_width() -> u16 {
    let usable = |w: &u16| *w >= 20;
    crate::platform::stdout_width()
        .filter(usable)
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok().filter(usable))
        .unwrap_or(100)
}

/// A cell whose text is already escaped.
fn boxed_cell(cell: Cell, color: bool) -> comfy_table::Cell {
    use comfy_table::Color;
    let out = comfy_table::Cell::new(cell.text);
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
            let written = line[start..].width();
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
    fn narrow_tables_give_way_in_order_and_never_split_values() {
        const LIST: [Column; 5] = [
            Column::new("LOCAL", 0),
            Column::new("SERVICE", 0).fit(Fit::Drop(1)),
            Column::new("USER", 0).fit(Fit::Drop(2)),
            Column::new("PROCESS", 0).fit(Fit::Truncate),
            Column::new("NOTE", 0).fit(Fit::Wrap),
        ];
        let row = || {
            vec![
                Cell::new("[2001:db8:85a3::8a2e:370:7334]:65535"),
                Cell::new("kerberos-adm"),
                Cell::new("postgres"),
                Cell::new("a-very-long-process-name"),
                Cell::new("some words that may wrap"),
            ]
        };
        for (width, hidden, cut_name) in [(140, 0, false), (110, 1, false), (80, 2, true)] {
            let mut rows = vec![row(), row()];
            let text = layout(&LIST, &mut rows, width, false).to_string();
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line}");
            }
            assert!(
                text.contains("[2001:db8:85a3::8a2e:370:7334]:65535"),
                "{text}"
            );
            let present = ["SERVICE", "USER"]
                .iter()
                .filter(|t| text.contains(*t))
                .count();
            assert_eq!(present, 2 - hidden, "{width}:\n{text}");
            assert_eq!(text.contains('…'), cut_name, "{width}:\n{text}");
        }
    }

    #[test]
    fn clip_skips_what_does_not_fit_and_cuts_only_names() {
        const TOP: [Column; 5] = [
            Column::new("LOCAL", 0),
            Column::new("REMOTE", 0),
            Column::new("STATE", 0),
            Column::new("PID", 0),
            Column::new("PROCESS", 0).fit(Fit::Truncate),
        ];
        const SPACED: Chrome = Chrome {
            per_column: 1,
            frame: 0,
        };
        let long = "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:40000";
        let clipped = |width: usize| {
            let mut rows = vec![[long, long, "ESTABLISHED", "4242", "postgres"]
                .map(Cell::new)
                .to_vec()];
            let fitted = fit(&TOP, &mut rows, width, SPACED).clip(&TOP, &mut rows, width, SPACED);
            let shown: Vec<&str> = rows[0]
                .iter()
                .zip(&fitted.shown)
                .filter(|(_, shown)| **shown)
                .map(|(cell, _)| cell.text.as_str())
                .collect();
            let used: usize = (0..TOP.len())
                .filter(|&i| fitted.shown[i])
                .map(|i| fitted.widths[i] + 1)
                .sum();
            assert!(used <= width, "{width}: {fitted:?}");
            shown.join(" ")
        };
        // REMOTE does not fit: it goes, and what follows it stays.
        assert_eq!(clipped(95), format!("{long} ESTABLISHED 4242 postgres"));
        // The name takes what is left, cut with `…`.
        assert_eq!(clipped(70), format!("{long} ESTABLISHED 4242 pos…"));
        assert_eq!(clipped(68), format!("{long} ESTABLISHED 4242 p…"));
        // Too little for two columns of it: the name goes too.
        assert_eq!(clipped(67), format!("{long} ESTABLISHED 4242"));
        // Addresses are never cut: too narrow for one, it is left off.
        assert_eq!(clipped(40), "ESTABLISHED 4242 postgres");
        // What fits is left as it is.
        assert_eq!(
            clipped(200),
            format!("{long} {long} ESTABLISHED 4242 postgres")
        );
    }

    #[test]
    fn cut_counts_screen_columns_and_ends_in_an_ellipsis() {
        // Each of these takes two columns: 10 in all.
        let wide = "进程进程进";
        assert_eq!(cut(wide, 10), wide);
        assert_eq!(cut(wide, 9), "进程进程…");
        assert_eq!(cut(wide, 6), "进程…");
        // An odd width leaves a column unused rather than overflow.
        assert_eq!(cut(wide, 5), "进程…");
        assert_eq!(cut(wide, 2), "…");
        assert_eq!(cut(wide, 0), "");
        assert_eq!(cut("postgres", 5), "post…");
        assert_eq!(cut("e\u{301}cole", 5), "e\u{301}cole");
        for width in 0..12 {
            for text in [wide, "a进b程c", "postgres", "🦀🦀🦀"] {
                let out = cut(text, width);
                assert!(out.width() <= width, "{text} in {width}: {out}");
                assert_eq!(out != text, out.ends_with('…') || out.is_empty());
            }
        }
    }

    #[test]
    fn fit_measures_wide_names_in_screen_columns() {
        const NAMES: [Column; 2] = [
            Column::new("PID", 0),
            Column::new("PROCESS", 0).fit(Fit::Truncate),
        ];
        let mut rows = vec![vec![Cell::new("4242"), Cell::new("进程进程进")]];
        let fitted = fit(&NAMES, &mut rows, 30, BOXED);
        assert_eq!(fitted.widths, [4, 10]);
        // 4 + 3 + 10 + 3 + 1 = 21 columns; in 19 the name is cut to 8.
        let fitted = fit(&NAMES, &mut rows, 19, BOXED);
        assert_eq!(fitted.widths, [4, 8]);
        assert_eq!(rows[0][1].text, "进程进…");
    }

    #[test]
    fn boxed_tables_have_headers_and_no_raw_escapes() {
        let text = render(true, &[["tcp", "\x1b]0;x\x07", "c"]]);
        assert!(text.contains('A') && text.contains("tcp"));
        assert!(!text.contains('\x1b'));
    }
}
