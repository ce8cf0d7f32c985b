//! The words for every fact, in one place for text and JSON alike: why a
//! port is held, who a holder is, what a note means, why a bind is
//! refused, the OS's names for states and signals. Facts are data; this
//! is how they read. Outside text is escaped here.

use super::{endpoint, sanitize};
use crate::facts::bind::Unbindable;
use crate::facts::containers::{self, Container};
use crate::facts::port_story::WhoSocket;
use crate::facts::process::Proc;
use crate::facts::socket_record::SocketRecord;
use crate::facts::stop::StopError;
use crate::facts::why_busy::{Lingering, Note};
use crate::model::{Signal, TcpState};
use crate::platform::{self, ServerBind, Unseen};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// A TCP state as the OS's own tools print it (`LISTENING` on Windows);
/// JSON keeps one spelling everywhere.
pub fn state(state: TcpState) -> &'static str {
    platform::state_name(state)
}

/// A signal as the OS names it: SIGTERM, or WM_CLOSE on Windows.
pub fn signal(signal: Signal) -> &'static str {
    platform::signal_name(signal)
}

/// Why a signal was not sent. The OS says only "Operation not
/// permitted"; the user is told what would be.
pub fn signal_failure(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        "not permitted: it is another user's process (run as that user, or as root with the right to signal it)".to_string()
    } else {
        e.to_string()
    }
}

/// Bytes in IEC units, one word (a column stays one field when piped):
/// `512B`, `1.5KiB`, `20.0MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// A rate in IEC units per second: `0B/s`, `2.0MiB/s`.
pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", bytes(bytes_per_second.max(0.0).round() as u64))
}

/// A round-trip time: `0.42ms`, `35ms`.
pub fn rtt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// `nginx (pid 77)`, or `pid 77`.
pub fn process(p: &Proc) -> String {
    match &p.process {
        Some(name) => format!("{} (pid {})", sanitize(name), p.pid),
        None => format!("pid {}", p.pid),
    }
}

/// Why a port is held, as one sentence: who holds it, or why that cannot
/// be said.
pub fn held(holders: &[SocketRecord]) -> String {
    if holders.is_empty() {
        return match platform::unseen_owner() {
            // Every socket is in the table there: no namespaces.
            Unseen::NoProcess => "in use, but the system's table shows no socket holding it",
            _ => "in use, but no socket holding it is visible here (another network namespace?)",
        }
        .to_string();
    }
    if holders.iter().all(|h| h.state == Some(TcpState::TimeWait)) {
        let addresses: Vec<IpAddr> = holders.iter().map(|h| h.local_addr).collect();
        let why = match platform::server_bind() {
            ServerBind::ReuseAddr => format!(
                "left by a socket without SO_REUSEADDR: no server can bind it {}",
                on_addresses(&addresses)
            ),
            ServerBind::Exclusive => format!(
                "left by a server that bound it exclusively: no server can bind it exclusively {}",
                on_addresses(&addresses)
            ),
        };
        return format!(
            "held by {} connection{} in TIME_WAIT {why} until they end",
            holders.len(),
            plural(holders.len())
        );
    }
    if holders.iter().all(|h| h.pid.is_none()) {
        return format!("held by {}", hidden_owner(first_user(holders), "name it"));
    }
    let mut text = String::from("in use by ");
    for (i, holder) in holders.iter().enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        text.push_str(&describe(holder));
    }
    // What the OS needs said about a holder (Windows' PID 4), once.
    if let Some(note) = holders
        .iter()
        .find_map(|h| h.pid.and_then(platform::holder_note))
    {
        let _ = write!(text, " ({note})");
    }
    text
}

/// `on 127.0.0.1`, `on 127.0.0.1 and ::1`, or `on any address` where a
/// wildcard is among them: a server on another specific address is not
/// kept out.
fn on_addresses(addresses: &[IpAddr]) -> String {
    let mut unique: Vec<IpAddr> = addresses.iter().map(|a| a.to_canonical()).collect();
    unique.sort_unstable();
    unique.dedup();
    if unique.is_empty() || unique.iter().any(IpAddr::is_unspecified) {
        return "on any address".to_string();
    }
    let shown: Vec<String> = unique.iter().map(IpAddr::to_string).collect();
    format!("on {}", shown.join(" and "))
}

fn first_user(holders: &[SocketRecord]) -> Option<&str> {
    holders.iter().find_map(|h| h.user.as_deref())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `python3 (pid 1234) on 0.0.0.0:9999 LISTEN, unit x.service`.
pub fn describe(h: &SocketRecord) -> String {
    let mut text = match (&h.process, h.pid) {
        (Some(name), Some(pid)) => format!("{} (pid {pid})", sanitize(name)),
        (None, Some(pid)) => format!("pid {pid}"),
        _ => "a process you cannot see".to_string(),
    };
    let _ = write!(text, " on {}", endpoint(h.local(), false));
    match h.state {
        Some(TcpState::Close) => text.push_str(" (bound, not listening)"),
        Some(s) => {
            let _ = write!(text, " {}", state(s));
        }
        None => {}
    }
    if let Some(c) = &h.container {
        let _ = write!(text, ", {}", container(c));
        if let Some(port) = c.port {
            let _ = write!(text, " port {port}");
        }
    } else if let Some(unit) = &h.unit {
        let _ = write!(text, ", unit {}", sanitize(unit));
    }
    text
}

/// `container web (docker, image nginx:1.27)`; a pod's container names
/// its pod.
pub fn container(c: &Container) -> String {
    let mut text = if c.name.is_none() && c.id.is_none() {
        // Its runtime's API did not answer, or listed nothing there.
        format!("an unnamed container ({}", c.runtime)
    } else {
        format!("container {} ({}", sanitize(&c.label()), c.runtime)
    };
    if let Some(image) = &c.image {
        let _ = write!(text, ", image {}", sanitize(image));
    }
    match (&c.pod, &c.namespace, &c.pod_uid) {
        (Some(pod), Some(namespace), _) => {
            let _ = write!(text, ", pod {}/{}", sanitize(namespace), sanitize(pod));
        }
        (_, _, Some(uid)) => {
            let _ = write!(text, ", pod {}", sanitize(uid));
        }
        _ => {}
    }
    text.push(')');
    text
}

/// Where a socket is when root sees no process holding it. A descriptor
/// sent over a Unix socket and not yet received is held by no process:
/// any user can leave one so.
const BEYOND: &str = "a process in another PID namespace, a descriptor in flight over a Unix socket, or the kernel's own";

/// A holder whose process portctl cannot see. As a normal user that is
/// another user's process, and sudo names it; as root it is the socket's
/// user's, somewhere `BEYOND` says, and sudo would change nothing;
/// on Windows the system reports no process for it. `to`: what sudo
/// would let the user do ("name it", "stop it").
pub fn hidden_owner(user: Option<&str>, to: &str) -> String {
    match (platform::unseen_owner(), user) {
        (Unseen::Beyond, user) => format!(
            "{}no process visible here ({BEYOND})",
            user.map(|u| format!("user {}, through ", sanitize(u)))
                .unwrap_or_default()
        ),
        (Unseen::NoProcess, _) => "no process the system names (it reports PID 0)".to_string(),
        (Unseen::NoCapabilities { ptrace, dac }, _) => format!(
            "a process portctl cannot inspect: it runs without {}, which it needs to {to}",
            capabilities(ptrace, dac)
        ),
        // One's own socket that no process of one's own holds.
        (Unseen::OtherUser, Some(user)) if is_me(user) => format!(
            "user {}, through no process visible here ({BEYOND})",
            sanitize(user)
        ),
        (Unseen::OtherUser, Some(user)) => format!(
            "a process of user {} you cannot see; run with sudo to {to}",
            sanitize(user)
        ),
        (Unseen::OtherUser, None) => format!("a process you cannot see; run with sudo to {to}"),
    }
}

/// Whether `user` is the one portctl runs as.
fn is_me(user: &str) -> bool {
    platform::current_uid()
        .and_then(platform::user_name)
        .is_some_and(|me| me == user)
}

/// The capabilities missing to read other processes' descriptors.
fn capabilities(ptrace: bool, dac: bool) -> &'static str {
    match (ptrace, dac) {
        (true, false) => "CAP_SYS_PTRACE",
        (false, true) => "CAP_DAC_READ_SEARCH",
        _ => "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
    }
}

/// The hint `list` gives when some sockets have no visible owner.
pub fn unowned_hint(count: usize) -> String {
    let sockets = if count == 1 { "socket" } else { "sockets" };
    match platform::unseen_owner() {
        Unseen::Beyond => format!("{count} {sockets} without a visible owner: {BEYOND}"),
        Unseen::NoProcess => {
            format!("{count} {sockets} the system reports without an owning process (PID 0)")
        }
        Unseen::NoCapabilities { ptrace, dac } => format!(
            "{count} {sockets} of processes portctl cannot inspect: add {} to see their owners",
            capabilities(ptrace, dac)
        ),
        Unseen::OtherUser => format!(
            "{count} {sockets} of processes you cannot inspect; run with sudo to see their owners"
        ),
    }
}

/// `nginx (pid 77, www-data)`, `pid 77`, or why the owner is hidden.
pub fn holder(s: &WhoSocket) -> String {
    let r = &s.socket;
    match (&r.process, r.pid) {
        (Some(name), Some(pid)) => {
            let user = r
                .user
                .as_deref()
                .map(|u| format!(", {}", sanitize(u)))
                .unwrap_or_default();
            format!("{} (pid {pid}{user})", sanitize(name))
        }
        (None, Some(pid)) => format!("pid {pid}"),
        // Inode 0: TIME_WAIT and the like, which no process owns.
        _ if r.inode == 0 => "no process: the kernel keeps it until it ends".to_string(),
        _ => hidden_owner(r.user.as_deref(), "name it"),
    }
}

/// The command line, escaped, its words joined by spaces.
pub fn command(s: &WhoSocket) -> Option<String> {
    let words: Vec<String> = s
        .cmdline
        .as_ref()?
        .iter()
        .map(|a| sanitize(a).into_owned())
        .collect();
    Some(words.join(" "))
}

/// `bash (4100) < sshd (880) < systemd (1)`; `None` without parents.
pub fn parent_chain(s: &WhoSocket) -> Option<String> {
    if s.parents.is_empty() {
        return None;
    }
    let chain: Vec<String> = s
        .parents
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                sanitize(p.process.as_deref().unwrap_or("?")),
                p.pid
            )
        })
        .collect();
    Some(chain.join(" < "))
}

/// Why a port nobody holds cannot be bound.
pub fn unbindable(why: &Unbindable) -> String {
    match why {
        Unbindable::Privileged { port, start } => match start {
            Some(start) if *start != 1024 => format!(
                "{port} is below net.ipv4.ip_unprivileged_port_start ({start}): binding it needs root or CAP_NET_BIND_SERVICE"
            ),
            _ => format!("{port} is a system port: binding it needs root or CAP_NET_BIND_SERVICE"),
        },
        Unbindable::Excluded { port, proto, ip } => format!(
            "{port}/{proto} lies in a port range Windows excluded from binding (Hyper-V, WSL and Docker reserve them; no process holds it): `netsh int {} show excludedportrange protocol={proto}` lists the ranges",
            if ip.is_ipv4() { "ipv4" } else { "ipv6" }
        ),
        Unbindable::NotLocal { ip } => format!("{ip} is not an address of this machine"),
        Unbindable::Failed { ip, error } => format!("cannot bind {ip}: {}", sanitize(error)),
        Unbindable::PortZero => "0 is not a port a server can listen on: a bind to port 0 asks the OS for any free port".to_string(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// A note as one sentence.
pub fn note(note: &Note) -> String {
    match note {
        Note::TimeWait {
            port,
            count,
            longest,
            addresses,
            effect,
            bind,
        } => {
            let left = longest.map_or_else(String::new, |d| format!(", the last for {}", seconds(d)));
            format!(
                "{count} connection{} in TIME_WAIT{left}{}",
                plural(*count),
                lingering(*port, addresses, *effect, *bind)
            )
        }
        Note::HiddenOwner {
            count,
            user,
            unseen: _,
        } => format!(
            "{count} socket{} held by {}",
            plural(*count),
            hidden_owner(user.as_deref(), "name it")
        ),
        Note::BoundInactive { port, bindable } => format!(
            "a socket is bound to {port} without listening: {}",
            if *bindable {
                "no server answers; a server that sets SO_REUSEADDR can still bind it, one that does not gets \"address in use\""
            } else {
                "no server answers, yet the port cannot be bound"
            }
        ),
        Note::Privileged { port, start } => format!(
            "{port} is below net.ipv4.ip_unprivileged_port_start ({start}): binding it needs root or CAP_NET_BIND_SERVICE"
        ),
        Note::Reserved { port } => format!(
            "{port} is in net.ipv4.ip_local_reserved_ports: the kernel never hands it out by itself, a server may still bind it"
        ),
        Note::Ephemeral { port, range } => format!(
            "{port} is in the ephemeral range {range} (net.ipv4.ip_local_port_range): outgoing connections may take it at any time"
        ),
        Note::ContainerPublished {
            port,
            proto,
            container: c,
        } => format!(
            "{port}/{proto} forwards into {}{}",
            container(c),
            c.port.map(|p| format!(" port {p}")).unwrap_or_default()
        ),
        Note::Excluded(why) => unbindable(why),
        Note::SystemHolder(text) => text.to_string(),
    }
}

/// What connections in TIME_WAIT mean for a server binding `port` the
/// way servers bind on this OS.
fn lingering(port: u16, addresses: &[IpAddr], effect: Lingering, bind: ServerBind) -> String {
    match (effect, bind) {
        (Lingering::ReuseAddrBinds, ServerBind::ReuseAddr) => format!(
            ": a server that sets SO_REUSEADDR can bind {port} now; one that does not gets \"address in use\" until then"
        ),
        (Lingering::BlocksEveryBind, ServerBind::ReuseAddr) => format!(
            ": the socket that left them did not set SO_REUSEADDR, so no server can bind {port} {} until the last one ends",
            on_addresses(addresses)
        ),
        (Lingering::ReuseAddrBinds, ServerBind::Exclusive) => {
            format!(": they do not keep a server from binding {port}")
        }
        (Lingering::BlocksEveryBind, ServerBind::Exclusive) => format!(
            ": the server that left them bound {port} exclusively, so an exclusive bind {} fails until the last one ends",
            on_addresses(addresses)
        ),
        (Lingering::BesideHolders, _) => String::new(),
    }
}

/// Why `kill` (or `top`'s `k`) will not stop what holds a port.
pub fn refusal(e: &StopError) -> String {
    match e {
        StopError::Table(e) => e.to_string(),
        StopError::RuntimeProcess {
            port,
            process,
            container: Some(c),
        } => format!(
            "port {port} is published by {}: portctl never stops {}, which serves every container; stop the container with `{}`, or add --container",
            container(c),
            sanitize(process),
            sanitize(&containers::stop_command(c))
        ),
        StopError::RuntimeProcess {
            port,
            process,
            container: None,
        } => format!(
            "port {port} is held by {}, a container runtime's own process: portctl never stops it",
            sanitize(process)
        ),
        StopError::Hidden { port, user } => format!(
            "port {port} is held by {}",
            hidden_owner(user.as_deref(), "stop it")
        ),
        StopError::Protected { target, what, note } => format!(
            "refusing to signal {}: portctl never stops {what}, itself or its parent{}",
            process(target),
            note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::cgroup::Runtime;
    use crate::model::{Family, Proto};
    use crate::parse::PortRange;

    fn record(state: TcpState, inode: u64) -> SocketRecord {
        let ip = "127.0.0.1".parse().unwrap();
        SocketRecord {
            proto: Proto::Tcp,
            family: Family::Ipv4,
            local_addr: ip,
            local_port: 8080,
            remote_addr: ip,
            remote_port: 50000,
            state: Some(state),
            pid: None,
            process: None,
            user: None,
            inode,
            service: None,
            pids: Vec::new(),
            unit: None,
            container: None,
            runtime: None,
            traffic: None,
            info: None,
        }
    }

    fn who(r: SocketRecord) -> WhoSocket {
        WhoSocket {
            socket: r,
            cmdline: None,
            started: None,
            parents: Vec::new(),
        }
    }

    #[test]
    fn amounts_read_in_iec_units() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20.0MiB");
        assert_eq!(bytes(u64::MAX), "16384.0PiB");
        assert_eq!(rate(2.0 * 1024.0 * 1024.0), "2.0MiB/s");
        assert_eq!(rate(-5.0), "0B/s");
        assert_eq!(rtt(Duration::from_micros(420)), "0.42ms");
        assert_eq!(rtt(Duration::from_millis(35)), "35ms");
    }

    #[test]
    fn time_wait_has_no_process_and_a_hidden_owner_is_not_none() {
        let lingering = holder(&who(record(TcpState::TimeWait, 0)));
        assert_eq!(lingering, "no process: the kernel keeps it until it ends");
        let hidden = holder(&who(record(TcpState::Established, 4242)));
        assert_ne!(hidden, lingering);
    }

    #[test]
    fn time_wait_means_what_the_os_binds_by() {
        let one: [IpAddr; 1] = ["127.0.0.1".parse().unwrap()];
        let unix = |effect| lingering(8080, &one, effect, ServerBind::ReuseAddr);
        assert!(unix(Lingering::ReuseAddrBinds).contains("SO_REUSEADDR can bind 8080 now"));
        let blocks = unix(Lingering::BlocksEveryBind);
        assert!(
            blocks.contains("no server can bind 8080 on 127.0.0.1 until"),
            "another address is not kept out: {blocks}"
        );
        let any: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "0.0.0.0".parse().unwrap()];
        assert!(lingering(
            8080,
            &any,
            Lingering::BlocksEveryBind,
            ServerBind::ReuseAddr
        )
        .contains("on any address"));
        let windows = |effect| lingering(8080, &one, effect, ServerBind::Exclusive);
        let binds = windows(Lingering::ReuseAddrBinds);
        assert!(
            binds.contains("do not keep a server from binding 8080"),
            "{binds}"
        );
        assert!(!binds.contains("SO_REUSEADDR"), "{binds}");
        assert!(windows(Lingering::BlocksEveryBind).contains("exclusively"));
        assert!(windows(Lingering::BesideHolders).is_empty());
    }

    #[test]
    fn time_wait_notes_count_and_give_the_longest_wait() {
        let text = note(&Note::TimeWait {
            port: 8080,
            count: 2,
            longest: Some(Duration::from_millis(59_000)),
            addresses: vec!["127.0.0.1".parse().unwrap()],
            effect: Lingering::ReuseAddrBinds,
            bind: ServerBind::ReuseAddr,
        });
        assert!(
            text.starts_with("2 connections in TIME_WAIT, the last for 59.0s"),
            "{text}"
        );
    }

    #[test]
    fn settings_notes_read_as_sentences() {
        assert!(note(&Note::Privileged {
            port: 80,
            start: 1024
        })
        .contains("below net.ipv4.ip_unprivileged_port_start (1024)"));
        assert!(note(&Note::Reserved { port: 40000 }).contains("ip_local_reserved_ports"));
        let range = PortRange {
            low: 32768,
            high: 60999,
        };
        assert!(note(&Note::Ephemeral { port: 40001, range }).contains("32768-60999"));
    }

    #[test]
    fn unbindable_reasons_read_as_sentences() {
        let privileged = |start| unbindable(&Unbindable::Privileged { port: 80, start });
        assert!(privileged(Some(1024)).contains("80 is a system port"));
        assert!(privileged(None).contains("80 is a system port"));
        assert!(privileged(Some(2000)).contains("below net.ipv4.ip_unprivileged_port_start (2000)"));
        let excluded = unbindable(&Unbindable::Excluded {
            port: 50000,
            proto: Proto::Tcp,
            ip: "0.0.0.0".parse().unwrap(),
        });
        assert!(excluded.contains("50000/tcp lies in a port range Windows excluded"));
        assert!(excluded.contains("netsh int ipv4 show excludedportrange protocol=tcp"));
        assert!(!excluded.contains("root"));
        let v6 = unbindable(&Unbindable::Excluded {
            port: 8080,
            proto: Proto::Udp,
            ip: "::".parse().unwrap(),
        });
        assert!(v6.contains("netsh int ipv6 show excludedportrange protocol=udp"));
        assert!(unbindable(&Unbindable::NotLocal {
            ip: "192.0.2.1".parse().unwrap()
        })
        .contains("not an address of this machine"));
        assert!(unbindable(&Unbindable::PortZero).contains("any free port"));
    }

    #[test]
    fn containers_read_with_their_runtime_image_and_pod() {
        let c = Container {
            runtime: Runtime::Kubernetes,
            id: Some("251d2c1ecce4c3eee6073dceb855c719".into()),
            name: None,
            image: Some("nginx\u{1b}[31m".into()),
            port: Some(80),
            pod_uid: Some("0b8e6f3c-1b1a-4b0e-9d2a-3f5c1e2d4a6b".into()),
            pod: None,
            namespace: None,
            api: None,
        };
        assert_eq!(
            container(&c),
            "container 251d2c1ecce4 (kubernetes, image nginx\\e[31m, pod 0b8e6f3c-1b1a-4b0e-9d2a-3f5c1e2d4a6b)"
        );
    }
}
