//! `completions` and `man`: generated from the clap definition, so they
//! never drift from the real flags.

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{Error, Exit, Result};
use crate::output;
use clap::CommandFactory;
use std::io::{self, Write};

/// Both generators panic or fail on a closed pipe when writing straight to
/// stdout; they render into memory and the write goes through the usual
/// error handling (`| head` stays quiet).
fn emit(text: &[u8]) -> Result<Exit> {
    let mut out = io::stdout().lock();
    output::deliver(Exit::Ok, out.write_all(text).and_then(|()| out.flush()))
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "portctl", &mut script);
    emit(&script)
}

pub fn man() -> Result<Exit> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::io("cannot render the man page", e))?;
    emit(&page)
}
