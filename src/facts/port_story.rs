//! The whole story of one port, as `who` tells it and `top` shows it:
//! every socket on the port with its owner's command line, start and
//! parents, unit and container, and the notes on why the port is or is not
//! bindable beyond them.

use crate::facts::bind;
use crate::exit::Result;
use crate::facts::port_holders::HiddenOwner;
use crate::model::{Proto, Socket};
use crate::facts::why_busy::{self, Note};
use crate::output::sanitize;
use crate::platform;
use crate::facts::process::{self, Parent};
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::platform::TableQuery;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `who --json`: a port, its sockets and its notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Story {
    pub port: u16,
    pub sockets: Vec<WhoSocket>,
    pub notes: Vec<Note>,
}

/// A socket on the port with everything known about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoSocket {
    #[serde(flatten)]
    pub socket: SocketRecord,
    /// The owner's full command line.
    pub cmdline: Option<Vec<String>>,
    /// When the owner started (RFC 3339).
    pub started: Option<String>,
    /// The owner's parents, nearest first, up to PID 1.
    pub parents: Vec<Parent>,
}

impl WhoSocket {
    /// `nginx (pid 77, www-data)`, `pid 77`, or why the owner is hidden.
    pub fn holder(&self) -> String {
        let r = &self.socket;
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
            _ => HiddenOwner::of(std::slice::from_ref(r), "name it").to_string(),
        }
    }

    /// The command line, escaped, its words joined by spaces.
    pub fn command(&self) -> Option<String> {
        let cmdline = self.cmdline.as_ref()?;
        let words: Vec<String> = cmdline.iter().map(|a| sanitize(a).into_owned()).collect();
        Some(words.join(" "))
    }

    /// `bash (4100) < sshd (880) < systemd (1)`; `None` without parents.
    pub fn parent_chain(&self) -> Option<String> {
        if self.parents.is_empty() {
            return None;
        }
        let chain: Vec<String> = self
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
}

/// One process's story, read once however many sockets it holds.
#[derive(Debug, Clone, Default)]
struct Owner {
    cmdline: Option<Vec<String>>,
    started: Option<String>,
    parents: Vec<Parent>,
}

fn owner(pid: u32) -> Owner {
    let Some(facts) = platform::process_facts(pid) else {
        return Owner::default();
    };
    Owner {
        started: facts
            .started
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        parents: process::parents(&facts),
        cmdline: Some(facts.cmdline),
    }
}

/// Every socket on `port` (listeners first), its owner's story, and the
/// notes.
pub fn story(port: u16, protos: &[Proto]) -> Result<Story> {
    let (snapshot, records) = sockets_on(port, protos)?;
    let tcp = bind::probe(port, Proto::Tcp, &bind::check_addresses(None));
    let notes = why_busy::notes(
        port,
        protos,
        &snapshot.sockets,
        &records,
        &platform::port_settings(),
        &tcp,
    );
    let mut stories: HashMap<u32, Owner> = HashMap::new();
    let sockets = records
        .into_iter()
        .map(|socket| {
            let owner = socket
                .pid
                .map(|pid| stories.entry(pid).or_insert_with(|| owner(pid)).clone())
                .unwrap_or_default();
            WhoSocket {
                socket,
                cmdline: owner.cmdline,
                started: owner.started,
                parents: owner.parents,
            }
        })
        .collect();
    Ok(Story {
        port,
        sockets,
        notes,
    })
}

/// The sockets bound to local `port` (every state, bound-inactive ones
/// too) and their records.
fn sockets_on(port: u16, protos: &[Proto]) -> Result<(Snapshot, Vec<SocketRecord>)> {
    let query = TableQuery {
        tcp: protos.contains(&Proto::Tcp),
        udp: protos.contains(&Proto::Udp),
        ipv4: true,
        ipv6: true,
        tcp_states: None,
        bound_inactive: true,
    };
    let mut on_port: Vec<Socket> = sockets::read_table(&query)?.sockets;
    on_port.retain(|s| s.local.port() == port);
    // Listeners first, then the rest in a stable order.
    on_port.sort_by_key(|s| (!s.is_listening(), s.proto, s.state, s.local, s.remote));
    on_port.dedup_by_key(|s| (s.proto, s.local, s.remote, s.inode));
    let owners = sockets::find_owners(&on_port, crate::platform::Scope::Every);
    let names = process::names(&owners.pids_of(&on_port));
    let snapshot = Snapshot {
        sockets: on_port,
        owners,
        names,
    };
    let mut lookups = Lookups::new(true);
    let records = snapshot
        .sockets
        .iter()
        .map(|s| snapshot.record(s, &mut lookups))
        .collect();
    Ok((snapshot, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, TcpState};

    fn unowned(inode: u64, state: TcpState) -> WhoSocket {
        let ip = "127.0.0.1".parse().unwrap();
        WhoSocket {
            socket: SocketRecord {
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
            },
            cmdline: None,
            started: None,
            parents: Vec::new(),
        }
    }

    #[test]
    fn time_wait_has_no_process_and_a_hidden_owner_is_not_none() {
        let lingering = unowned(0, TcpState::TimeWait).holder();
        assert_eq!(lingering, "no process: the kernel keeps it until it ends");
        let hidden = unowned(4242, TcpState::Established).holder();
        assert_ne!(hidden, lingering);
    }
}
