//! The command line: clap derive types only. Parsing of ports, ranges and
//! addresses lives in `parse`, so it can be tested without clap.

use crate::model::{Proto, TcpState};
use crate::output::ColorChoice;
use crate::parse::{self, PortRange};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::time::Duration;

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

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command takes.
#[derive(Debug, Clone, Copy, Args)]
pub struct GlobalArgs {
    /// Print JSON instead of text (for jq and scripts)
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colour; NO_COLOR in the environment means never on auto
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// `portctl whatis ...` on its own. Even with deferred subcommands clap
/// builds the whole top level; for the command scripts call in loops,
/// skipping it saves a tenth of a lookup (BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(
    name = "portctl whatis",
    bin_name = "portctl whatis",
    max_term_width = 100,
    allow_negative_numbers = true,
    about = "What a port is for, or which port a service uses (IANA registry)"
)]
pub struct WhatisCli {
    #[command(flatten)]
    pub args: WhatisArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

impl Cli {
    /// Parses `portctl ARGS...`, taking the short road for `whatis`.
    pub fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
        Cli::parse_text_args(&args).map_err(|e| name_the_bytes(e, &args))
    }

    fn parse_text_args(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
        if args.get(1).is_some_and(|a| a == "whatis") {
            let whatis = WhatisCli::try_parse_from(&args[1..])?;
            return Ok(Cli {
                command: Command::Whatis(whatis.args),
                global: whatis.global,
            });
        }
        Cli::try_parse_from(args)
    }
}

/// clap says only that some argument was not UTF-8; the error line names
/// those that are not, bytes escaped (`\xFF`) as Rust's `Debug` shows
/// them (paths may be bytes, so each is named, not one guessed).
fn name_the_bytes(mut error: clap::Error, args: &[std::ffi::OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() == ErrorKind::InvalidUtf8 {
        let bad: Vec<String> = args
            .iter()
            .skip(1)
            .filter(|a| a.to_str().is_none())
            .map(|a| {
                let shown = format!("{a:?}");
                let inner = shown.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
                inner.unwrap_or(&shown).to_string()
            })
            .collect();
        if !bad.is_empty() {
            error.insert(
                ContextKind::InvalidValue,
                ContextValue::String(bad.join("' '")),
            );
        }
    }
    error
}

/// Deferred: clap builds the arguments of the subcommand being run, not of
/// all of them, which keeps every command's start-up short.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// What a port is for, or which port a service uses (IANA registry)
    #[command(allow_negative_numbers = true)]
    Whatis(WhatisArgs),

    /// Every TCP and UDP socket with its owning process (like ss -tunap)
    #[command(allow_negative_numbers = true)]
    List(ListArgs),

    /// Is a port free to bind? If not, who holds it (exit 1)
    #[command(allow_negative_numbers = true)]
    Check(CheckArgs),

    /// Print a port (or several) free to bind right now
    #[command(allow_negative_numbers = true)]
    Free(FreeArgs),

    /// Start a test server (hello or echo) on a free port until Ctrl+C
    #[command(allow_negative_numbers = true)]
    Serve(ServeArgs),

    /// Talk to a server: send messages and print replies, or an HTTP GET
    #[command(allow_negative_numbers = true)]
    Talk(TalkArgs),

    /// The whole story of a port: process, parents, unit, container, and why it is busy
    #[command(allow_negative_numbers = true)]
    Who(WhoArgs),

    /// Stop the process listening on a port (SIGTERM; --force ends it)
    #[command(allow_negative_numbers = true)]
    Kill(KillArgs),

    /// Wait until something accepts TCP connections on HOST:PORT
    #[command(allow_negative_numbers = true)]
    Wait(WaitArgs),

    /// TCP connect test of a port or a range of ports on one host
    #[command(allow_negative_numbers = true)]
    Probe(ProbeArgs),

    /// This machine's sockets once, in the Prometheus text format
    Metrics(MetricsArgs),

    /// Every TCP connection as it opens and closes, with its process
    ///
    /// From the kernel's own record of TCP state changes (the
    /// sock:inet_sock_set_state tracepoint), so a connection that lives a
    /// millisecond is still seen with the process that made it. That needs
    /// root (or CAP_PERFMON) and tracefs; without them trace scans the table
    /// every 0.1 s instead, says so once on stderr, and marks each event
    /// "source": "poll". TCP only: UDP has no connections.
    #[command(allow_negative_numbers = true)]
    Trace(TraceArgs),

    /// A live view of the sockets: filter, sort, details, kill (q to leave)
    Top(TopArgs),

    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),

    /// Print the man page (roff) on stdout
    Man,
}

#[derive(Debug, Args)]
pub struct WhatisArgs {
    /// A port (443), a range (6000-6010) or a service name (ssh)
    #[arg(required_unless_present = "search", value_name = "QUERY")]
    pub queries: Vec<String>,

    /// Look for WORD in service names and descriptions
    #[arg(short = 's', long, value_name = "WORD")]
    pub search: Option<String>,

    #[command(flatten)]
    pub transport: TransportFilter,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub transport: TransportFilter,

    /// Only IPv4 sockets
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,

    /// Only IPv6 sockets
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Only listening sockets: TCP LISTEN and unconnected UDP
    #[arg(short = 'l', long)]
    pub listening: bool,

    /// Only TCP sockets in this state (established, time-wait, LISTEN, ...); repeatable
    #[arg(long, value_name = "STATE", value_parser = tcp_state)]
    pub state: Vec<TcpState>,

    /// Only sockets whose local or remote port is PORT or inside LOW-HIGH
    #[arg(long, value_name = "PORT|RANGE", value_parser = port_range, allow_hyphen_values = true)]
    pub port: Option<PortRange>,

    /// Only sockets owned by this process ID
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Only sockets whose process name contains NAME (case-insensitive)
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// Counts by transport and state instead of sockets
    #[arg(short = 's', long, conflicts_with = "watch")]
    pub summary: bool,

    /// Also show each owner's systemd unit and container
    #[arg(short = 'w', long)]
    pub wide: bool,

    /// Also each TCP connection's bytes sent and received, round trip and retransmissions (tcp_info; no root needed). UDP keeps no such counters
    #[arg(short = 'i', long)]
    pub info: bool,

    /// Redraw every SECONDS (default 1); with --json, one line per socket opened or closed
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1",
          value_parser = seconds)]
    pub watch: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct WhoArgs {
    /// The local port to explain
    #[arg(value_name = "PORT", value_parser = port)]
    pub port: u16,

    #[command(flatten)]
    pub transport: TransportFilter,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The port whose listeners to stop
    #[arg(value_name = "PORT", value_parser = port)]
    pub port: u16,

    #[command(flatten)]
    pub transport: TransportFilter,

    /// Seconds to wait for the port to be released after asking (SIGTERM; WM_CLOSE on Windows)
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub timeout: Duration,

    /// End what still holds the port after the timeout (SIGKILL; TerminateProcess on Windows, at once for a process without a window)
    #[arg(long)]
    pub force: bool,

    /// Do not ask; needed when not on a terminal
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Stop the container behind the port through its runtime's API
    #[arg(long, conflicts_with = "force")]
    pub container: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// HOST:PORT to wait for
    #[arg(value_name = "HOST:PORT")]
    pub target: String,

    /// Give up after SECONDS (exit 1)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// HOST:PORT or HOST:LOW-HIGH
    #[arg(value_name = "HOST:PORT|HOST:RANGE")]
    pub target: String,

    /// Connections tried at once
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub concurrency: u64,

    /// Seconds to wait for each connection before calling it no answer
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Ports or LOW-HIGH ranges to check
    #[arg(required = true, value_name = "PORT|RANGE", value_parser = port_range)]
    pub ports: Vec<PortRange>,

    #[command(flatten)]
    pub transport: TransportFilter,

    /// Check only this local address (default: every address, IPv4 and IPv6)
    #[arg(long, value_name = "ADDR", value_parser = ip)]
    pub host: Option<IpAddr>,

    /// Wait until every checked port is free
    #[arg(long)]
    pub wait: bool,

    /// With --wait: give up after SECONDS (exit 1)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct FreeArgs {
    /// A UDP port instead of TCP
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// Free on this local address only (default: every address)
    #[arg(long, value_name = "ADDR", value_parser = ip)]
    pub host: Option<IpAddr>,

    /// Pick inside LOW-HIGH (default: a port the OS hands out)
    #[arg(long, value_name = "LOW-HIGH", value_parser = port_range)]
    pub range: Option<PortRange>,

    /// How many distinct ports
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub count: u32,

    /// Keep the port(s) bound and run CMD with them as descriptors 3.. (systemd socket activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), PORT/PORTS set and {port} replaced in ARGs
    #[arg(long, requires = "command")]
    pub exec: bool,

    /// With --exec: close the sockets just before CMD starts, for programs that bind by themselves (racy)
    #[arg(long, requires = "exec")]
    pub release: bool,

    /// The program to run and its arguments, after --
    #[arg(last = true, value_name = "CMD", requires = "exec")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    /// `welcome!`, then `hello,M!` for each message M; `exit` to leave
    Hello,
    /// Every byte back (RFC 862)
    Echo,
    /// An HTTP/1.1 reply describing the request (text, or JSON on Accept: application/json)
    Http,
    /// This machine's sockets for Prometheus at GET /metrics (default port 9109)
    Metrics,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The protocol to speak
    #[arg(value_enum)]
    pub service: ServiceName,

    /// Serve TCP (the default)
    #[arg(short = 't', long)]
    pub tcp: bool,

    /// Serve UDP; with --tcp, both on the same port number
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// Local address to listen on; 127.0.0.1 keeps it on this machine
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1", value_parser = ip)]
    pub bind: IpAddr,

    /// Exactly this port (0: any); default 9999 or the next free one above
    #[arg(short = 'p', long, value_name = "PORT", value_parser = port, allow_hyphen_values = true)]
    pub port: Option<u16>,

    /// Wait this many milliseconds before each reply (hello)
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub delay: u64,

    /// Connections served at once; more are closed as they arrive
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conn: u64,

    /// No connection logs on stderr
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// metrics: also report whether PORT is free (portctl_port_free); repeatable
    #[arg(long, value_name = "PORT", value_parser = port)]
    pub watch: Vec<u16>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Also report whether PORT is free (portctl_port_free); repeatable
    #[arg(long = "port", value_name = "PORT", value_parser = port)]
    pub ports: Vec<u16>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub transport: TransportFilter,

    /// Only IPv4 connections
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,

    /// Only IPv6 connections
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Only connections whose local or remote port is PORT or inside LOW-HIGH
    #[arg(long, value_name = "PORT|RANGE", value_parser = port_range, allow_hyphen_values = true)]
    pub port: Option<PortRange>,

    /// Only connections of this process ID
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Only connections whose process name contains NAME (case-insensitive)
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// Stop after SECONDS
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub duration: Option<Duration>,

    /// Stop after N events
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Scan the socket table every 0.1 s even where the kernel's record can be read
    #[arg(long)]
    pub poll: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Read the socket table every SECONDS
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct TalkArgs {
    /// Where to connect: HOST:PORT, with HOST a name, an IPv4 address or a bracketed IPv6 address
    #[arg(value_name = "HOST:PORT")]
    pub target: String,

    /// Messages to send, one reply printed for each; none: the lines of stdin
    #[arg(value_name = "MESSAGE")]
    pub messages: Vec<String>,

    /// Send each message as a UDP datagram
    #[arg(short = 'u', long, conflicts_with = "http")]
    pub udp: bool,

    /// Wait at most SECONDS for the connection and for each reply
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub timeout: Duration,

    /// Send an HTTP/1.1 GET for PATH (default /) instead of messages
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/")]
    pub http: Option<String>,

    /// With --http: write the body to FILE
    #[arg(short = 'o', long = "output", value_name = "FILE", requires = "http")]
    pub output_file: Option<std::path::PathBuf>,
}

// `--tcp` / `--udp`: neither or both means both. (A plain comment: with
// deferred subcommands, a doc comment here would become their about text.)
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

    /// The transports asked for, TCP first.
    pub fn protos(&self) -> Vec<Proto> {
        let mut protos = Vec::new();
        if self.wants_tcp() {
            protos.push(Proto::Tcp);
        }
        if self.wants_udp() {
            protos.push(Proto::Udp);
        }
        protos
    }
}

/// clap value parser for a TCP state name.
pub fn tcp_state(text: &str) -> Result<TcpState, String> {
    TcpState::parse(text).ok_or_else(|| {
        "a TCP state is one of established, syn-sent, syn-recv, fin-wait1, fin-wait2, \
         time-wait, close, close-wait, last-ack, listen, closing"
            .to_string()
    })
}

/// clap value parser for a duration in seconds (fractions allowed).
pub fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a duration is a number of seconds from 0 to 86400".to_string())
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

/// The one line SPEC.md asks for, `error: ...` naming the bad value, built
/// from what clap knows about the error rather than from its rendered text.
pub fn one_line_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(list)) => Some(list.join(", ")),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        Some(ContextValue::StyledStrs(list)) => Some(
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Some(ContextValue::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg).unwrap_or_default();
    let value = text(ContextKind::InvalidValue).unwrap_or_default();
    let line = match error.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation if value.is_empty() => {
            format!("a value is required for '{arg}' but none was supplied")
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let allowed = match (
                std::error::Error::source(error),
                text(ContextKind::ValidValue),
            ) {
                (Some(why), _) => format!(": {why}"),
                (None, Some(valid)) => format!(" (possible values: {valid})"),
                (None, None) => String::new(),
            };
            format!("invalid value '{value}' for '{arg}'{allowed}")
        }
        ErrorKind::UnknownArgument => format!("unexpected argument '{arg}' found"),
        ErrorKind::InvalidUtf8 if !value.is_empty() => {
            format!("an argument is not UTF-8 text (only paths may be other bytes): '{value}'")
        }
        ErrorKind::InvalidSubcommand => format!(
            "unrecognized subcommand '{}'",
            text(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        ErrorKind::MissingRequiredArgument => {
            format!("the following required arguments were not provided: {arg}")
        }
        ErrorKind::ArgumentConflict => format!(
            "the argument '{arg}' cannot be used with '{}'",
            text(ContextKind::PriorArg).unwrap_or_default()
        ),
        ErrorKind::TooManyValues => format!("unexpected value '{value}' for '{arg}'"),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            "a subcommand is required; see portctl --help".to_string()
        }
        kind => {
            let what = kind.as_str().unwrap_or("invalid command line");
            match [arg, value]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
            {
                named if named.is_empty() => what.to_string(),
                named => format!("{what}: '{}'", named.join("' '")),
            }
        }
    };
    let suggestion = text(ContextKind::SuggestedArg)
        .or_else(|| text(ContextKind::SuggestedSubcommand))
        .or_else(|| text(ContextKind::SuggestedValue))
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default();
    format!("error: {}{suggestion}", crate::output::sanitize(&line))
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
    fn the_whatis_short_road_parses_like_the_full_cli() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let short = Cli::parse_args(args(&[
            "portctl", "whatis", "443", "--json", "--tcp", "--color", "never",
        ]))
        .unwrap();
        let full = Cli::try_parse_from([
            "portctl", "whatis", "443", "--json", "--tcp", "--color", "never",
        ])
        .unwrap();
        assert_eq!(format!("{short:?}"), format!("{full:?}"));
        let err = Cli::parse_args(args(&["portctl", "whatis", "--bogus"])).unwrap_err();
        assert!(one_line_error(&err).contains("--bogus"));
        WhatisCli::command().debug_assert();
    }

    #[test]
    fn clap_errors_become_one_line() {
        let cases: [&[&str]; 6] = [
            &["portctl", "whatis", "--bogus"],
            &["portctl", "check", "70000"],
            &["portctl", "serve", "gopher"],
            &["portctl", "bogus"],
            &["portctl", "check"],
            &["portctl", "list", "--summary", "--watch"],
        ];
        for (args, named) in cases
            .iter()
            .zip(["--bogus", "70000", "gopher", "bogus", "PORT", "--watch"])
        {
            let err = Cli::try_parse_from(*args).unwrap_err();
            let line = one_line_error(&err);
            assert!(line.starts_with("error: "), "{line}");
            assert!(line.contains(named), "{args:?}: {line}");
            assert!(!line.contains('\n'), "{line}");
        }
        let err = Cli::try_parse_from(["portctl", "check", "70000"]).unwrap_err();
        assert!(one_line_error(&err).contains("0 to 65535"));
    }
}
