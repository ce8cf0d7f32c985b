//! `portctl top`: a live view of the sockets you can act on. The table is
//! read on a background thread (`feed`); the screen is redrawn only when
//! a reading, a key or a resize arrives, so an idle view costs one table
//! read per interval. `state` decides, `view` draws, this module wires
//! them to the terminal and always gives it back as it found it: on `q`,
//! on an error, on a panic on any of its threads, on SIGTERM, and while
//! it is suspended (Ctrl+Z, SIGTSTP).

mod feed;
mod state;
mod view;

use crate::cli::TopArgs;
use crate::exit::{Error, Exit, Result};
use crate::output::Output;
use crate::platform::{self, JobSignal};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self as term_event, DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent,
};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use state::{Action, Event, State};
use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The shortest interval: a table read takes milliseconds, a redraw more.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub fn run(args: &TopArgs, output: Output) -> Result<Exit> {
    if output.is_json() {
        return Err(Error::usage(
            "top is interactive and has no --json; `portctl list --json` or `list --watch --json` give the sockets as JSON",
        ));
    }
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        return Err(Error::usage(
            "top needs a terminal on stdin and stdout; `portctl list --watch` follows the sockets without one",
        ));
    }
    let every = args.interval.max(MIN_INTERVAL);
    let (events, received) = mpsc::channel();
    // SIGTERM and job control are caught before the screen changes, so
    // they always find it to restore.
    on_signals(events.clone())?;
    let screen = Screen::enter(events.clone())?;
    feed::readings(every, events.clone());
    keys(events.clone());
    let mut forcing = Vec::new();
    let ended = event_loop(
        screen,
        &received,
        &events,
        every,
        output.color,
        &mut forcing,
    );
    finish(forcing);
    ended.map(|()| Exit::Ok)
}

/// Stops agreed with `K` still under way when top ends, however it ends:
/// their SIGKILL is owed. The terminal is back by now, so top says why it
/// has not returned yet; a stop that does not finish in time is left.
fn finish(forcing: Vec<Forcing>) {
    let deadline = std::time::Instant::now() + FINISH_LIMIT;
    for forced in forcing.into_iter().filter(|f| !f.done.is_finished()) {
        // A hung-up terminal cannot take the line: the stop still finishes.
        let _ = writeln!(
            io::stderr(),
            "finishing the forced stop on port {}: SIGKILL for what still listens after the wait",
            forced.port
        );
        while !forced.done.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !forced.done.is_finished() {
            let _ = writeln!(
                io::stderr(),
                "gave up waiting for the stop on port {}",
                forced.port
            );
        }
    }
}

/// How long top waits for forced stops once it has been left: their 5 s
/// wait, SIGKILL, 2 s more, and room for the lookups between.
const FINISH_LIMIT: Duration = Duration::from_secs(15);

/// A stop agreed with `K`, under way on its own thread.
struct Forcing {
    port: String,
    done: std::thread::JoinHandle<()>,
}

/// Where a panic on any of top's threads reports, so that the event loop
/// ends top: the hook gives the terminal back, but a background thread's
/// panic would otherwise leave top running over the shell.
static PANICS: OnceLock<Mutex<Sender<Event>>> = OnceLock::new();

/// The alternate screen in raw mode; dropping it (or a panic) restores
/// the terminal.
struct Screen {
    terminal: Terminal<CrosstermBackend<io::Stdout>>,
}

impl Screen {
    fn enter(events: Sender<Event>) -> Result<Screen> {
        let _ = PANICS.set(Mutex::new(events));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
            if let Some(events) = PANICS.get() {
                let events = events.lock().unwrap_or_else(|e| e.into_inner());
                let _ = events.send(Event::Panicked);
            }
        }));
        match Self::take().and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout()))) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(Error::io("cannot set up the terminal", e))
            }
        }
    }

    /// Raw mode and the alternate screen. A paste comes as one event, so
    /// that it can only go into the filter; a console without bracketed
    /// paste (legacy Windows) still runs top, a paste then typed key by
    /// key.
    fn take() -> io::Result<()> {
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        let _ = execute!(io::stdout(), EnableBracketedPaste);
        Ok(())
    }

    /// Ctrl+Z or SIGTSTP: the terminal goes back to the shell as it was,
    /// top stops until `fg`, then takes the screen again and draws it
    /// whole. Where the OS has no job control, nothing happens.
    fn suspend(&mut self) -> io::Result<()> {
        restore();
        platform::stop_self();
        Self::take()?;
        self.redraw()
    }

    /// The next draw paints every cell: the screen is wiped and ratatui's
    /// memory of what it showed forgotten. (`Terminal::clear` would ask
    /// the terminal for the cursor's position, a reply the key reader
    /// may take first.)
    fn redraw(&mut self) -> io::Result<()> {
        execute!(io::stdout(), Clear(ClearType::All))?;
        self.terminal.swap_buffers();
        self.terminal.swap_buffers();
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Cooked mode, the main screen and a visible cursor; safe to repeat.
fn restore() {
    let _ = execute!(io::stdout(), DisableBracketedPaste);
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// Draws, then waits for the next events and handles all that queued up
/// before drawing again: a quit among them ends top at once, however many
/// keys a paste queued ahead of it. The forced stops it starts go into
/// `forcing`, for `finish`.
fn event_loop(
    mut screen: Screen,
    received: &Receiver<Event>,
    events: &Sender<Event>,
    every: Duration,
    color: bool,
    forcing: &mut Vec<Forcing>,
) -> Result<()> {
    let terminal_failed = |e| Error::io("the terminal failed", e);
    let mut state = State::default();
    let size = screen.terminal.size().map_err(terminal_failed)?;
    state.handle_all(vec![Event::Resize {
        height: size.height,
    }]);
    loop {
        screen
            .terminal
            .draw(|frame| view::draw(frame, &state, every, color))
            .map_err(terminal_failed)?;
        forcing.retain(|f| !f.done.is_finished());
        let Ok(first) = received.recv() else {
            return Ok(());
        };
        let batch = std::iter::once(first).chain(received.try_iter()).collect();
        for action in state.handle_all(batch) {
            match action {
                Action::Nothing => {}
                Action::Quit => return Ok(()),
                Action::Fail => {
                    return Err(Error::failure(
                        "top stopped: one of its threads panicked (the terminal is restored)",
                    ))
                }
                Action::Suspend => screen.suspend().map_err(terminal_failed)?,
                Action::Redraw => screen.redraw().map_err(terminal_failed)?,
                Action::Story { key } => feed::story(key, events.clone()),
                Action::FindTargets { port, proto } => feed::targets(port, proto, events.clone()),
                Action::Stop {
                    port,
                    proto,
                    targets,
                    force,
                } => {
                    let done = feed::stop(port, proto, targets, force, events.clone());
                    if force {
                        let port = format!("{port}/{proto}");
                        forcing.push(Forcing { port, done });
                    }
                }
            }
        }
    }
}

/// Keys and resizes, read on their own thread; a terminal that cannot be
/// read any more (hung up) ends top.
fn keys(events: Sender<Event>) {
    std::thread::spawn(move || loop {
        let event = match term_event::read() {
            Ok(TermEvent::Key(key)) => Event::Key(key),
            Ok(TermEvent::Paste(text)) => Event::Paste(text),
            Ok(TermEvent::Resize(_, height)) => Event::Resize { height },
            Ok(_) => continue,
            Err(_) => Event::Quit,
        };
        let quit = matches!(event, Event::Quit);
        if events.send(event).is_err() || quit {
            return;
        }
    });
}

/// SIGTERM (and SIGINT from outside: in raw mode Ctrl+C is a key) ends
/// top like `q`, restoring the terminal; SIGTSTP (`kill -TSTP`) suspends
/// it as Ctrl+Z does, and SIGCONT after a stop from outside redraws it.
fn on_signals(events: Sender<Event>) -> Result<()> {
    let runtime = crate::runtime::build(false).map_err(Error::runtime)?;
    let (mut shutdown, mut jobs) = {
        let _inside = runtime.enter();
        (
            platform::Shutdown::install(),
            platform::JobSignals::install(),
        )
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            loop {
                let event = tokio::select! {
                    () = shutdown.requested() => Event::Quit,
                    job = jobs.next() => match job {
                        JobSignal::Stop => Event::Suspend,
                        JobSignal::Continue => Event::Continued,
                    },
                };
                let quit = matches!(event, Event::Quit);
                if events.send(event).is_err() || quit {
                    return;
                }
            }
        });
    });
    Ok(())
}
