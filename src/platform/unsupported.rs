//! Any other OS: portctl builds, and says at run time what it cannot do.

pub use super::absent::{
    exec_with_sockets, is_superuser, local_stream, parent_pid, port_settings, process_cgroup,
    process_cmdline, process_exe, process_facts, raise_fd_limit, send_signal, user_name,
};
pub use super::ctrl_c::Shutdown;

use crate::sockets::{OwnerQuery, Owners, ReadError, Table, TableQuery};
use std::io;

pub fn read_table(_query: &TableQuery) -> Result<Table, ReadError> {
    Err(ReadError::Unsupported)
}

pub fn read_table_with_owners(_query: &TableQuery) -> Result<(Table, Owners), ReadError> {
    Err(ReadError::Unsupported)
}

pub fn find_owners(_query: &OwnerQuery) -> Owners {
    Owners::from_pairs(Vec::new(), true)
}

pub fn family_unsupported(_e: &io::Error) -> bool {
    false
}

pub fn ipv6_only_by_default() -> bool {
    false
}
