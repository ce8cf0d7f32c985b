//! The live socket table and the processes that own its sockets, in the
//! terms every OS shares. How each OS reads them lives in `platform`.

use crate::exit::Result;
use crate::model::Socket;
use crate::platform::{self, OwnerQuery, Owners, Scope, Table, TableQuery};
use std::collections::HashSet;

/// Reads the socket table. Never comes back silently empty: if neither the
/// primary source nor the fallback can be read, it is an exit-3 failure.
pub fn read_table(query: &TableQuery) -> Result<Table> {
    Ok(platform::read_table(query)?)
}

/// Reads the table and the owners of all its sockets, concurrently where
/// the platform allows.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners)> {
    Ok(platform::read_table_with_owners(query)?)
}

/// Finds the owners of `sockets` (those with an inode; TIME_WAIT and
/// request sockets have none).
pub fn find_owners<'a>(sockets: impl IntoIterator<Item = &'a Socket>, scope: Scope) -> Owners {
    let inodes: HashSet<u64> = sockets
        .into_iter()
        .map(|s| s.inode)
        .filter(|&inode| inode != 0)
        .collect();
    if inodes.is_empty() {
        return Owners::default();
    }
    platform::find_owners(&OwnerQuery {
        inodes: Some(inodes),
        scope,
    })
}
