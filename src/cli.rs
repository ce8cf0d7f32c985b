//! The command line: clap derive types only. Parsing of ports, ranges and
//! addresses lives in `parse`, so it can be tested without clap.

use crate::parse::{self, PortRange};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "portctl",
    version,
    about = "Ports and connections on this machine: what a port is for, who holds it, \
             whether it is free; test servers and clients.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print JSON instead of text (for jq and scripts)
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colour; NO_COLOR in the environment means never on auto
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What a port is for, or which port a service uses (IANA registry)
    #[command(allow_negative_numbers = true)]
    Whatis(WhatisArgs),
}

#[derive(Debug, Args)]
pub struct WhatisArgs {
    /// A port (443), a range (6000-6010) or a service name (ssh)
    #[arg(required = true, value_name = "QUERY")]
    pub queries: Vec<String>,

    #[command(flatten)]
    pub transport: TransportFilter,
}

/// `--tcp` / `--udp`: neither or both means both.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct TransportFilter {
    /// Only TCP
    #[arg(short = 't', long)]
    pub tcp: bool,

    /// Only UDP
    #[arg(short = 'u', long)]
    pub udp: bool,
}

impl TransportFilter {
    pub fn wants_tcp(&self) -> bool {
        self.tcp || !self.udp
    }

    pub fn wants_udp(&self) -> bool {
        self.udp || !self.tcp
    }
}

/// clap value parser for a port or `LOW-HIGH`.
pub fn port_range(text: &str) -> Result<PortRange, String> {
    parse::parse_range(text).map_err(|e| e.expected.to_string())
}

/// clap value parser for a port.
pub fn port(text: &str) -> Result<u16, String> {
    parse::parse_port(text).map_err(|e| e.expected.to_string())
}

/// clap value parser for an IP address.
pub fn ip(text: &str) -> Result<std::net::IpAddr, String> {
    parse::parse_ip(text).map_err(|e| e.expected.to_string())
}

/// Renders a clap error as the one line SPEC.md asks for: `error: ...`
/// naming the bad value, without the usage block.
pub fn one_line_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let body = rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if body.starts_with("error:") {
        body
    } else {
        format!("error: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn clap_errors_become_one_line() {
        let err = Cli::try_parse_from(["portctl", "whatis", "--bogus"]).unwrap_err();
        let line = one_line_error(&err);
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains("--bogus"), "{line}");
        assert!(!line.contains('\n'));
    }
}
