//! Handing bound sockets to another program the way systemd socket
//! activation does: descriptors from 3 on, `LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`, and `PORT`/`PORTS` and `{port}` for programs that
//! only want the number. Pure: the platform does the exec.

use crate::model::Proto;
use std::ffi::OsString;

/// The environment CMD gets: `sockets` is the number of descriptors
/// handed over (0 with `--release`), `pid` CMD's pid (portctl's own: the
/// exec keeps it).
pub fn environment(ports: &[u16], proto: Proto, sockets: usize, pid: u32) -> Vec<(String, String)> {
    let mut env = vec![("PORT".to_string(), ports[0].to_string())];
    if ports.len() > 1 {
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        env.push(("PORTS".into(), all.join(" ")));
    }
    if sockets > 0 {
        let names: Vec<String> = ports.iter().map(|p| format!("{proto}-{p}")).collect();
        env.push(("LISTEN_FDS".into(), sockets.to_string()));
        env.push(("LISTEN_PID".into(), pid.to_string()));
        env.push(("LISTEN_FDNAMES".into(), names.join(":")));
    }
    env
}

/// CMD's arguments with every `{port}` replaced by the (first) port.
pub fn substitute(args: &[OsString], port: u16) -> Vec<OsString> {
    let port = port.to_string();
    args.iter()
        .map(|arg| match arg.to_str() {
            Some(text) if text.contains("{port}") => OsString::from(text.replace("{port}", &port)),
            _ => arg.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_style_environment() {
        let env = environment(&[8080, 8081], Proto::Tcp, 2, 4242);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT"), Some("8080"));
        assert_eq!(get("PORTS"), Some("8080 8081"));
        assert_eq!(get("LISTEN_FDS"), Some("2"));
        assert_eq!(get("LISTEN_PID"), Some("4242"));
        assert_eq!(get("LISTEN_FDNAMES"), Some("tcp-8080:tcp-8081"));
        let released = environment(&[9000], Proto::Udp, 0, 1);
        assert_eq!(released, [("PORT".to_string(), "9000".to_string())]);
    }

    #[test]
    fn port_substitution() {
        let args: Vec<OsString> = ["--bind", "127.0.0.1:{port}", "{port}{port}", "x"]
            .iter()
            .map(OsString::from)
            .collect();
        let out = substitute(&args, 8080);
        assert_eq!(out, ["--bind", "127.0.0.1:8080", "80808080", "x"]);
    }
}
