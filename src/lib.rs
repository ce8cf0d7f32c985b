//! portctl: ports and connections on one machine. ARCHITECTURE.md is the
//! map; in short, floors with arrows pointing down:
//!
//! - `cmd/`: the commands, each a leaf that reads its arguments, asks the
//!   facts and hands the answer to `output`;
//! - `output/`: how answers look — tables, plain columns, JSON, the
//!   Prometheus format, and the words for every fact;
//! - `facts/`: what is true on this machine — sockets and owners, who
//!   holds a port and why, bind probes, processes, units, containers, the
//!   registry, protocols' bytes — as data, never as words;
//! - `platform/`: the one door to the OS, with the OS-neutral types it
//!   implements at its root;
//! - at the bottom, plain types and pure parsers: `model`, `parse`, and
//!   `exit` (the exit codes, decided in one place).

pub mod cli;
mod cmd;
pub mod exit;
mod facts;
mod model;
mod output;
mod parse;
mod platform;
mod runtime;

/// The parsers of outside input, for the fuzz targets (`fuzz/`): not a
/// stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::cmd::serve::http::{read_head, Head};
    pub use crate::facts::containers::{listed, read_reply, short_id};
    pub use crate::facts::hello_protocol::{Framer, MAX_MESSAGE};
    pub use crate::facts::http::{
        read_response_head, BodyDecoder, BodyError, Framing, ResponseHead,
    };
    pub use crate::parse::{
        parse_host, parse_host_port, parse_host_range, parse_ip, parse_port, parse_range,
    };
}

use cli::{Cli, Command};
use exit::{Exit, Result};
use output::Output;

/// Prints the error that ended a run, once, with its causes, escaped.
pub fn report(error: &exit::Error) {
    output::report(error);
}

/// Runs one command; the returned `Exit` (or the error's) is the process's
/// exit code.
pub fn run(cli: Cli) -> Result<Exit> {
    let output = Output::detect(cli.global.json, cli.global.color);
    output::settle(match &cli.command {
        Command::Whatis(args) => cmd::whatis::run(args, output),
        Command::List(args) => cmd::list::run(args, output),
        Command::Check(args) => cmd::check::run(args, output),
        Command::Free(args) => cmd::free::run(args, output),
        Command::Serve(args) => cmd::serve::run(args, output),
        Command::Talk(args) => cmd::talk::run(args, output),
        Command::Who(args) => cmd::who::run(args, output),
        Command::Kill(args) => cmd::kill::run(args, output),
        Command::Wait(args) => cmd::wait::run(args, output),
        Command::Probe(args) => cmd::probe::run(args, output),
        Command::Metrics(args) => cmd::metrics::run(args, output),
        Command::Top(args) => cmd::top::run(args, output),
        Command::Trace(args) => cmd::trace::run(args, output),
        Command::Completions(args) => cmd::docs::completions(args),
        Command::Man => cmd::docs::man(),
    })
}
