//! What `top` shows, as a pure machine: readings of the table, keys and
//! the answers of background work come in; the rows, the selection, the
//! filter, the sort and the open window come out, with the work the run
//! loop must start. No terminal and no OS here, so it is tested as is.

use crate::facts::port_story::WhoSocket;
use crate::facts::process::Proc;
use crate::facts::socket_record::SocketRecord;
use crate::facts::sockets::SummaryRow;
use crate::facts::why_busy::Note;
use crate::model::Proto;
use crate::output::endpoint;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One reading of the socket table, made by the feed.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub records: Vec<SocketRecord>,
    pub counts: Vec<SummaryRow>,
    /// When it was read, since top started: rates come from two readings.
    pub at: Duration,
}

/// One process's sockets, summed (`p`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub user: Option<String>,
    pub sockets: usize,
    /// Bytes received and sent per second, over its TCP connections.
    pub rx: f64,
    pub tx: f64,
}

/// Each connection's (received, sent) bytes per second.
pub type Rates = HashMap<SocketKey, (f64, f64)>;

/// A socket's identity across readings (its state may change).
pub type SocketKey = (Proto, SocketAddr, SocketAddr, u64);

pub fn key_of(r: &SocketRecord) -> SocketKey {
    (r.proto, r.local(), r.remote(), r.inode)
}

/// Everything that can happen to the view.
#[derive(Debug)]
pub enum Event {
    Reading(Reading),
    /// The table could not be read this time; the last rows stay.
    ReadFailed(String),
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): one event, not a
    /// key per character.
    Paste(String),
    /// The terminal's new height: the table's page follows it.
    Resize {
        height: u16,
    },
    /// `who`'s story of the socket asked for with Enter.
    Story {
        key: SocketKey,
        result: Result<Box<(WhoSocket, Vec<Note>)>, String>,
    },
    /// The listeners `k` would stop.
    Targets {
        port: u16,
        proto: Proto,
        result: Result<Vec<Proc>, String>,
    },
    /// What stopping them did, in a sentence.
    Stopped(String),
    /// SIGTSTP from outside (`kill -TSTP`): suspend as Ctrl+Z does.
    Suspend,
    /// SIGCONT: continued after a stop top did not see coming; the screen
    /// may hold anything now.
    Continued,
    /// SIGTERM, SIGINT or a terminal gone.
    Quit,
    /// A thread of top panicked: top ends, as after any panic.
    Panicked,
}

impl Event {
    /// Whether it ends top whatever else is queued: SIGTERM and the like,
    /// or Ctrl+C.
    fn quits(&self) -> bool {
        match self {
            Event::Quit => true,
            Event::Key(key) => is_ctrl(key, 'c'),
            _ => false,
        }
    }
}

/// Ctrl and `c`, pressed (not released).
fn is_ctrl(key: &KeyEvent, c: char) -> bool {
    key.kind != KeyEventKind::Release
        && key.modifiers.contains(KeyModifiers::CONTROL)
        && key.code == KeyCode::Char(c)
}

/// Work for the run loop; the state never does it itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Quit,
    /// End top with an error: a thread of it panicked.
    Fail,
    /// Give the terminal back and stop until `fg` (Ctrl+Z, SIGTSTP),
    /// then draw the whole screen again.
    Suspend,
    /// Draw the whole screen again, whatever is on it.
    Redraw,
    /// Read who's story of the port and pick this socket out of it.
    Story {
        key: SocketKey,
    },
    /// Find the listeners of the port, as `kill` would.
    FindTargets {
        port: u16,
        proto: Proto,
    },
    /// Stop them: agreed in the dialog; `force` as `kill --force`.
    Stop {
        port: u16,
        proto: Proto,
        targets: Vec<Proc>,
        force: bool,
    },
}

/// The columns `s` cycles through; `Listening` is the first view:
/// listeners first, then the rest, by port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Listening,
    Port,
    State,
    Pid,
    Process,
    User,
    /// The busiest first: bytes received and sent per second.
    Traffic,
}

impl SortKey {
    const CYCLE: [SortKey; 7] = [
        SortKey::Listening,
        SortKey::Port,
        SortKey::State,
        SortKey::Pid,
        SortKey::Process,
        SortKey::User,
        SortKey::Traffic,
    ];

    fn next(self) -> Self {
        let at = Self::CYCLE.iter().position(|k| *k == self).unwrap_or(0);
        Self::CYCLE[(at + 1) % Self::CYCLE.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Listening => "listeners first",
            SortKey::Port => "port",
            SortKey::State => "state",
            SortKey::Pid => "pid",
            SortKey::Process => "process",
            SortKey::User => "user",
            SortKey::Traffic => "traffic",
        }
    }

    fn compare(self, a: &SocketRecord, b: &SocketRecord, rates: &Rates) -> Ordering {
        let by_port = |a: &SocketRecord, b: &SocketRecord| {
            (a.local_port, a.proto, a.family, a.local_addr, a.remote()).cmp(&(
                b.local_port,
                b.proto,
                b.family,
                b.local_addr,
                b.remote(),
            ))
        };
        let first = match self {
            SortKey::Listening => (!a.is_listening()).cmp(&!b.is_listening()),
            SortKey::Port => Ordering::Equal,
            SortKey::State => a.state.cmp(&b.state),
            SortKey::Pid => a.pid.cmp(&b.pid),
            SortKey::Process => lower(&a.process).cmp(&lower(&b.process)),
            SortKey::User => a.user.cmp(&b.user),
            SortKey::Traffic => {
                let busy = |r: &SocketRecord| rates.get(&key_of(r)).map_or(0.0, |(rx, tx)| rx + tx);
                busy(b).total_cmp(&busy(a))
            }
        };
        first.then_with(|| by_port(a, b))
    }
}

fn lower(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.to_lowercase())
}

/// `k`'s and `K`'s dialog: first the listeners are looked up, then the
/// question. `force` (`K`) ends with SIGKILL what SIGTERM did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Looking {
        port: u16,
        proto: Proto,
        force: bool,
    },
    Asking {
        port: u16,
        proto: Proto,
        force: bool,
        targets: Vec<Proc>,
    },
}

/// Enter's window.
#[derive(Debug, Clone)]
pub enum Details {
    Loading(SocketKey),
    Ready(Box<WhoSocket>, Vec<Note>),
    Failed(String),
}

/// A window over the table.
#[derive(Debug, Clone)]
pub enum Overlay {
    None,
    Help,
    Details(Details),
    Confirm(Confirm),
}

/// The rows the header, the table, the windows and the status line show.
#[derive(Debug)]
pub struct State {
    records: Vec<SocketRecord>,
    counts: Vec<SummaryRow>,
    /// Indices into `records`: filtered and sorted.
    view: Vec<usize>,
    /// Index into `view`.
    selected: usize,
    /// First row shown.
    offset: usize,
    /// Rows the table has room for.
    page: usize,
    filter: String,
    /// The filter changed since `view` was last filtered: a burst of
    /// typing filters once, at `settle`.
    dirty: bool,
    typing: bool,
    sort: SortKey,
    descending: bool,
    listeners_only: bool,
    overlay: Overlay,
    /// First line of the details window shown; kept within the room by
    /// the drawing too, as a resize changes it.
    scroll: Cell<u16>,
    /// How far the details window can scroll, and how many lines it
    /// shows: known only to the drawing (lines wrap to the width), which
    /// records them here each time it draws.
    scroll_room: Cell<(u16, u16)>,
    status: Option<String>,
    /// Whether any reading has come yet.
    read: bool,
    /// Each connection's counters at the last reading, and when.
    counters: HashMap<SocketKey, (Duration, u64, u64)>,
    rates: Rates,
    /// `p`: one row per process instead of one per socket.
    processes: bool,
    /// The process rows, when `processes`.
    process_view: Vec<ProcessRow>,
}

/// Lines of the screen that are not table rows: two header lines, the
/// table's heading, the status line.
pub const CHROME_LINES: u16 = 4;

/// The longest filter, in characters; more typed or pasted is ignored.
pub const MAX_FILTER: usize = 256;

impl Default for State {
    fn default() -> Self {
        State {
            records: Vec::new(),
            counts: Vec::new(),
            view: Vec::new(),
            selected: 0,
            offset: 0,
            page: 1,
            filter: String::new(),
            dirty: false,
            typing: false,
            sort: SortKey::Listening,
            descending: false,
            listeners_only: false,
            overlay: Overlay::None,
            scroll: Cell::new(0),
            scroll_room: Cell::new((0, 0)),
            status: None,
            read: false,
            counters: HashMap::new(),
            rates: HashMap::new(),
            processes: false,
            process_view: Vec::new(),
        }
    }
}

impl State {
    /// Handles one event, the view brought up to date after it.
    #[cfg(test)]
    pub fn handle(&mut self, event: Event) -> Action {
        let action = self.apply(event);
        self.settle();
        action
    }

    /// Handles everything that queued up since the last draw, in order,
    /// and returns the work to start. A quit anywhere in it (SIGTERM,
    /// Ctrl+C) wins at once over the keys ahead of it; a burst of typing
    /// filters the table once, before a key that acts on the rows and at
    /// the end.
    pub fn handle_all(&mut self, events: Vec<Event>) -> Vec<Action> {
        if events.iter().any(|e| matches!(e, Event::Panicked)) {
            return vec![Action::Fail];
        }
        if events.iter().any(Event::quits) {
            return vec![Action::Quit];
        }
        let mut actions = Vec::new();
        for event in events {
            match self.apply(event) {
                Action::Nothing => {}
                Action::Quit => {
                    actions.push(Action::Quit);
                    break;
                }
                action => actions.push(action),
            }
        }
        self.settle();
        actions
    }

    fn apply(&mut self, event: Event) -> Action {
        match event {
            Event::Reading(reading) => {
                let kept = self.selected_record().map(key_of);
                self.take_counters(&reading);
                self.records = reading.records;
                self.counts = reading.counts;
                self.read = true;
                self.refresh_keeping(kept);
            }
            Event::ReadFailed(why) => self.status = Some(why),
            Event::Resize { height } => {
                self.settle();
                self.page = usize::from(height.saturating_sub(CHROME_LINES)).max(1);
                self.select(self.selected);
            }
            Event::Key(key) => return self.key(key),
            // Only into the filter being typed, never as commands: a
            // pasted `abc\rq` neither keeps the filter nor quits.
            Event::Paste(text) => {
                if self.typing && matches!(self.overlay, Overlay::None) {
                    self.type_in(text.chars().filter(|c| !c.is_control()));
                }
            }
            Event::Story { key, result } => {
                if matches!(&self.overlay, Overlay::Details(Details::Loading(k)) if *k == key) {
                    self.overlay = Overlay::Details(match result {
                        Ok(story) => {
                            let (socket, notes) = *story;
                            Details::Ready(Box::new(socket), notes)
                        }
                        Err(why) => Details::Failed(why),
                    });
                }
            }
            Event::Targets {
                port,
                proto,
                result,
            } => {
                let force = match self.overlay {
                    Overlay::Confirm(Confirm::Looking {
                        port: p,
                        proto: q,
                        force,
                    }) if (p, q) == (port, proto) => force,
                    _ => return Action::Nothing,
                };
                self.overlay = Overlay::None;
                match result {
                    Ok(targets) if targets.is_empty() => {
                        self.status = Some(format!(
                            "nothing listens on {port}/{proto}: top stops servers, never their clients"
                        ));
                    }
                    Ok(targets) => {
                        self.overlay = Overlay::Confirm(Confirm::Asking {
                            port,
                            proto,
                            force,
                            targets,
                        })
                    }
                    Err(why) => self.status = Some(why),
                }
            }
            Event::Stopped(what) => self.status = Some(what),
            Event::Suspend => return Action::Suspend,
            Event::Continued => return Action::Redraw,
            Event::Quit => return Action::Quit,
            Event::Panicked => return Action::Fail,
        }
        Action::Nothing
    }

    /// A key: Ctrl+C and Ctrl+Z act anywhere; otherwise an open window
    /// takes it first, then the filter being typed, then the table.
    fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Nothing;
        }
        if is_ctrl(&key, 'c') {
            return Action::Quit;
        }
        if is_ctrl(&key, 'z') {
            return Action::Suspend;
        }
        self.status = None;
        if let Some(action) = self.window_key(key) {
            return action;
        }
        if self.typing {
            return self.filter_key(key);
        }
        self.settle();
        self.table_key(key)
    }

    /// A key for the open window, if one is open: any key closes help;
    /// the question takes `y` or anything else for no; Esc, q, Enter or
    /// Backspace close the rest, other keys scroll the details.
    fn window_key(&mut self, key: KeyEvent) -> Option<Action> {
        match std::mem::replace(&mut self.overlay, Overlay::None) {
            Overlay::None => None,
            Overlay::Help => Some(Action::Nothing),
            Overlay::Confirm(Confirm::Asking {
                port,
                proto,
                force,
                targets,
            }) => {
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    self.status = Some(format!("stopping what listens on {port}/{proto}…"));
                    return Some(Action::Stop {
                        port,
                        proto,
                        targets,
                        force,
                    });
                }
                self.status = Some("nothing done".to_string());
                Some(Action::Nothing)
            }
            open => {
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter | KeyCode::Backspace
                ) {
                    if matches!(open, Overlay::Details(_)) {
                        self.scroll_key(key.code);
                    }
                    self.overlay = open;
                }
                Some(Action::Nothing)
            }
        }
    }

    /// A key on the table: leave, filter, sort, toggle, open a window,
    /// stop, or move.
    fn table_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc if self.filter.is_empty() => return Action::Quit,
            KeyCode::Esc => self.clear_filter(),
            KeyCode::Char('/') => self.typing = true,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.descending = false;
                self.refresh();
            }
            KeyCode::Char('S') => {
                self.descending = !self.descending;
                self.refresh();
            }
            KeyCode::Char('a') => {
                self.listeners_only = !self.listeners_only;
                self.refresh();
            }
            KeyCode::Char('p') => {
                self.processes = !self.processes;
                self.selected = 0;
                self.offset = 0;
                self.refresh();
            }
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Enter | KeyCode::Char('k' | 'K') if self.processes => {
                self.status = Some("p goes back to the sockets, where Enter and k act".into());
            }
            KeyCode::Enter => return self.open_details(),
            KeyCode::Char(c @ ('k' | 'K')) => return self.ask_stop(c == 'K'),
            _ => self.move_key(key.code),
        }
        Action::Nothing
    }

    /// Enter: the story of the selected socket, from its top.
    fn open_details(&mut self) -> Action {
        let Some(record) = self.selected_record() else {
            return Action::Nothing;
        };
        let key = key_of(record);
        self.overlay = Overlay::Details(Details::Loading(key));
        self.scroll.set(0);
        self.scroll_room.set((0, 0));
        Action::Story { key }
    }

    /// `k` and `K`: first the listeners of the selected socket's port.
    fn ask_stop(&mut self, force: bool) -> Action {
        let Some(record) = self.selected_record() else {
            return Action::Nothing;
        };
        let (port, proto) = (record.local_port, record.proto);
        self.overlay = Overlay::Confirm(Confirm::Looking { port, proto, force });
        Action::FindTargets { port, proto }
    }

    /// The details window's own moves: a line, a page, to either end.
    fn scroll_key(&mut self, code: KeyCode) {
        let (most, shown) = self.scroll_room.get();
        let page = shown.saturating_sub(1).max(1);
        let at = self.scroll.get();
        let to = match code {
            KeyCode::Down | KeyCode::Char('j') => at.saturating_add(1),
            KeyCode::Up => at.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => at.saturating_add(page),
            KeyCode::PageUp => at.saturating_sub(page),
            KeyCode::Home => 0,
            KeyCode::End => most,
            _ => at,
        };
        self.scroll.set(to.min(most));
    }

    /// Typing after `/`: the table narrows as you type.
    fn filter_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            // Esc and the next key read in one go arrive as Alt+key:
            // leave the filter as Esc does, then take the key as typed.
            KeyCode::Char(_) if key.modifiers.contains(KeyModifiers::ALT) => {
                self.typing = false;
                self.clear_filter();
                return self.key(KeyEvent::new(key.code, key.modifiers - KeyModifiers::ALT));
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.type_in([c]);
            }
            KeyCode::Backspace => {
                self.filter.pop();
                self.dirty = true;
            }
            KeyCode::Enter => self.typing = false,
            KeyCode::Esc => {
                self.typing = false;
                self.clear_filter();
            }
            other => {
                self.settle();
                self.move_key(other);
            }
        }
        Action::Nothing
    }

    /// Adds `text` to the filter, up to `MAX_FILTER` characters.
    fn type_in(&mut self, text: impl IntoIterator<Item = char>) {
        let room = MAX_FILTER.saturating_sub(self.filter.chars().count());
        self.filter.extend(text.into_iter().take(room));
        self.dirty = true;
    }

    fn move_key(&mut self, code: KeyCode) {
        let last = self.shown_len().saturating_sub(1);
        let to = match code {
            KeyCode::Up => self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected + 1,
            KeyCode::PageUp => self.selected.saturating_sub(self.page),
            KeyCode::PageDown => self.selected + self.page,
            KeyCode::Home => 0,
            KeyCode::End => last,
            _ => return,
        };
        self.select(to);
    }

    fn clear_filter(&mut self) {
        self.filter.clear();
        self.dirty = true;
    }

    /// Filters the table again if the filter changed since it last was.
    fn settle(&mut self) {
        if self.dirty {
            self.refresh();
        }
    }

    /// Filters and sorts the latest reading again, keeping the selected
    /// socket selected while it is still shown.
    fn refresh(&mut self) {
        self.refresh_keeping(self.selected_record().map(key_of));
    }

    /// As `refresh`, keeping `kept` selected (the records may be new).
    fn refresh_keeping(&mut self, kept: Option<SocketKey>) {
        self.dirty = false;
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = (0..self.records.len())
            .filter(|&i| {
                let r = &self.records[i];
                (!self.listeners_only || r.is_listening()) && matches_filter(r, &needle)
            })
            .collect();
        let (sort, records, rates) = (self.sort, &self.records, &self.rates);
        view.sort_by(|&a, &b| {
            let order = sort.compare(&records[a], &records[b], rates);
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
        self.view = view;
        if self.processes {
            self.process_view = self.sum_by_process(&needle);
            self.select(self.selected);
            return;
        }
        let at = kept
            .and_then(|k| {
                self.view
                    .iter()
                    .position(|&i| key_of(&self.records[i]) == k)
            })
            .unwrap_or(self.selected);
        self.select(at);
    }

    /// Selects row `index` (clamped) and scrolls it into the page.
    fn select(&mut self, index: usize) {
        let len = self.shown_len();
        self.selected = index.min(len.saturating_sub(1));
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + self.page {
            self.offset = self.selected + 1 - self.page;
        }
        self.offset = self.offset.min(len.saturating_sub(self.page));
    }

    /// How many rows are shown: sockets, or processes (`p`).
    fn shown_len(&self) -> usize {
        if self.processes {
            self.process_view.len()
        } else {
            self.view.len()
        }
    }

    /// Rates from the counters of this reading and the last: bytes moved
    /// over the time between. A connection new since the last reading has
    /// no rate yet; counters that went down (a reused key) none either.
    fn take_counters(&mut self, reading: &Reading) {
        let mut counters = HashMap::with_capacity(self.counters.len());
        self.rates.clear();
        for r in &reading.records {
            let Some(t) = r.traffic else { continue };
            let key = key_of(r);
            if let Some(&(at, sent, received)) = self.counters.get(&key) {
                let seconds = reading.at.saturating_sub(at).as_secs_f64();
                if seconds > 0.0 && t.bytes_sent >= sent && t.bytes_received >= received {
                    self.rates.insert(
                        key,
                        (
                            (t.bytes_received - received) as f64 / seconds,
                            (t.bytes_sent - sent) as f64 / seconds,
                        ),
                    );
                }
            }
            counters.insert(key, (reading.at, t.bytes_sent, t.bytes_received));
        }
        self.counters = counters;
    }

    /// The sockets the filter keeps, summed by process, the busiest
    /// first. "Listeners only" keeps the processes that listen, with all
    /// their sockets: a server's traffic is on its connections.
    fn sum_by_process(&self, needle: &str) -> Vec<ProcessRow> {
        let mut by_pid: HashMap<Option<u32>, (ProcessRow, bool)> = HashMap::new();
        for r in self.records.iter().filter(|r| matches_filter(r, needle)) {
            let (row, listens) = by_pid.entry(r.pid).or_insert_with(|| {
                let row = ProcessRow {
                    pid: r.pid,
                    process: r.process.clone(),
                    user: r.user.clone(),
                    sockets: 0,
                    rx: 0.0,
                    tx: 0.0,
                };
                (row, false)
            });
            *listens |= r.is_listening();
            row.sockets += 1;
            if let Some((rx, tx)) = self.rates.get(&key_of(r)) {
                row.rx += rx;
                row.tx += tx;
            }
        }
        let mut rows: Vec<ProcessRow> = by_pid
            .into_values()
            .filter(|(_, listens)| *listens || !self.listeners_only)
            .map(|(row, _)| row)
            .collect();
        rows.sort_by(|a, b| {
            (b.rx + b.tx)
                .total_cmp(&(a.rx + a.tx))
                .then(a.pid.cmp(&b.pid))
        });
        rows
    }

    /// Each connection's rates, between the last two readings.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// Whether `p` shows processes instead of sockets.
    pub fn processes(&self) -> bool {
        self.processes
    }

    /// The process rows on screen's page, with the selection among them.
    pub fn process_rows(&self) -> &[ProcessRow] {
        &self.process_view
    }

    pub fn selected_record(&self) -> Option<&SocketRecord> {
        if self.processes {
            return None;
        }
        self.view.get(self.selected).map(|&i| &self.records[i])
    }

    /// Index of the selected row among those shown, if any.
    pub fn selected(&self) -> Option<usize> {
        (self.shown_len() > 0).then_some(self.selected)
    }

    /// Every row that passes the filter, in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &SocketRecord> + '_ {
        self.view.iter().map(|&i| &self.records[i])
    }

    /// The first row on screen and how many fit.
    pub fn window(&self) -> (usize, usize) {
        (self.offset, self.page)
    }

    pub fn counts(&self) -> &[SummaryRow] {
        &self.counts
    }

    pub fn total(&self) -> usize {
        self.records.len()
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn typing(&self) -> bool {
        self.typing
    }

    pub fn sort(&self) -> (SortKey, bool) {
        (self.sort, self.descending)
    }

    pub fn listeners_only(&self) -> bool {
        self.listeners_only
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The first line of the details window to show.
    pub fn scroll(&self) -> u16 {
        self.scroll.get()
    }

    /// Recorded by the drawing: how far the details window can scroll at
    /// this size, and how many lines it shows.
    pub fn set_scroll_room(&self, most: u16, shown: u16) {
        self.scroll_room.set((most, shown));
        self.scroll.set(self.scroll.get().min(most));
    }

    pub fn has_read(&self) -> bool {
        self.read
    }

    /// Whether the unit and container columns are worth their room.
    pub fn wide(&self) -> bool {
        self.records
            .iter()
            .any(|r| r.unit.is_some() || r.container.is_some())
    }
}

/// Whether `needle` (lowercase) is in the socket's addresses and ports,
/// its process or its container.
fn matches_filter(r: &SocketRecord, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let container = r
        .container
        .as_ref()
        .and_then(|c| c.name.as_deref().or(c.id.as_deref()));
    [
        Some(endpoint(r.local(), false)),
        Some(endpoint(r.remote(), true)),
        r.process.clone(),
        container.map(str::to_string),
    ]
    .into_iter()
    .flatten()
    .any(|text| text.to_lowercase().contains(needle))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Family, TcpState};

    /// A TCP socket on loopback; view's tests use it too.
    pub(in crate::cmd::top) fn record(
        port: u16,
        state: TcpState,
        process: &str,
        pid: u32,
    ) -> SocketRecord {
        let remote = if state == TcpState::Listen { 0 } else { 40000 };
        SocketRecord {
            proto: Proto::Tcp,
            family: Family::Ipv4,
            local_addr: "127.0.0.1".parse().unwrap(),
            local_port: port,
            remote_addr: "127.0.0.1".parse().unwrap(),
            remote_port: remote,
            state: Some(state),
            pid: Some(pid),
            process: Some(process.to_string()),
            user: Some("root".to_string()),
            inode: u64::from(port) * 10 + u64::from(remote % 7),
            service: None,
            pids: Vec::new(),
            unit: None,
            container: None,
            runtime: None,
            traffic: None,
            info: None,
        }
    }

    pub(in crate::cmd::top) fn reading(records: Vec<SocketRecord>) -> Event {
        Event::Reading(Reading {
            records,
            counts: Vec::new(),
            at: Duration::ZERO,
        })
    }

    fn press(state: &mut State, code: KeyCode) -> Action {
        state.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn typed(state: &mut State, text: &str) {
        for c in text.chars() {
            press(state, KeyCode::Char(c));
        }
    }

    fn ports(state: &State) -> Vec<u16> {
        state.rows().map(|r| r.local_port).collect()
    }

    fn sample() -> State {
        let mut state = State::default();
        state.handle(Event::Resize { height: 24 });
        state.handle(reading(vec![
            record(9000, TcpState::Established, "curl", 30),
            record(8080, TcpState::Listen, "nginx", 20),
            record(22, TcpState::Listen, "sshd", 10),
            record(5432, TcpState::Established, "postgres", 40),
        ]));
        state
    }

    #[test]
    fn listeners_come_first_then_the_rest_by_port() {
        assert_eq!(ports(&sample()), [22, 8080, 5432, 9000]);
    }

    #[test]
    fn the_filter_narrows_as_you_type_and_esc_clears_it() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('/'));
        typed(&mut state, "NGI");
        assert_eq!(ports(&state), [8080]);
        press(&mut state, KeyCode::Backspace);
        assert_eq!(ports(&state), [8080]);
        press(&mut state, KeyCode::Enter);
        assert!(!state.typing() && state.filter() == "NG");
        // q is a letter while typing, a quit otherwise.
        press(&mut state, KeyCode::Char('/'));
        typed(&mut state, "q");
        assert_eq!(state.filter(), "NGq");
        press(&mut state, KeyCode::Esc);
        assert_eq!(state.filter(), "");
        assert_eq!(ports(&state).len(), 4);
        press(&mut state, KeyCode::Char('/'));
        typed(&mut state, "543");
        assert_eq!(ports(&state), [5432]);
        press(&mut state, KeyCode::Enter);
        assert_eq!(press(&mut state, KeyCode::Esc), Action::Nothing);
        assert_eq!(press(&mut state, KeyCode::Esc), Action::Quit);
    }

    #[test]
    fn s_cycles_the_sort_column_and_shift_s_flips_it() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('s'));
        assert_eq!(state.sort(), (SortKey::Port, false));
        assert_eq!(ports(&state), [22, 5432, 8080, 9000]);
        press(&mut state, KeyCode::Char('S'));
        assert_eq!(ports(&state), [9000, 8080, 5432, 22]);
        for _ in 0..3 {
            press(&mut state, KeyCode::Char('s'));
        }
        assert_eq!(state.sort(), (SortKey::Process, false));
        assert_eq!(ports(&state), [9000, 8080, 5432, 22]);
        for _ in 0..2 {
            press(&mut state, KeyCode::Char('s'));
        }
        assert_eq!(state.sort().0, SortKey::Traffic);
        press(&mut state, KeyCode::Char('s'));
        assert_eq!(state.sort().0, SortKey::Listening);
    }

    /// A connection with counters, read at `secs`.
    fn moving(port: u16, pid: u32, process: &str, sent: u64, received: u64) -> SocketRecord {
        let mut r = record(port, TcpState::Established, process, pid);
        r.traffic = Some(crate::model::Traffic {
            bytes_sent: sent,
            bytes_received: received,
            ..Default::default()
        });
        r
    }

    fn reading_at(records: Vec<SocketRecord>, secs: u64) -> Event {
        Event::Reading(Reading {
            records,
            counts: Vec::new(),
            at: Duration::from_secs(secs),
        })
    }

    #[test]
    fn rates_come_from_two_readings_and_sort_the_busiest_first() {
        let mut state = State::default();
        state.handle(Event::Resize { height: 20 });
        state.handle(reading_at(
            vec![
                moving(1000, 10, "quiet", 0, 0),
                moving(2000, 20, "busy", 0, 0),
            ],
            1,
        ));
        assert!(state.rates().is_empty(), "one reading has no rate");
        state.handle(reading_at(
            vec![
                moving(1000, 10, "quiet", 1024, 0),
                moving(2000, 20, "busy", 4 << 20, 2 << 20),
                moving(3000, 30, "new", 1 << 30, 0),
            ],
            3,
        ));
        let rate = |port: u16| {
            let r = state.rows().find(|r| r.local_port == port).unwrap();
            state.rates().get(&key_of(r)).copied()
        };
        assert_eq!(
            rate(2000),
            Some((1048576.0, 2097152.0)),
            "over the 2 s between"
        );
        assert_eq!(rate(1000), Some((0.0, 512.0)));
        assert_eq!(rate(3000), None, "a connection new since the last reading");
        while state.sort().0 != SortKey::Traffic {
            press(&mut state, KeyCode::Char('s'));
        }
        assert_eq!(ports(&state)[..2], [2000, 1000]);
    }

    #[test]
    fn p_sums_the_connections_by_process() {
        let mut state = State::default();
        state.handle(Event::Resize { height: 20 });
        state.handle(reading_at(
            vec![
                moving(1, 7, "sender", 0, 0),
                moving(2, 7, "sender", 0, 0),
                moving(3, 8, "idle", 0, 0),
            ],
            0,
        ));
        state.handle(reading_at(
            vec![
                moving(1, 7, "sender", 1000, 10),
                moving(2, 7, "sender", 3000, 30),
                moving(3, 8, "idle", 0, 0),
                record(9, TcpState::Listen, "sender", 7),
            ],
            1,
        ));
        press(&mut state, KeyCode::Char('p'));
        assert!(state.processes());
        let rows = state.process_rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].pid, rows[0].sockets, rows[0].tx, rows[0].rx),
            (Some(7), 3, 4000.0, 40.0)
        );
        // Listeners only: the processes that listen, with all their
        // connections' traffic.
        press(&mut state, KeyCode::Char('a'));
        let rows = state.process_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].pid, rows[0].sockets, rows[0].tx),
            (Some(7), 3, 4000.0)
        );
        press(&mut state, KeyCode::Char('a'));
        assert_eq!(state.process_rows().len(), 2);
        assert_eq!(state.selected(), Some(0));
        press(&mut state, KeyCode::Down);
        assert_eq!(state.selected(), Some(1));
        // Enter and k act on sockets only.
        assert_eq!(press(&mut state, KeyCode::Enter), Action::Nothing);
        assert_eq!(press(&mut state, KeyCode::Char('k')), Action::Nothing);
        press(&mut state, KeyCode::Char('p'));
        assert!(!state.processes());
    }

    #[test]
    fn a_toggles_listeners_only() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('a'));
        assert!(state.listeners_only());
        assert_eq!(ports(&state), [22, 8080]);
        press(&mut state, KeyCode::Char('a'));
        assert_eq!(ports(&state).len(), 4);
    }

    #[test]
    fn the_selection_stays_in_bounds_when_a_refresh_shrinks_the_list() {
        let mut state = sample();
        press(&mut state, KeyCode::End);
        assert_eq!(state.selected(), Some(3));
        press(&mut state, KeyCode::Down);
        assert_eq!(state.selected(), Some(3));
        state.handle(reading(vec![record(22, TcpState::Listen, "sshd", 10)]));
        assert_eq!(state.selected(), Some(0));
        assert_eq!(state.window().0, 0);
        state.handle(reading(Vec::new()));
        assert_eq!(state.selected(), None);
        assert_eq!(press(&mut state, KeyCode::Enter), Action::Nothing);
        assert_eq!(press(&mut state, KeyCode::Char('k')), Action::Nothing);
    }

    #[test]
    fn the_selected_socket_stays_selected_across_readings() {
        let mut state = sample();
        press(&mut state, KeyCode::Down);
        assert_eq!(state.selected_record().unwrap().local_port, 8080);
        state.handle(reading(vec![
            record(8080, TcpState::Listen, "nginx", 20),
            record(1, TcpState::Listen, "x", 1),
            record(2, TcpState::Listen, "y", 2),
        ]));
        assert_eq!(state.selected_record().unwrap().local_port, 8080);
    }

    #[test]
    fn pages_scroll_the_window() {
        let mut state = State::default();
        state.handle(Event::Resize { height: 14 });
        state.handle(reading(
            (1..=100)
                .map(|p| record(p, TcpState::Listen, "x", 1))
                .collect(),
        ));
        assert_eq!(state.window(), (0, 10));
        press(&mut state, KeyCode::PageDown);
        assert_eq!(state.selected(), Some(10));
        assert_eq!(state.window().0, 1);
        press(&mut state, KeyCode::End);
        assert_eq!(state.window().0, 90);
        press(&mut state, KeyCode::Home);
        assert_eq!(state.window().0, 0);
        // k kills: it never moves up.
        press(&mut state, KeyCode::Char('j'));
        assert_eq!(state.selected(), Some(1));
        press(&mut state, KeyCode::Up);
        assert_eq!(state.selected(), Some(0));
    }

    #[test]
    fn k_asks_before_it_stops_and_n_does_nothing() {
        let mut state = sample();
        press(&mut state, KeyCode::Down);
        let nginx = Proc {
            pid: 20,
            process: Some("nginx".into()),
            start: None,
        };
        // The key on the 8080 row, and nginx found listening there.
        let ask = |state: &mut State, key: char| {
            let action = press(state, KeyCode::Char(key));
            state.handle(Event::Targets {
                port: 8080,
                proto: Proto::Tcp,
                result: Ok(vec![nginx.clone()]),
            });
            action
        };
        assert_eq!(
            ask(&mut state, 'k'),
            Action::FindTargets {
                port: 8080,
                proto: Proto::Tcp
            }
        );
        assert!(matches!(
            state.overlay(),
            Overlay::Confirm(Confirm::Asking { force: false, .. })
        ));
        assert_eq!(press(&mut state, KeyCode::Char('n')), Action::Nothing);
        assert!(matches!(state.overlay(), Overlay::None));
        assert_eq!(state.status(), Some("nothing done"));

        for (key, force) in [('k', false), ('K', true)] {
            ask(&mut state, key);
            assert_eq!(
                press(&mut state, KeyCode::Char('y')),
                Action::Stop {
                    port: 8080,
                    proto: Proto::Tcp,
                    targets: vec![nginx.clone()],
                    force,
                },
                "{key}"
            );
            state.handle(Event::Stopped("port 8080: the port is free".into()));
            assert_eq!(state.status(), Some("port 8080: the port is free"));
        }
    }

    #[test]
    fn k_on_a_client_or_a_refused_target_only_says_why() {
        let mut state = sample();
        press(&mut state, KeyCode::End);
        press(&mut state, KeyCode::Char('k'));
        state.handle(Event::Targets {
            port: 9000,
            proto: Proto::Tcp,
            result: Ok(Vec::new()),
        });
        assert!(matches!(state.overlay(), Overlay::None));
        assert!(state.status().unwrap().contains("never their clients"));
        press(&mut state, KeyCode::Char('k'));
        state.handle(Event::Targets {
            port: 9000,
            proto: Proto::Tcp,
            result: Err("refusing to signal init (pid 1)".into()),
        });
        assert!(state.status().unwrap().contains("refusing"));
        // A late answer to a dialog that was closed opens nothing.
        press(&mut state, KeyCode::Char('k'));
        press(&mut state, KeyCode::Esc);
        state.handle(Event::Targets {
            port: 9000,
            proto: Proto::Tcp,
            result: Ok(vec![Proc {
                pid: 5,
                process: None,
                start: None,
            }]),
        });
        assert!(matches!(state.overlay(), Overlay::None));
    }

    #[test]
    fn enter_opens_the_details_and_esc_closes_them() {
        let mut state = sample();
        let Action::Story { key } = press(&mut state, KeyCode::Enter) else {
            panic!("Enter asks for the story");
        };
        assert_eq!(key.1.port(), 22);
        let socket = WhoSocket {
            socket: state.selected_record().unwrap().clone(),
            cmdline: Some(vec!["/usr/sbin/sshd".into()]),
            started: None,
            parents: Vec::new(),
        };
        state.handle(Event::Story {
            key,
            result: Ok(Box::new((socket, Vec::new()))),
        });
        assert!(matches!(
            state.overlay(),
            Overlay::Details(Details::Ready(..))
        ));
        press(&mut state, KeyCode::Down);
        assert!(matches!(state.overlay(), Overlay::Details(_)));
        assert_eq!(press(&mut state, KeyCode::Esc), Action::Nothing);
        assert!(matches!(state.overlay(), Overlay::None));
        assert_eq!(press(&mut state, KeyCode::Char('q')), Action::Quit);
    }

    #[test]
    fn the_details_scroll_within_the_room_the_drawing_found() {
        let mut state = sample();
        press(&mut state, KeyCode::Enter);
        // Eight lines in a window that shows three: five to scroll.
        state.set_scroll_room(5, 3);
        let after = |state: &mut State, code| {
            press(state, code);
            state.scroll()
        };
        let mut after = |code| after(&mut state, code);
        assert_eq!(after(KeyCode::Up), 0);
        assert_eq!(after(KeyCode::Down), 1);
        assert_eq!(after(KeyCode::PageDown), 3);
        assert_eq!(after(KeyCode::PageDown), 5);
        assert_eq!(after(KeyCode::Down), 5, "never past the end");
        assert_eq!(after(KeyCode::Home), 0);
        assert_eq!(after(KeyCode::End), 5);
        assert_eq!(after(KeyCode::PageUp), 3);
        // A taller window (a resize) pulls the position back with it.
        state.set_scroll_room(2, 6);
        assert_eq!(state.scroll(), 2);
        press(&mut state, KeyCode::Up);
        assert_eq!(state.scroll(), 1);
        // The table below did not move, and a new story starts at the top.
        assert_eq!(state.selected(), Some(0));
        press(&mut state, KeyCode::Esc);
        press(&mut state, KeyCode::Enter);
        assert_eq!(state.scroll(), 0);
    }

    fn keys(text: &str) -> Vec<Event> {
        text.chars()
            .map(|c| {
                let code = match c {
                    '\r' => KeyCode::Enter,
                    '\x1b' => KeyCode::Esc,
                    '↓' => KeyCode::Down,
                    c => KeyCode::Char(c),
                };
                Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
            })
            .collect()
    }

    #[test]
    fn a_quit_in_a_batch_wins_over_the_keys_queued_ahead_of_it() {
        let ctrl_c = || Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        for quit in [ctrl_c, || Event::Quit] {
            let mut state = sample();
            let mut batch = keys("/");
            batch.extend(keys(&"x".repeat(20_000)));
            batch.push(quit());
            batch.extend(keys("\rk"));
            assert_eq!(state.handle_all(batch), [Action::Quit]);
            assert_eq!(state.filter(), "", "the keys ahead were not worked through");
        }
        // q quits as a command, in its place: what came before still counts.
        let mut state = sample();
        let actions = state.handle_all(keys("\r\x1bqk"));
        assert!(matches!(actions[..], [Action::Story { .. }, Action::Quit]));
    }

    #[test]
    fn keys_after_a_burst_of_typing_act_on_the_filtered_rows() {
        let mut state = sample();
        let actions = state.handle_all(keys("/8080\r\r"));
        assert!(
            matches!(&actions[..], [Action::Story { key }] if key.1.port() == 8080),
            "{actions:?}"
        );
        assert_eq!(ports(&state), [8080]);
        let mut state = sample();
        let actions = state.handle_all(keys("/curl\rk"));
        assert_eq!(
            actions,
            [Action::FindTargets {
                port: 9000,
                proto: Proto::Tcp
            }]
        );
        // Moving while typing moves among the filtered rows.
        let mut state = sample();
        state.handle_all(keys("/s↓"));
        assert_eq!(ports(&state), [22, 5432]);
        assert_eq!(state.selected_record().unwrap().local_port, 5432);
        // The end of a batch leaves the rows filtered.
        let mut state = sample();
        state.handle_all(keys("/ssh"));
        assert_eq!(ports(&state), [22]);
    }

    #[test]
    fn a_long_burst_of_typing_over_many_sockets_is_quick() {
        let mut state = State::default();
        // Every name matches the longest filter; one socket's does not.
        let long = "x".repeat(MAX_FILTER + 10);
        let mut records: Vec<SocketRecord> = (1..=5_000)
            .map(|p| record(p, TcpState::Established, &long, 1))
            .collect();
        records.push(record(6_000, TcpState::Established, "y", 2));
        state.handle(reading(records));
        let started = std::time::Instant::now();
        let mut batch = keys("/");
        batch.extend(keys(&"x".repeat(20_000)));
        state.handle_all(batch);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(state.filter().len(), MAX_FILTER);
        assert_eq!(state.rows().len(), 5_000);
    }

    #[test]
    fn an_escape_read_with_the_next_key_leaves_the_filter_first() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('/'));
        typed(&mut state, "xyz");
        // Esc then `/` in one read: Alt+/.
        state.handle(Event::Key(KeyEvent::new(
            KeyCode::Char('/'),
            KeyModifiers::ALT,
        )));
        assert_eq!(state.filter(), "");
        assert!(state.typing(), "the `/` opened a new filter");
        typed(&mut state, "ab");
        assert_eq!(state.filter(), "ab");
    }

    #[test]
    fn the_filter_stops_at_its_longest() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('/'));
        typed(&mut state, &"a".repeat(MAX_FILTER + 10));
        assert_eq!(state.filter().chars().count(), MAX_FILTER);
        press(&mut state, KeyCode::Backspace);
        typed(&mut state, "进程");
        assert_eq!(state.filter().chars().count(), MAX_FILTER);
        assert!(state.filter().ends_with("a进"));
        state.handle(Event::Paste("b".repeat(100)));
        assert_eq!(state.filter().chars().count(), MAX_FILTER);
    }

    #[test]
    fn a_paste_goes_into_the_filter_and_runs_no_command() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('/'));
        // A line break would keep the filter, a q then quit.
        let action = state.handle(Event::Paste("ngi\rq\n\x1b[2J\t".into()));
        assert_eq!(action, Action::Nothing);
        assert!(state.typing());
        assert_eq!(state.filter(), "ngiq[2J");
        state.handle_all(vec![Event::Paste("\u{7f}".into())]);
        assert_eq!(state.filter(), "ngiq[2J");
        press(&mut state, KeyCode::Esc);
        state.handle(Event::Paste("ngi".into()));
        assert!(!state.typing() && state.filter().is_empty());
        // Outside typing a paste does nothing, however it ends.
        let actions = state.handle_all(vec![Event::Paste("q\r".into())]);
        assert!(actions.is_empty());
        assert_eq!(ports(&state).len(), 4);
        assert!(matches!(state.overlay(), Overlay::None));
        // Nor into an open window.
        press(&mut state, KeyCode::Char('?'));
        assert_eq!(state.handle(Event::Paste("x".into())), Action::Nothing);
        assert!(matches!(state.overlay(), Overlay::Help));
    }

    #[test]
    fn help_closes_on_any_key_and_ctrl_c_always_quits() {
        let mut state = sample();
        press(&mut state, KeyCode::Char('?'));
        assert!(matches!(state.overlay(), Overlay::Help));
        press(&mut state, KeyCode::Char('x'));
        assert!(matches!(state.overlay(), Overlay::None));
        press(&mut state, KeyCode::Char('/'));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(state.handle(Event::Key(ctrl_c)), Action::Quit);
        assert_eq!(state.handle(Event::Quit), Action::Quit);
    }
}
