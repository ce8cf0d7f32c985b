use portctl::cli::{one_line_error, Cli};
use portctl::exit::Exit;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::parse_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print them as clap formats them.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{}", one_line_error(&e));
            return ExitCode::from(Exit::Usage.code());
        }
    };
    match portctl::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            portctl::report(&e);
            ExitCode::from(e.exit().code())
        }
    }
}
