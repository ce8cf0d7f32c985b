//! `portctl metrics`: this machine's sockets once, in the Prometheus text
//! format, for a textfile collector or a quick look.

use crate::cli::MetricsArgs;
use crate::exit::{Exit, Result};
use crate::output;
use crate::facts::scrape::scrape;
use std::io::{self, Write};

pub fn run(args: &MetricsArgs, _output: crate::output::Output) -> Result<Exit> {
    let text = scrape(&args.ports)?;
    let mut out = io::stdout().lock();
    output::deliver(
        Exit::Ok,
        out.write_all(text.as_bytes()).and_then(|()| out.flush()),
    )
}
