//! Any other OS: portctl builds, and says at run time what it cannot do.

pub use super::ctrl_c::Shutdown;

use crate::model::Signal;
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

pub fn send_signal(_pid: u32, _signal: Signal) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "stopping processes is not supported on this operating system",
    ))
}

pub fn parent_pid() -> Option<u32> {
    None
}

pub fn is_superuser() -> bool {
    false
}

pub fn raise_fd_limit() -> u64 {
    u64::MAX
}

pub fn family_unsupported(_e: &io::Error) -> bool {
    false
}

pub fn user_name(_uid: u32) -> Option<String> {
    None
}

pub fn ipv6_only_by_default() -> bool {
    false
}

/// Not read here yet: `who` shows what the socket table says.
pub fn process_facts(_pid: u32) -> Option<crate::process::ProcFacts> {
    None
}

pub fn process_cgroup(_pid: u32) -> Option<String> {
    None
}

pub fn process_cmdline(_pid: u32) -> Option<Vec<String>> {
    None
}

pub fn process_exe(_pid: u32) -> Option<std::path::PathBuf> {
    None
}

pub fn port_settings() -> crate::settings::PortSettings {
    crate::settings::PortSettings::default()
}

/// No Unix sockets to container runtimes here.
pub fn local_stream(
    _path: &std::path::Path,
    _timeout: std::time::Duration,
) -> io::Result<io::Empty> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "container runtime sockets are not supported here",
    ))
}

/// Handing sockets to another program is Unix's way (socket activation).
pub fn exec_with_sockets(
    _program: &std::ffi::OsStr,
    _args: &[std::ffi::OsString],
    _env: &[(String, String)],
    _sockets: Vec<socket2::Socket>,
) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "free --exec is not supported on this operating system",
    )
}
