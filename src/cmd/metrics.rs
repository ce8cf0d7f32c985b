//! `portctl metrics`: this machine's sockets once, in the Prometheus text
//! format (for a textfile collector or a quick look), or as JSON.

use crate::cli::MetricsArgs;
use crate::exit::{Exit, Result};
use crate::facts::scrape::scrape;
use crate::output::{self, prometheus, Output};
use std::io::{self, Write};

pub fn run(args: &MetricsArgs, output: Output) -> Result<Exit> {
    let scraped = scrape(&args.ports)?;
    let mut out = io::stdout().lock();
    let printed = if output.is_json() {
        output::write_line(&mut out, &scraped)
    } else {
        out.write_all(prometheus::exposition(&scraped).as_bytes())
            .and_then(|()| out.flush())
    };
    output::deliver(Exit::Ok, printed)
}
