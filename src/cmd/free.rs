//! `portctl free`: ports free to bind right now — printed, or with
//! `--exec` kept bound and handed to a program, so nobody can take them
//! between the choice and the program's start.

use crate::cli::FreeArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::bind::{bind_server, check_addresses, pick_free};
use crate::facts::socket_handover;
use crate::model::Proto;
use crate::output::{self, write_array, Format, Output};
use crate::platform;
use serde::Serialize;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One line of `free --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreeRecord {
    pub port: u16,
    pub proto: Proto,
}

pub fn run(args: &FreeArgs, output: Output) -> Result<Exit> {
    let proto = if args.udp { Proto::Udp } else { Proto::Tcp };
    if !args.command.is_empty() {
        // Before any port is picked: where sockets cannot be handed over,
        // nothing is bound for nothing.
        if !platform::HANDS_OVER_SOCKETS {
            return Err(Error::usage(
                "free --exec hands sockets over the Unix way (systemd socket activation): it is not available on this operating system",
            ));
        }
        return exec(args, proto);
    }
    let ports = pick(args, proto)?;
    let printed = write_free(io::stdout().lock(), output, &ports, proto);
    output::deliver(Exit::Ok, printed)
}

/// `-n` distinct ports free on every address `--host` covers.
fn pick(args: &FreeArgs, proto: Proto) -> Result<Vec<u16>> {
    let wanted = args.count as usize;
    let ports = pick_free(proto, &check_addresses(args.host), args.range, wanted)
        .map_err(|e| Error::io("cannot bind to pick a port", e))?;
    if ports.len() < wanted {
        let range = args
            .range
            .map_or("the OS's ephemeral range".to_string(), |r| r.to_string());
        return Err(Error::negative(format!(
            "only {} of the {wanted} {proto} ports asked for are free in {range}",
            ports.len()
        )));
    }
    Ok(ports)
}

/// One port per line, or a JSON array.
fn write_free<W: Write>(mut out: W, output: Output, ports: &[u16], proto: Proto) -> io::Result<()> {
    if output.format == Format::Json {
        return write_array(out, ports.iter().map(|&port| FreeRecord { port, proto }));
    }
    for port in ports {
        writeln!(out, "{port}")?;
    }
    out.flush()
}

/// Picks, binds and keeps the ports, then becomes CMD with them (or,
/// with `--release`, lets go just before). Returns only on failure.
fn exec(args: &FreeArgs, proto: Proto) -> Result<Exit> {
    // The sockets are bound on `--host`, or on loopback: nothing is
    // exposed unless asked.
    let at = args.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut sockets = Vec::new();
    let mut ports = Vec::new();
    // A port picked free may be taken before it is bound: pick again.
    for _ in 0..8 {
        for port in pick(args, proto)? {
            if let Ok(socket) = bind_server(SocketAddr::new(at, port), proto, 1024) {
                sockets.push(socket);
                ports.push(port);
            }
            if ports.len() == args.count as usize {
                break;
            }
        }
        if ports.len() == args.count as usize {
            break;
        }
    }
    if ports.len() < args.count as usize {
        return Err(Error::negative(format!(
            "could not keep {} free {proto} ports bound on {at}",
            args.count
        )));
    }
    let handed = if args.release { 0 } else { sockets.len() };
    let env = socket_handover::environment(&ports, proto, handed, std::process::id());
    if args.release {
        sockets.clear(); // the documented race: CMD binds by itself
    }
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::usage("free --exec needs a command after --"))?;
    let error = platform::exec_with_sockets(
        program,
        &socket_handover::substitute(rest, ports[0]),
        &env,
        sockets,
    );
    Err(Error::Exec {
        program: program.to_string_lossy().into_owned(),
        reason: match error.kind() {
            io::ErrorKind::NotFound => "command not found".to_string(),
            io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => error.to_string(),
        },
        not_found: error.kind() == io::ErrorKind::NotFound,
    })
}
