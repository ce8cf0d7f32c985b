//! Names to addresses: an IP as given, a name through the system
//! resolver, every address it has (callers try them in turn).

use crate::parse::Host;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve '{name}': no answer in {wait:?}")]
    Timeout { name: String, wait: Duration },
    #[error("cannot resolve '{name}'")]
    Failed {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot resolve '{0}': no addresses")]
    Empty(String),
}

/// Every address of `host`; a name that does not resolve in `wait` is an
/// error.
pub async fn resolve(
    host: &Host,
    port: u16,
    wait: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => name,
    };
    let found = tokio::time::timeout(wait, tokio::net::lookup_host((name.as_str(), port)))
        .await
        .map_err(|_| ResolveError::Timeout {
            name: name.clone(),
            wait,
        })?
        .map_err(|source| ResolveError::Failed {
            name: name.clone(),
            source,
        })?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(ResolveError::Empty(name.clone()));
    }
    Ok(addrs)
}

/// Every address of `host` right now, or none: for callers that ask again
/// (a name may only appear once the service starts).
pub fn resolve_now(host: &Host, port: u16) -> Vec<SocketAddr> {
    match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default(),
    }
}
