//! `portctl trace`: every TCP connection as it opens and closes, with its
//! process, until Ctrl+C, `--duration` or `--count`. From the kernel's own
//! record where portctl may read it; otherwise it polls the table and says
//! so once.

use crate::cli::TraceArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::connections::{ConnEvent, Connections, EventKind, Filter, Source};
use crate::facts::socket_record::SocketRecord;
use crate::output::{self, endpoint, Cell, Column, Fit, Output, TextTable};
use crate::platform;
use serde::Serialize;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the count of dropped records is looked at during a trace.
const LOST_EVERY: Duration = Duration::from_secs(1);

/// How long one wait for the kernel's records (or one scan) may take:
/// how soon Ctrl+C and `--duration` are noticed.
const WAIT: Duration = Duration::from_millis(100);

pub fn run(args: &TraceArgs, output: Output) -> Result<Exit> {
    if args.transport.udp && !args.transport.tcp {
        return Err(Error::usage(
            "invalid transport '--udp' for trace: UDP has no connections to follow; `portctl list --watch --udp` follows UDP sockets",
        ));
    }
    let filter = Filter {
        ipv4: args.ipv4,
        ipv6: args.ipv6,
        port: args.port,
        pid: args.pid,
        process: args.process.clone(),
    };
    let stop = stop_on_signal()?;
    if let Some(duration) = args.duration {
        exit_if_stuck_after(duration);
    }
    let (mut connections, fallback) = Connections::open(args.poll);
    if let Some(why) = fallback {
        output::note(&format!(
            "{why}: following the socket table every 0.1s instead; a connection shorter than that can be missed or seen without its process (events say \"source\": \"poll\")"
        ));
    }
    let started = Instant::now();
    let mut printed = 0u64;
    let mut out = Printer::new(output);
    let full = |printed: u64| args.count.is_some_and(|n| printed >= n);
    let mut told_lost = (0u64, Instant::now());
    loop {
        // At the end, one last read of all that is left: what the kernel
        // recorded up to now is printed, not dropped.
        let last =
            stop.load(Ordering::Relaxed) || args.duration.is_some_and(|d| started.elapsed() >= d);
        let events = if last {
            connections.rest()
        } else {
            connections
                .next(WAIT)
                .map_err(|e| Error::failure(chain(&e)))?
        };
        for event in events.iter().filter(|e| filter.keeps(e)) {
            if full(printed) {
                break;
            }
            if let Err(e) = out.event(event) {
                return output::deliver(Exit::Ok, Err(e));
            }
            printed += 1;
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = out.flush() {
            return output::deliver(Exit::Ok, Err(e));
        }
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        if last || full(printed) {
            break;
        }
        // Drops are said as they happen: a trace that runs for days, or
        // is killed, must not keep them for its end.
        if told_lost.1.elapsed() >= LOST_EVERY {
            let lost = connections.lost();
            if lost > told_lost.0 {
                output::warn(&format!(
                    "the kernel dropped {lost} records so far (its buffer was full): some connections are missing"
                ));
            }
            told_lost = (lost.max(told_lost.0), Instant::now());
        }
    }
    let lost = connections.lost();
    if lost > 0 {
        output::warn(&format!(
            "the kernel dropped {lost} records (its buffer was full): some connections are missing above"
        ));
    }
    output::deliver(Exit::Ok, out.finish(lost))
}

/// An error and its causes, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// How long the end may go without progress once it is due: a reader
/// that stopped reading (stdout blocked) must not keep the trace alive.
const END_GRACE: Duration = Duration::from_secs(2);

/// Events written and batches read so far: a trace that is behind but
/// still printing is not stuck.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Once the end is due: ends the process (exit 0) when `END_GRACE` goes
/// by with nothing printed, which only a reader that stopped reading can
/// cause; a trace working through a backlog finishes it.
fn exit_when_stuck() -> ! {
    loop {
        let before = PROGRESS.load(Ordering::Relaxed);
        std::thread::sleep(END_GRACE);
        if PROGRESS.load(Ordering::Relaxed) == before {
            std::process::exit(0);
        }
    }
}

/// `exit_when_stuck` from `duration` on.
fn exit_if_stuck_after(duration: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        exit_when_stuck();
    });
}

/// Ctrl+C and SIGTERM end the trace (exit 0) at the next wait, once
/// what the kernel recorded so far is printed; a trace stuck writing to a
/// stalled reader ends anyway (`exit_when_stuck`).
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = crate::runtime::build(false).map_err(Error::runtime)?;
    let mut shutdown = {
        let _inside = runtime.enter();
        platform::Shutdown::install()
    };
    let flag = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(shutdown.requested());
        flag.store(true, Ordering::Relaxed);
        exit_when_stuck();
    });
    Ok(stop)
}

/// One line of `trace --json`.
#[derive(Serialize)]
struct TraceLine<'a> {
    event: EventKind,
    /// RFC 3339, with microseconds.
    time: String,
    source: Source,
    #[serde(flatten)]
    socket: &'a SocketRecord,
    /// A close only: milliseconds since the connect or accept, `null`
    /// where its opening was not seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<Option<f64>>,
    /// A close only: not known from the kernel's record (`null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_sent: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<Option<u64>>,
}

/// The last line when the kernel dropped records.
#[derive(Serialize)]
struct LostLine {
    event: &'static str,
    count: u64,
}

const COLUMNS: [Column; 7] = [
    Column::new("TIME", 15),
    Column::new("EVENT", 7),
    Column::new("LOCAL", 21),
    Column::new("REMOTE", 21),
    Column::new("PID", 7),
    Column::new("PROCESS", 15).fit(Fit::Truncate),
    Column::new("DURATION", 0),
];

/// Events as JSON lines or as plain columns, one per line as they come
/// (plain even on a terminal: a boxed table waits for its last row).
enum Printer {
    Json(io::BufWriter<io::Stdout>),
    Text(TextTable<'static, io::BufWriter<io::Stdout>>),
}

impl Printer {
    fn new(output: Output) -> Printer {
        let out = io::BufWriter::new(io::stdout());
        if output.is_json() {
            Printer::Json(out)
        } else {
            Printer::Text(TextTable::new(out, &COLUMNS, false, false))
        }
    }

    fn event(&mut self, e: &ConnEvent) -> io::Result<()> {
        let time = humantime::format_rfc3339_micros(e.time).to_string();
        let close = e.kind == EventKind::Close;
        let table = match self {
            Printer::Json(out) => {
                return output::write_line(
                    out,
                    &TraceLine {
                        event: e.kind,
                        time,
                        source: e.source,
                        socket: &e.socket,
                        duration_ms: close.then(|| e.duration.map(|d| d.as_secs_f64() * 1000.0)),
                        bytes_sent: close.then_some(None),
                        bytes_received: close.then_some(None),
                    },
                )
            }
            Printer::Text(table) => table,
        };
        let s = &e.socket;
        table.push(vec![
            // HH:MM:SS.micros of the RFC 3339 time.
            Cell::new(time.get(11..26).unwrap_or(&time).to_string()),
            Cell::new(match e.kind {
                EventKind::Connect => "connect",
                EventKind::Accept => "accept",
                EventKind::Close => "close",
            }),
            Cell::new(endpoint(s.local(), false)),
            Cell::new(endpoint(s.remote(), true)),
            Cell::new(s.pid.map(|p| p.to_string()).unwrap_or_default()),
            Cell::new(s.process.clone().unwrap_or_default()),
            Cell::new(
                e.duration
                    .map(|d| format!("{:.3}ms", d.as_secs_f64() * 1000.0))
                    .unwrap_or_default(),
            ),
        ])
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Printer::Json(out) => out.flush(),
            Printer::Text(table) => table.flush(),
        }
    }

    /// The count of records lost, as a last JSON line, when there were any.
    fn finish(mut self, lost: u64) -> io::Result<()> {
        if let (Printer::Json(out), true) = (&mut self, lost > 0) {
            output::write_line(
                out,
                &LostLine {
                    event: "lost",
                    count: lost,
                },
            )?;
        }
        self.flush()
    }
}
