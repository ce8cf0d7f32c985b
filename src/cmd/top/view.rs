//! How `top` looks: the header with the counts, the socket table in
//! `list`'s columns (giving way as the printed tables do), the status
//! line, and the help, details and confirmation windows. Drawing only:
//! everything shown comes from `State`; outside text is escaped here.

use super::state::{key_of, Confirm, Details, Overlay, State};
use crate::facts::port_story::WhoSocket;
use crate::facts::why_busy::Note;
use crate::model::Signal;
use crate::output::rows::{self, Shape};
use crate::output::{self, cut, endpoint, fit, sanitize, words, Chrome};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use std::time::Duration;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The keys, as the help window lists them (and README).
pub const HELP: [(&str, &str); 15] = [
    ("↑ ↓ j", "move (k does not move up: it kills, as in htop)"),
    ("PgUp PgDn", "a page up or down"),
    ("Home End", "first or last socket"),
    ("/", "filter as you type: port, address, process, container"),
    (
        "Enter",
        "keep the filter (while typing); details of the socket (↑↓ scroll them)",
    ),
    ("Esc", "clear the filter; close a window; quit"),
    (
        "s  S",
        "sort by the next column (traffic: busiest first); flip the direction",
    ),
    ("a", "listeners only / all sockets"),
    (
        "p",
        "one row per process, its connections' RX/s and TX/s summed",
    ),
    ("k", "stop what listens on the socket's port (asks y/n)"),
    (
        "K",
        "the same, then SIGKILL if it still listens (kill --force)",
    ),
    ("?", "this help"),
    ("q", "quit (closes a window first)"),
    ("Ctrl+C", "quit"),
    (
        "",
        "k and K follow `portctl kill`: listeners only, never PID 1",
    ),
];

/// top's table: one space between columns, no borders.
const SPACED: Chrome = Chrome {
    per_column: 1,
    frame: 0,
};

pub fn draw(frame: &mut Frame, state: &State, every: Duration, color: bool) {
    let [head, subhead, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    // One line each: what does not fit ends in `…`, not mid-word.
    let line = |text: String, area: Rect| cut(&text, usize::from(area.width));
    frame.render_widget(Paragraph::new(line(header(state, every), head)), head);
    frame.render_widget(
        Paragraph::new(line(subheader(state), subhead))
            .style(Style::new().add_modifier(Modifier::DIM)),
        subhead,
    );
    draw_table(frame, state, body, color);
    frame.render_widget(
        Paragraph::new(line(footer(state, usize::from(foot.width)), foot))
            .style(Style::new().add_modifier(Modifier::REVERSED)),
        foot,
    );
    match state.overlay() {
        Overlay::None => {}
        Overlay::Help => {
            let lines = HELP
                .iter()
                .map(|(keys, what)| Line::from(format!("{keys:<10} {what}")))
                .collect();
            window(frame, "keys", lines, None);
        }
        Overlay::Details(details) => {
            window(frame, "details", details_lines(details), Some(state));
        }
        Overlay::Confirm(confirm) => window(frame, "stop", confirm_lines(confirm), None),
    }
}

/// `portctl top · 1017 sockets · tcp 12 LISTEN, 1000 ESTABLISHED · udp 5 · every 1s`,
/// the counts of `list --summary`.
fn header(state: &State, every: Duration) -> String {
    let mut parts = vec![format!("portctl top · {} sockets", state.total())];
    let mut by_proto: Vec<(String, Vec<String>)> = Vec::new();
    for row in state.counts() {
        let count = match row.state {
            Some(s) => format!("{} {}", row.count, words::state(s)),
            None => row.count.to_string(),
        };
        match by_proto.iter_mut().find(|(p, _)| *p == row.proto.as_str()) {
            Some((_, counts)) => counts.push(count),
            None => by_proto.push((row.proto.as_str().to_string(), vec![count])),
        }
    }
    parts.extend(
        by_proto
            .into_iter()
            .map(|(proto, counts)| format!("{proto} {}", counts.join(", "))),
    );
    parts.push(format!("every {}", humantime::format_duration(every)));
    parts.join(" · ")
}

/// What is shown and how: mode, sort, filter.
fn subheader(state: &State) -> String {
    let (sort, descending) = state.sort();
    let mut parts = vec![
        if state.listeners_only() {
            "listeners only".to_string()
        } else {
            "all sockets".to_string()
        },
        format!(
            "sort: {}{}",
            sort.label(),
            if descending { " ↓" } else { "" }
        ),
        format!("{} shown", state.rows().len()),
    ];
    if !state.filter().is_empty() {
        parts.push(format!("filter: {}", sanitize(state.filter())));
    }
    parts.join(" · ")
}

fn footer(state: &State, width: usize) -> String {
    if state.typing() {
        let filter = sanitize(state.filter());
        let line = format!("/{filter}▏ Enter keeps the filter, Esc clears it");
        if line.width() <= width {
            return line;
        }
        // What is typed is at the end: show the end, and the cursor.
        let room = width.saturating_sub(3);
        let mut tail: Vec<char> = Vec::new();
        let mut used = 0;
        for c in filter.chars().rev() {
            used += c.width().unwrap_or(0);
            if used > room {
                break;
            }
            tail.push(c);
        }
        return format!("/…{}▏", tail.into_iter().rev().collect::<String>());
    }
    match state.status() {
        Some(status) => sanitize(status).into_owned(),
        None => {
            "↑↓ move  / filter  s sort  a all  p processes  Enter details  k kill  ? help  q quit"
                .to_string()
        }
    }
}

/// The columns and the page's rows: sockets with their rates, or one row
/// per process (`p`).
fn page(state: &State) -> (Vec<output::Column>, Vec<Vec<output::Cell>>) {
    let (offset, page) = state.window();
    if state.processes() {
        let columns = vec![
            output::Column::new("PID", 7),
            output::Column::new("PROCESS", 16).fit(output::Fit::Truncate),
            output::Column::new("USER", 8).fit(output::Fit::Drop(1)),
            output::Column::new("SOCKETS", 7),
            output::Column::new("RX/s", 10),
            output::Column::new("TX/s", 10),
        ];
        let rows = state
            .process_rows()
            .iter()
            .skip(offset)
            .take(page)
            .map(|p| {
                vec![
                    output::Cell::new(p.pid.map(|p| p.to_string()).unwrap_or_default()),
                    output::Cell::new(p.process.clone().unwrap_or_default()),
                    output::Cell::new(p.user.clone().unwrap_or_default()),
                    output::Cell::new(p.sockets.to_string()),
                    output::Cell::new(words::rate(p.rx)),
                    output::Cell::new(words::rate(p.tx)),
                ]
            })
            .collect();
        return (columns, rows);
    }
    let shape = Shape {
        wide: state.wide(),
        info: false,
        rates: true,
    };
    // Only the rows on the page take part in the widths: one long address
    // elsewhere does not narrow this page, and 10,000 rows cost nothing.
    let rows = state
        .rows()
        .skip(offset)
        .take(page)
        .map(|r| {
            let rates = state.rates().get(&key_of(r)).copied();
            rows::row(r, shape, rates)
        })
        .collect();
    (rows::columns(shape), rows)
}

fn draw_table(frame: &mut Frame, state: &State, area: Rect, color: bool) {
    let empty = if state.processes() {
        state.process_rows().is_empty()
    } else {
        state.rows().len() == 0
    };
    if empty {
        let text = if !state.has_read() {
            "reading the socket table…".to_string()
        } else if state.filter().is_empty() {
            "no sockets".to_string()
        } else {
            format!("no socket matches '{}'", sanitize(state.filter()))
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let (offset, _) = state.window();
    let (columns, mut cells) = page(state);
    let columns = columns.as_slice();
    // The headings ride along as a last row, so that they are cut as the
    // cells are.
    cells.push(columns.iter().map(|c| output::Cell::new(c.title)).collect());
    // SPACED counts a space after each column; the last needs none.
    let width = usize::from(area.width) + 1;
    let fitted = fit(columns, &mut cells, width, SPACED).clip(columns, &mut cells, width, SPACED);
    let headings = cells.pop().unwrap_or_default();
    let shown = |i: &usize| fitted.shown[*i];
    let selected = state.selected();
    let visible = cells.into_iter().zip(offset..).map(|(row, n)| {
        let row = Row::new(
            row.into_iter()
                .enumerate()
                .filter(|(i, _)| shown(i))
                .map(|(_, cell)| Cell::from(cell.text).style(style_of(cell.style, color))),
        );
        if Some(n) == selected {
            row.style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            row
        }
    });
    let heading_style = if color {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let heading = Row::new(
        headings
            .into_iter()
            .enumerate()
            .filter(|(i, _)| shown(i))
            .map(|(_, c)| Cell::from(c.text)),
    )
    .style(heading_style);
    let widths: Vec<Constraint> = (0..columns.len())
        .filter(shown)
        .map(|i| Constraint::Length(u16::try_from(fitted.widths[i]).unwrap_or(u16::MAX)))
        .collect();
    frame.render_widget(
        Table::new(visible, widths)
            .header(heading)
            .column_spacing(1),
        area,
    );
}

/// The colour a cell's `Style` means, as the printed tables colour it.
fn style_of(style: output::Style, color: bool) -> Style {
    use output::Style as Meaning;
    if !color {
        return Style::new();
    }
    match style {
        Meaning::Normal => Style::new(),
        Meaning::Dim => Style::new().fg(Color::DarkGray),
        Meaning::Good => Style::new().fg(Color::Green),
        Meaning::Bad => Style::new().fg(Color::Red),
        Meaning::Warn => Style::new().fg(Color::Yellow),
        Meaning::Bold => Style::new().add_modifier(Modifier::BOLD),
    }
}

/// A bordered window in the middle of the screen, as tall as its lines.
/// A window over the table, as tall as its wrapped lines or the screen
/// allows. With `scrolled`, text taller than the window scrolls by the
/// state's offset, and the room to scroll is recorded back in it.
fn window(frame: &mut Frame, title: &str, lines: Vec<Line<'static>>, scrolled: Option<&State>) {
    let full = frame.area();
    let width = full.width.saturating_sub(4).min(100);
    // Long lines wrap at words: ratatui counts the rows they take.
    let text = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = text.line_count(width.saturating_sub(2).max(1));
    let rows = u16::try_from(rows).unwrap_or(u16::MAX);
    let height = rows.saturating_add(2).min(full.height.saturating_sub(2));
    let area = Rect {
        x: full.x + (full.width - width) / 2,
        y: full.y + (full.height - height) / 2,
        width,
        height,
    };
    let shown = height.saturating_sub(2);
    let most = rows.saturating_sub(shown);
    let mut offset = 0;
    let mut title = format!(" {title} ");
    if let Some(state) = scrolled {
        state.set_scroll_room(most, shown);
        offset = state.scroll().min(most);
        if most > 0 {
            title = format!("{title}↑↓ {}/{rows} ", offset.saturating_add(shown));
        }
    }
    frame.render_widget(Clear, area);
    frame.render_widget(
        text.scroll((offset, 0))
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}

fn details_lines(details: &Details) -> Vec<Line<'static>> {
    match details {
        Details::Loading(_) => vec![Line::from("reading the story of this socket…")],
        Details::Failed(why) => vec![Line::from(sanitize(why).into_owned())],
        Details::Ready(socket, notes) => story_lines(socket, notes)
            .into_iter()
            .map(Line::from)
            .chain([Line::from(""), Line::from("Esc closes")])
            .collect(),
    }
}

/// What `who` knows of one socket: the owner, its command line, start,
/// parents, unit and container, and the port's notes.
fn story_lines(s: &WhoSocket, notes: &[Note]) -> Vec<String> {
    let r = &s.socket;
    let mut lines = vec![format!(
        "{}/{} {} → {} {}",
        r.local_port,
        r.proto,
        endpoint(r.local(), false),
        endpoint(r.remote(), true),
        r.state.map(words::state).unwrap_or_default()
    )];
    lines.push(format!("process:   {}", words::holder(s)));
    if let Some(command) = words::command(s) {
        lines.push(format!("command:   {command}"));
    }
    if let Some(started) = &s.started {
        lines.push(format!("started:   {started}"));
    }
    if let Some(chain) = words::parent_chain(s) {
        lines.push(format!("parents:   {chain}"));
    }
    if let Some(service) = &r.service {
        lines.push(format!("service:   {}", sanitize(service)));
    }
    if let Some(unit) = &r.unit {
        lines.push(format!("unit:      {}", sanitize(unit)));
    }
    if let Some(container) = &r.container {
        lines.push(format!("container: {}", words::container(container)));
    }
    lines.extend(notes.iter().map(|n| format!("note: {}", words::note(n))));
    lines
}

fn confirm_lines(confirm: &Confirm) -> Vec<Line<'static>> {
    match confirm {
        Confirm::Looking { port, proto, .. } => vec![Line::from(format!(
            "looking for what listens on {port}/{proto}…"
        ))],
        Confirm::Asking {
            port,
            proto,
            force,
            targets,
        } => {
            let names: Vec<String> = targets.iter().map(words::process).collect();
            let how = if *force {
                format!(
                    "{}, then {} if it still listens, as `portctl kill --force`.",
                    words::signal(Signal::Term),
                    words::signal(Signal::Kill)
                )
            } else {
                format!(
                    "{}, as `portctl kill` sends it.",
                    words::signal(Signal::Term)
                )
            };
            vec![
                Line::from(format!(
                    "Stop {} listening on port {port}/{proto}?",
                    names.join(", ")
                )),
                Line::from(format!("{how}   y: yes   n: no")),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::top::state::tests::{reading, record};
    use crate::cmd::top::state::Event;
    use crate::facts::socket_record::SocketRecord;
    use crate::model::{Family, TcpState};
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::Terminal;

    /// The screen `draw` makes of `records` in a `width`×`height` terminal.
    fn screen(records: Vec<SocketRecord>, width: u16, height: u16) -> Vec<String> {
        let mut state = State::default();
        state.handle(Event::Resize { height });
        state.handle(reading(records));
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|frame| draw(frame, &state, Duration::from_secs(1), false))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    /// A connection between two IPv6 addresses.
    fn ipv6(local: &str, remote: &str, port: u16) -> SocketRecord {
        let mut r = record(port, TcpState::Established, "postgres", 40);
        r.family = Family::Ipv6;
        r.local_addr = local.parse().unwrap();
        r.remote_addr = remote.parse().unwrap();
        r
    }

    fn v4_sample() -> Vec<SocketRecord> {
        vec![
            record(8080, TcpState::Listen, "nginx", 20),
            record(22, TcpState::Listen, "sshd", 10),
        ]
    }

    #[test]
    fn one_long_address_leaves_the_process_column_in_place() {
        // 25-character endpoints at 80 columns.
        let mut records = v4_sample();
        records.push(ipv6("fd00:1234:5678::1", "fd00:1234:5678::2", 18443));
        let lines = screen(records, 80, 24);
        let text = lines.join("\n");
        let heading = &lines[2];
        for title in ["LOCAL", "REMOTE", "STATE", "PID", "PROCE…"] {
            assert!(heading.contains(title), "{title}:\n{text}");
        }
        assert!(text.contains("[fd00:1234:5678::1]:18443"), "{text}");
        assert!(text.contains("[fd00:1234:5678::2]:40000"), "{text}");
        assert!(text.contains("nginx") && text.contains("sshd"), "{text}");
        assert!(text.contains("postg…"), "the name is cut:\n{text}");
    }

    #[test]
    fn a_column_that_does_not_fit_is_skipped_and_the_rest_stay() {
        // A 47-character address at 100 columns: REMOTE goes, not all
        // that follows it.
        let long = "fd00:1234:5678:9abc:def0:1234:5678:9abc";
        let lines = screen(vec![ipv6(long, long, 40000)], 100, 24);
        let text = lines.join("\n");
        let heading = &lines[2];
        for title in ["LOCAL", "STATE", "PID", "PROCESS"] {
            assert!(heading.contains(title), "{title}:\n{text}");
        }
        assert!(!heading.contains("REMOTE"), "{text}");
        assert!(text.contains(&format!("[{long}]:40000")), "{text}");
        assert!(
            text.contains("ESTABLISHED") && text.contains("postgres"),
            "{text}"
        );
    }

    #[test]
    fn a_long_filter_shows_its_end_where_the_typing_is() {
        let mut state = State::default();
        state.handle(Event::Resize { height: 24 });
        state.handle(reading(v4_sample()));
        let key = |c| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        state.handle(key('/'));
        for c in "x".repeat(100).chars().chain("进END".chars()) {
            state.handle(key(c));
        }
        let line = footer(&state, 80);
        assert!(line.starts_with("/…") && line.ends_with("进END▏"), "{line}");
        assert!(line.width() <= 80, "{line}");
        assert!(footer(&state, 200).contains("Enter keeps the filter"));
    }

    #[test]
    fn the_widths_come_from_the_rows_on_the_page() {
        // Two rows fit; the long one is on the next page.
        let mut records = v4_sample();
        records.push(ipv6("fd00:1234:5678::1", "fd00:1234:5678::2", 18443));
        let lines = screen(records, 80, 6);
        let text = lines.join("\n");
        assert!(!text.contains("fd00"), "{text}");
        for title in ["SERVICE", "USER", "PROCESS"] {
            assert!(lines[2].contains(title), "{title}:\n{text}");
        }
    }
}
