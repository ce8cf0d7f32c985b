//! Who holds a port: the sockets bound to it and their owners, read once
//! for many ports. How that is worded is `output::words`.

use crate::facts::bind::conflicts;
use crate::facts::process;
use crate::facts::socket_record::{Lookups, Snapshot, SocketRecord};
use crate::facts::sockets;
use crate::model::{Proto, Socket, TcpState};
use crate::platform::{ReadError, Scope, TableQuery};
use std::collections::HashMap;
use std::net::IpAddr;

/// Who holds each of `keys` (port, transport): the listeners where there
/// are any, otherwise every socket bound to the port, bound-but-inactive
/// ones included (TIME_WAIT aside, which never blocks a SO_REUSEADDR
/// server). One table read and one owner scan serve every key. `host`
/// narrows to sockets that conflict with a server binding it.
pub fn find_holders(
    keys: &[(u16, Proto)],
    host: Option<IpAddr>,
    scope: Scope,
) -> Result<HashMap<(u16, Proto), Vec<SocketRecord>>, ReadError> {
    let mut result: HashMap<(u16, Proto), Vec<SocketRecord>> = HashMap::new();
    if keys.is_empty() {
        return Ok(result);
    }
    let mut states = TcpState::ALL.to_vec();
    states.retain(|s| *s != TcpState::TimeWait);
    let query = TableQuery {
        tcp: keys.iter().any(|(_, p)| *p == Proto::Tcp),
        udp: keys.iter().any(|(_, p)| *p == Proto::Udp),
        ipv4: true,
        ipv6: true,
        tcp_states: Some(states),
        bound_inactive: true,
        traffic: false,
    };
    let mut held: Vec<Socket> = sockets::read_table(&query)?.sockets;
    held.retain(|s| {
        keys.contains(&(s.local.port(), s.proto))
            && host.is_none_or(|h| conflicts(s.local.ip(), s.v6only, h))
    });
    // A socket seen twice (a listener also dumped as bound) is one holder.
    held.sort_unstable_by_key(|s| (s.proto, s.local, s.inode));
    held.dedup_by_key(|s| (s.proto, s.local, s.inode));
    let owners = sockets::find_owners(&held, scope);
    let names = process::names(&owners.pids_of(&held));
    let snapshot = Snapshot {
        sockets: held,
        owners,
        names,
    };
    // TCP ports nothing else holds may be held by TIME_WAIT alone.
    let unheld: Vec<u16> = keys
        .iter()
        .filter(|(port, proto)| {
            *proto == Proto::Tcp
                && !snapshot
                    .sockets
                    .iter()
                    .any(|s| s.local.port() == *port && s.proto == *proto)
        })
        .map(|(port, _)| *port)
        .collect();
    let lingering = time_wait_on(&unheld, host)?;
    let mut lookups = Lookups::new(true);
    for key in keys {
        let on_port = snapshot
            .sockets
            .iter()
            .filter(|s| (s.local.port(), s.proto) == *key);
        let any_listener = on_port.clone().any(Socket::is_listening);
        let mut holders: Vec<SocketRecord> = on_port
            .filter(|s| !any_listener || s.is_listening())
            .map(|s| snapshot.record(s, &mut lookups))
            .collect();
        if holders.is_empty() {
            // Nothing else: connections in TIME_WAIT whose socket did not
            // set SO_REUSEADDR hold the port against every server.
            holders = lingering
                .iter()
                .filter(|s| (s.local.port(), s.proto) == *key)
                .map(|s| snapshot.record(s, &mut lookups))
                .collect();
        }
        result.insert(*key, holders);
    }
    Ok(result)
}

/// TCP connections in TIME_WAIT on `ports` (local), where they conflict
/// with `host`. Read on demand: the kernel filters by state, so this
/// costs little.
pub fn time_wait_on(ports: &[u16], host: Option<IpAddr>) -> Result<Vec<Socket>, ReadError> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let query = TableQuery {
        udp: false,
        tcp_states: Some(vec![TcpState::TimeWait]),
        ..TableQuery::all()
    };
    let mut sockets = sockets::read_table(&query)?.sockets;
    sockets.retain(|s| {
        ports.contains(&s.local.port()) && host.is_none_or(|h| conflicts(s.local.ip(), s.v6only, h))
    });
    Ok(sockets)
}
