//! Any other OS: portctl builds, and says at run time what it cannot do.

pub use super::absent::{
    cgroup_owned_by_root, current_uid, exec_with_sockets, executable, listeners_elsewhere,
    local_stream, path_owner, port_settings, process_cgroup, process_cmdline, process_facts,
    process_start, process_uid, process_user, raise_fd_limit, read_own_file, tcp_changes,
    user_name, LocalStream, TcpChanges, HANDS_OVER_SOCKETS,
};
pub use super::ctrl_c::{stdout_width, stop_self, JobSignals, Shutdown};

use crate::model::{Proto, Signal, TcpState};
use crate::platform::{
    Delivery, OwnerQuery, Owners, ReadError, ServerBind, Table, TableQuery, Unseen,
};
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

/// No way to stop a process is known here.
pub fn send_signal(_pid: u32, _start: Option<u64>, _signal: Signal) -> io::Result<Delivery> {
    Err(super::absent::unsupported("stopping processes"))
}

/// The names of `pids`, from sysinfo.
pub fn process_names(pids: &[u32]) -> std::collections::HashMap<u32, String> {
    super::sysinfo_names::names(pids)
}

pub fn parent_pid() -> Option<u32> {
    None
}

/// A plain bind: no reuse rules are known here.
pub fn prepare_server(_socket: &socket2::Socket, _proto: Proto) -> io::Result<()> {
    Ok(())
}

/// Nothing else is known: binds are read as on Unix.
pub fn server_bind() -> ServerBind {
    ServerBind::ReuseAddr
}

pub fn privileged_ports() -> bool {
    true
}

pub fn unseen_owner() -> Unseen {
    Unseen::OtherUser
}

pub fn is_system_process(_pid: u32, _name: Option<&str>) -> bool {
    false
}

pub fn system_processes() -> &'static str {
    "the system's own processes"
}

pub fn holder_note(_pid: u32) -> Option<&'static str> {
    None
}

pub fn signal_name(signal: Signal) -> &'static str {
    signal.as_str()
}

pub fn state_name(state: TcpState) -> &'static str {
    state.as_str()
}
