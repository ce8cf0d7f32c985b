//! Why a port is or is not bindable beyond its holders: the notes `who`
//! tells and `check` adds (SPEC.md, `who`), each from a fact of the
//! kernel or the machine's settings, never a guess.

use crate::facts::bind::{Unbindable, Verdict};
use crate::platform::ServerBind;
use crate::facts::port_holders::{ContainerText, HiddenOwner};
use crate::model::{Proto, Socket, TcpState};
use crate::platform;
use crate::facts::socket_record::SocketRecord;
use crate::platform::PortSettings;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteKind {
    TimeWait,
    HiddenOwner,
    BoundInactive,
    Privileged,
    Reserved,
    Ephemeral,
    ContainerPublished,
    /// In a port range the OS excluded from binding (Windows).
    Excluded,
    /// Held by the system on behalf of another program (Windows' http.sys).
    SystemHolder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    pub text: String,
}

/// What connections in TIME_WAIT mean for a server that wants the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lingering {
    /// A bind with SO_REUSEADDR succeeds now (the usual case).
    ReuseAddrBinds,
    /// Nothing else holds the port, yet even SO_REUSEADDR fails: the
    /// socket that left them did not set it.
    BlocksEveryBind,
    /// Something else holds the port anyway.
    BesideHolders,
}

/// Connections in TIME_WAIT on local `port`: how many, the longest time
/// one has left, and what that means for a server.
pub fn time_wait(port: u16, proto: Proto, sockets: &[Socket], effect: Lingering) -> Option<Note> {
    let waiting: Vec<&Socket> = sockets
        .iter()
        .filter(|s| {
            s.proto == proto && s.local.port() == port && s.state == Some(TcpState::TimeWait)
        })
        .collect();
    if waiting.is_empty() {
        return None;
    }
    let longest = waiting.iter().filter_map(|s| s.time_wait_left).max();
    let left = longest.map_or_else(String::new, |d| format!(", the last for {}", seconds(d)));
    let meaning = lingering_meaning(port, effect, platform::server_bind());
    Some(Note {
        kind: NoteKind::TimeWait,
        text: format!(
            "{} connection{} in TIME_WAIT{left}{meaning}",
            waiting.len(),
            if waiting.len() == 1 { "" } else { "s" },
        ),
    })
}

/// What connections in TIME_WAIT mean for a server binding `port` the
/// way servers bind on this OS.
fn lingering_meaning(port: u16, effect: Lingering, model: ServerBind) -> String {
    match (effect, model) {
        (Lingering::ReuseAddrBinds, ServerBind::ReuseAddr) => format!(
            ": a server that sets SO_REUSEADDR can bind {port} now; one that does not gets \"address in use\" until then"
        ),
        (Lingering::BlocksEveryBind, ServerBind::ReuseAddr) => format!(
            ": the socket that left them did not set SO_REUSEADDR, so no server can bind {port} until the last one ends"
        ),
        (Lingering::ReuseAddrBinds, ServerBind::Exclusive) => {
            format!(": they do not keep a server from binding {port}")
        }
        (Lingering::BlocksEveryBind, ServerBind::Exclusive) => format!(
            ": the server that left them bound {port} exclusively, so an exclusive bind fails until the last one ends"
        ),
        (Lingering::BesideHolders, _) => String::new(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Every note about `port` on `protos`: from the sockets on it (`sockets`,
/// raw, TIME_WAIT included), their records, and the machine's settings.
/// `tcp`: what a server binding the TCP port right now meets (a real bind
/// probe), which decides what TIME_WAIT means and finds excluded ranges.
pub fn notes(
    port: u16,
    protos: &[Proto],
    sockets: &[Socket],
    records: &[SocketRecord],
    settings: &PortSettings,
    tcp: &Verdict,
) -> Vec<Note> {
    let tcp_bindable = *tcp == Verdict::Free;
    let mut notes: Vec<Note> = protos
        .iter()
        .flat_map(|&proto| socket_notes(port, proto, sockets, records, tcp_bindable))
        .collect();
    if let Verdict::Unbindable(why @ Unbindable::Excluded { .. }) = tcp {
        notes.push(Note {
            kind: NoteKind::Excluded,
            text: why.to_string(),
        });
    }
    notes.extend(system_holder_notes(records));
    notes.extend(settings_notes(port, settings));
    notes
}

/// What the OS needs said about a holder beyond its name (Windows' PID 4
/// serving http.sys), once per holder.
fn system_holder_notes(records: &[SocketRecord]) -> Vec<Note> {
    let mut pids: Vec<u32> = records.iter().filter_map(|r| r.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(platform::holder_note)
        .map(|text| Note {
            kind: NoteKind::SystemHolder,
            text: text.to_string(),
        })
        .collect()
}

/// What the sockets on `port`/`proto` say.
fn socket_notes(
    port: u16,
    proto: Proto,
    sockets: &[Socket],
    records: &[SocketRecord],
    tcp_bindable: bool,
) -> Vec<Note> {
    let mut notes = Vec::new();
    let on_port: Vec<&SocketRecord> = records
        .iter()
        .filter(|r| r.proto == proto && r.local_port == port)
        .collect();
    for r in on_port.iter().filter(|r| r.container.is_some()) {
        let is_proxy = r.held_by_runtime();
        if let (true, Some(container)) = (is_proxy, &r.container) {
            notes.push(Note {
                kind: NoteKind::ContainerPublished,
                text: format!(
                    "{port}/{proto} forwards into {}{}",
                    ContainerText(container),
                    container
                        .port
                        .map(|p| format!(" port {p}"))
                        .unwrap_or_default()
                ),
            });
            break;
        }
    }
    let others_hold = on_port.iter().any(|r| r.state != Some(TcpState::TimeWait));
    let effect = match (tcp_bindable, others_hold) {
        (true, _) => Lingering::ReuseAddrBinds,
        (false, true) => Lingering::BesideHolders,
        (false, false) => Lingering::BlocksEveryBind,
    };
    if let Some(note) = time_wait(port, proto, sockets, effect) {
        notes.push(note);
    }
    let hidden: Vec<SocketRecord> = on_port
        .iter()
        .filter(|r| r.pid.is_none() && r.inode != 0)
        .map(|r| (*r).clone())
        .collect();
    if !hidden.is_empty() {
        notes.push(Note {
            kind: NoteKind::HiddenOwner,
            text: format!(
                "{} socket{} held by {}",
                hidden.len(),
                if hidden.len() == 1 { "" } else { "s" },
                HiddenOwner::of(&hidden, "name it")
            ),
        });
    }
    if proto == Proto::Tcp
        && on_port
            .iter()
            .any(|r| r.state == Some(TcpState::Close) && r.inode != 0)
    {
        let meaning = if tcp_bindable {
            "no server answers; a server that sets SO_REUSEADDR can still bind it, one that does not gets \"address in use\""
        } else {
            "no server answers, yet the port cannot be bound"
        };
        notes.push(Note {
            kind: NoteKind::BoundInactive,
            text: format!("a socket is bound to {port} without listening: {meaning}"),
        });
    }
    notes
}

/// What the machine's settings say about `port`, whatever the transport.
fn settings_notes(port: u16, settings: &PortSettings) -> Vec<Note> {
    let mut notes = Vec::new();
    if settings.needs_privilege(port) {
        notes.push(Note {
            kind: NoteKind::Privileged,
            text: format!(
                "{port} is below net.ipv4.ip_unprivileged_port_start ({}): binding it needs root or CAP_NET_BIND_SERVICE",
                settings.unprivileged_start.unwrap_or(1024)
            ),
        });
    }
    if settings.is_reserved(port) {
        notes.push(Note {
            kind: NoteKind::Reserved,
            text: format!(
                "{port} is in net.ipv4.ip_local_reserved_ports: the kernel never hands it out by itself, a server may still bind it"
            ),
        });
    }
    // A reserved port is never handed to outgoing connections.
    let ephemeral = settings
        .ephemeral
        .filter(|r| r.contains(port) && !settings.is_reserved(port));
    if let Some(range) = ephemeral {
        notes.push(Note {
            kind: NoteKind::Ephemeral,
            text: format!(
                "{port} is in the ephemeral range {range} (net.ipv4.ip_local_port_range): outgoing connections may take it at any time"
            ),
        });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(port: u16, left_ms: u64) -> Socket {
        Socket {
            proto: Proto::Tcp,
            local: format!("127.0.0.1:{port}").parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            state: Some(TcpState::TimeWait),
            inode: 0,
            uid: Some(0),
            v6only: None,
            time_wait_left: Some(Duration::from_millis(left_ms)),
        }
    }

    #[test]
    fn time_wait_means_what_the_os_binds_by() {
        let unix = |effect| lingering_meaning(8080, effect, ServerBind::ReuseAddr);
        assert!(unix(Lingering::ReuseAddrBinds).contains("SO_REUSEADDR can bind 8080 now"));
        assert!(unix(Lingering::BlocksEveryBind).contains("no server can bind 8080"));
        let windows = |effect| lingering_meaning(8080, effect, ServerBind::Exclusive);
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
    fn time_wait_counts_and_the_longest_wait() {
        let sockets = [tw(8080, 1500), tw(8080, 59_000), tw(9090, 1)];
        let note = time_wait(8080, Proto::Tcp, &sockets, Lingering::ReuseAddrBinds).unwrap();
        assert!(
            note.text
                .starts_with("2 connections in TIME_WAIT, the last for 59.0s"),
            "{}",
            note.text
        );
        assert!(time_wait(8080, Proto::Tcp, &sockets, Lingering::BlocksEveryBind).is_some());
        assert_eq!(
            time_wait(8080, Proto::Udp, &sockets, Lingering::ReuseAddrBinds),
            None
        );
    }

    #[test]
    fn settings_notes() {
        let settings = PortSettings::parse(
            Some("1024"),
            Some("32768 60999"),
            Some("40000"),
            Some(false),
        );
        let kinds = |port| -> Vec<NoteKind> {
            notes(
                port,
                &[Proto::Tcp, Proto::Udp],
                &[],
                &[],
                &settings,
                &Verdict::Free,
            )
            .into_iter()
            .map(|n| n.kind)
            .collect()
        };
        assert_eq!(kinds(80), [NoteKind::Privileged]);
        assert_eq!(kinds(40000), [NoteKind::Reserved]);
        assert_eq!(kinds(40001), [NoteKind::Ephemeral]);
        assert!(kinds(8080).is_empty());
    }

    #[test]
    fn an_excluded_range_is_a_note_of_its_own() {
        let excluded = Verdict::Unbindable(Unbindable::Excluded {
            port: 50000,
            proto: Proto::Tcp,
            ip: "0.0.0.0".parse().unwrap(),
        });
        let notes = notes(
            50000,
            &[Proto::Tcp],
            &[],
            &[],
            &PortSettings::default(),
            &excluded,
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].kind, NoteKind::Excluded);
        assert!(notes[0].text.contains("excludedportrange"));
    }
}
