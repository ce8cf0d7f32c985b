//! portctl: ports and connections on one machine. ARCHITECTURE.md is the
//! map; in short, two floors with arrows pointing down:
//!
//! - commands, each a leaf: `whatis`, `list`, `check` (and `free`),
//!   `free`, `who`, `serve`, `talk`, `kill`, `wait`, `probe`, `top`;
//!   `docs`.
//! - facts, shared: `sockets` (the table and owners), `record` (a socket
//!   as reported), `holders` (who holds a port, and the wording),
//!   `bind` (binding as servers do), `resolve` (names), `hello` (the
//!   protocol's bytes), `http` (HTTP/1.1 pieces), `registry` (IANA),
//!   `process` (names and users), `story` (a port's whole story),
//!   `stopping` (whom a kill may signal, and how), `rows` (a socket as a
//!   table row), `platform` (the one door to the OS).
//! - below both: `cli`, `parse`, `exit`, `model` (plain data), `output`
//!   (table, plain, JSON; escaping); `nolibm` keeps libm.so out (glibc).

pub mod bind;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod containers;
pub mod docs;
pub mod exit;
pub mod free;
pub mod handover;
pub mod hello;
pub mod holders;
pub mod http;
pub mod kill;
pub mod list;
pub mod metrics;
pub mod model;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod nolibm;
pub mod notes;
pub mod output;
pub mod parse;
pub mod platform;
pub mod probe;
pub mod process;
pub mod record;
pub mod registry;
pub mod resolve;
pub mod rows;
pub mod scrape;
pub mod serve;
pub mod settings;
pub mod sockets;
pub mod stopping;
pub mod story;
pub mod talk;
pub mod top;
pub mod wait;
pub mod whatis;
pub mod who;

use cli::{Cli, Command};
use exit::{Exit, Result};
use output::Output;

/// A tokio runtime for the commands that do network I/O: all cores for
/// servers and probes, one thread for a single client.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| exit::Error::failure(format!("cannot start the runtime: {e}")))
}

/// Runs one command; the returned `Exit` (or the error's) is the process's
/// exit code.
pub fn run(cli: Cli) -> Result<Exit> {
    let output = Output::detect(cli.global.json, cli.global.color);
    match &cli.command {
        Command::Whatis(args) => whatis::run(args, output),
        Command::List(args) => list::run(args, output),
        Command::Check(args) => check::run_check(args, output),
        Command::Free(args) => free::run(args, output),
        Command::Serve(args) => serve::run(args, output),
        Command::Talk(args) => talk::run(args, output),
        Command::Who(args) => who::run(args, output),
        Command::Kill(args) => kill::run(args, output),
        Command::Wait(args) => wait::run(args, output),
        Command::Probe(args) => probe::run(args, output),
        Command::Metrics(args) => metrics::run(args),
        Command::Top(args) => top::run(args, output),
        Command::Completions(args) => docs::completions(args),
        Command::Man => docs::man(),
    }
}
