//! Windows: the table from netstat2 (GetExtendedTcpTable and friends).
//! Stopping processes, process stories and the excluded port ranges are
//! still to come (issue #13); until then they answer as `absent` says.

pub use super::absent::{
    exec_with_sockets, is_superuser, local_stream, parent_pid, port_settings, process_cgroup,
    process_cmdline, process_exe, process_facts, raise_fd_limit, send_signal, user_name,
};
pub use super::ctrl_c::Shutdown;
pub use super::netstat2::{find_owners, read_table, read_table_with_owners};

use std::io;

/// WSAEAFNOSUPPORT.
pub fn family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(10047)
}

/// Windows sockets take IPv6 only unless told otherwise.
pub fn ipv6_only_by_default() -> bool {
    true
}
