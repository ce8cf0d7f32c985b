//! The live socket table and the processes that own its sockets, in the
//! terms every OS shares. How each OS reads them lives in `platform`.

use crate::model::{Proto, Socket, TcpState};
use crate::platform::{self, OwnerQuery, Owners, ReadError, Scope, Table, TableQuery};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Reads the socket table. Never comes back silently empty: if neither the
/// primary source nor the fallback can be read, it is an exit-3 failure.
pub fn read_table(query: &TableQuery) -> Result<Table, ReadError> {
    platform::read_table(query)
}

/// Reads the table and the owners of all its sockets, concurrently where
/// the platform allows.
pub fn read_table_with_owners(query: &TableQuery) -> Result<(Table, Owners), ReadError> {
    platform::read_table_with_owners(query)
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

/// One row of `list --summary --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub proto: Proto,
    /// `null` for UDP.
    pub state: Option<TcpState>,
    pub count: usize,
}

/// Counts by transport and state, each transport's largest first.
pub fn summarize(sockets: &[Socket]) -> Vec<SummaryRow> {
    let mut counts: HashMap<(Proto, Option<TcpState>), usize> = HashMap::new();
    for s in sockets {
        *counts.entry((s.proto, s.state)).or_default() += 1;
    }
    let mut rows: Vec<SummaryRow> = counts
        .into_iter()
        .map(|((proto, state), count)| SummaryRow {
            proto,
            state,
            count,
        })
        .collect();
    rows.sort_by(|a, b| (a.proto, b.count, a.state).cmp(&(b.proto, a.count, b.state)));
    rows
}
