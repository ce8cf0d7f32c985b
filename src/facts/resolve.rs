//! Names to addresses: an IP as given, a name through the system
//! resolver, every address it has (callers try them in turn).

use crate::exit::{Error, Result};
use crate::parse::Host;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Every address of `host`; a name that does not resolve in `wait` is an
/// operational failure (exit 3).
pub async fn resolve(host: &Host, port: u16, wait: Duration) -> Result<Vec<SocketAddr>> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => name,
    };
    let found = tokio::time::timeout(wait, tokio::net::lookup_host((name.as_str(), port)))
        .await
        .map_err(|_| Error::failure(format!("cannot resolve '{name}': no answer in {wait:?}")))?
        .map_err(|e| Error::failure(format!("cannot resolve '{name}': {e}")))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(Error::failure(format!(
            "cannot resolve '{name}': no addresses"
        )));
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
