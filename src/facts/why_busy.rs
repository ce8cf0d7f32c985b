//! Why a port is or is not bindable beyond its holders: the notes `who`
//! tells and `check` adds (SPEC.md, `who`), each from a fact of the
//! kernel or the machine's settings, never a guess. Notes are data; how
//! they read is `output::words`.

use crate::facts::bind::{Unbindable, Verdict};
use crate::facts::containers::Container;
use crate::facts::socket_record::SocketRecord;
use crate::model::{Proto, Socket, TcpState};
use crate::parse::PortRange;
use crate::platform::{self, PortSettings, ServerBind, Unseen};
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// What a note is about, as `--json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// One reason a port is or is not bindable, with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Connections in TIME_WAIT on the port: how many, the longest time
    /// one has left, the local addresses they hold, and what they mean
    /// for a server binding the way servers bind here.
    TimeWait {
        port: u16,
        count: usize,
        longest: Option<Duration>,
        addresses: Vec<IpAddr>,
        effect: Lingering,
        bind: ServerBind,
    },
    /// Sockets whose process cannot be seen, and why.
    HiddenOwner {
        count: usize,
        user: Option<String>,
        unseen: Unseen,
    },
    /// A socket bound without listening; `bindable`: a SO_REUSEADDR
    /// server can still bind the port.
    BoundInactive {
        port: u16,
        bindable: bool,
    },
    /// Below the unprivileged start, without the privilege to bind it.
    Privileged {
        port: u16,
        start: u16,
    },
    Reserved {
        port: u16,
    },
    Ephemeral {
        port: u16,
        range: PortRange,
    },
    ContainerPublished {
        port: u16,
        proto: Proto,
        container: Container,
    },
    Excluded(Unbindable),
    /// The OS's own words about a holder (Windows' PID 4).
    SystemHolder(&'static str),
}

impl Note {
    pub fn kind(&self) -> NoteKind {
        match self {
            Note::TimeWait { .. } => NoteKind::TimeWait,
            Note::HiddenOwner { .. } => NoteKind::HiddenOwner,
            Note::BoundInactive { .. } => NoteKind::BoundInactive,
            Note::Privileged { .. } => NoteKind::Privileged,
            Note::Reserved { .. } => NoteKind::Reserved,
            Note::Ephemeral { .. } => NoteKind::Ephemeral,
            Note::ContainerPublished { .. } => NoteKind::ContainerPublished,
            Note::Excluded(_) => NoteKind::Excluded,
            Note::SystemHolder(_) => NoteKind::SystemHolder,
        }
    }
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
    let mut addresses: Vec<IpAddr> = waiting
        .iter()
        .map(|s| s.local.ip().to_canonical())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    Some(Note::TimeWait {
        port,
        count: waiting.len(),
        longest: waiting.iter().filter_map(|s| s.time_wait_left).max(),
        addresses,
        effect,
        bind: platform::server_bind(),
    })
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
        notes.push(Note::Excluded(why.clone()));
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
        .map(Note::SystemHolder)
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
    let published = on_port
        .iter()
        .filter(|r| r.held_by_runtime())
        .find_map(|r| r.container.clone());
    if let Some(container) = published {
        notes.push(Note::ContainerPublished {
            port,
            proto,
            container,
        });
    }
    let others_hold = on_port.iter().any(|r| r.state != Some(TcpState::TimeWait));
    let effect = match (tcp_bindable, others_hold) {
        (true, _) => Lingering::ReuseAddrBinds,
        (false, true) => Lingering::BesideHolders,
        (false, false) => Lingering::BlocksEveryBind,
    };
    notes.extend(time_wait(port, proto, sockets, effect));
    let hidden: Vec<&&SocketRecord> = on_port
        .iter()
        .filter(|r| r.pid.is_none() && r.inode != 0)
        .collect();
    if !hidden.is_empty() {
        notes.push(Note::HiddenOwner {
            count: hidden.len(),
            user: hidden.iter().find_map(|r| r.user.clone()),
            unseen: platform::unseen_owner(),
        });
    }
    if proto == Proto::Tcp
        && on_port
            .iter()
            .any(|r| r.state == Some(TcpState::Close) && r.inode != 0)
    {
        notes.push(Note::BoundInactive {
            port,
            bindable: tcp_bindable,
        });
    }
    notes
}

/// What the machine's settings say about `port`, whatever the transport.
fn settings_notes(port: u16, settings: &PortSettings) -> Vec<Note> {
    let mut notes = Vec::new();
    if settings.needs_privilege(port) {
        notes.push(Note::Privileged {
            port,
            start: settings.unprivileged_start.unwrap_or(1024),
        });
    }
    if settings.is_reserved(port) {
        notes.push(Note::Reserved { port });
    }
    // A reserved port is never handed to outgoing connections.
    let ephemeral = settings
        .ephemeral
        .filter(|r| r.contains(port) && !settings.is_reserved(port));
    if let Some(range) = ephemeral {
        notes.push(Note::Ephemeral { port, range });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(local: &str, left_ms: u64) -> Socket {
        Socket {
            proto: Proto::Tcp,
            local: local.parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            state: Some(TcpState::TimeWait),
            inode: 0,
            uid: Some(0),
            v6only: None,
            time_wait_left: Some(Duration::from_millis(left_ms)),
            traffic: None,
        }
    }

    #[test]
    fn time_wait_counts_the_longest_wait_and_the_addresses() {
        let sockets = [
            tw("127.0.0.1:8080", 1500),
            tw("127.0.0.2:8080", 59_000),
            tw("[::ffff:127.0.0.1]:8080", 10),
            tw("127.0.0.1:9090", 1),
        ];
        let Some(Note::TimeWait {
            count,
            longest,
            addresses,
            ..
        }) = time_wait(8080, Proto::Tcp, &sockets, Lingering::ReuseAddrBinds)
        else {
            panic!("a time-wait note");
        };
        assert_eq!(count, 3);
        assert_eq!(longest, Some(Duration::from_millis(59_000)));
        assert_eq!(
            addresses,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
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
            .iter()
            .map(Note::kind)
            .collect()
        };
        assert_eq!(kinds(80), [NoteKind::Privileged]);
        assert_eq!(kinds(40000), [NoteKind::Reserved]);
        assert_eq!(kinds(40001), [NoteKind::Ephemeral]);
        assert!(kinds(8080).is_empty());
        // Port 0 is not a port a server binds: no privilege note for it.
        assert!(kinds(0).is_empty());
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
        assert_eq!(notes[0].kind(), NoteKind::Excluded);
    }
}
