//! What portctl answers where an OS does not offer a fact: no process
//! story, no port sysctls, no container sockets, no socket handover, no
//! users. Each OS module re-exports what it lacks from here.

use crate::platform::{Executable, PortSettings, ProcFacts};
use std::io;

pub(super) fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported on this operating system"),
    )
}

/// Not read here: `who` shows what the socket table says. (Windows reads
/// them through sysinfo.)
#[allow(dead_code)] // not every OS door takes it
pub fn process_facts(_pid: u32) -> Option<ProcFacts> {
    None
}

/// No exact start to tell a process from a later one with its PID: a
/// signal goes to the PID as it is.
#[allow(dead_code)] // not every OS door takes it
pub fn process_start(_pid: u32) -> Option<u64> {
    None
}

pub fn process_cgroup(_pid: u32) -> Option<String> {
    None
}

/// No cgroups: nothing to vouch for.
pub fn cgroup_owned_by_root(_controllers: &str, _path: &str) -> Option<bool> {
    None
}

#[allow(dead_code)] // not every OS door takes it
pub fn process_cmdline(_pid: u32) -> Option<Vec<String>> {
    None
}

/// Not known: no process counts as a container runtime's.
pub fn executable(_pid: u32) -> Option<Executable> {
    None
}

pub fn process_uid(_pid: u32) -> Option<u32> {
    None
}

/// No sysctls: nothing is known beyond what a bind says.
pub fn port_settings() -> PortSettings {
    PortSettings::default()
}

/// No Unix sockets to container runtimes.
pub fn local_stream(
    _path: &std::path::Path,
    _timeout: std::time::Duration,
) -> io::Result<LocalStream> {
    Err(unsupported("talking to a container runtime's socket"))
}

/// A stream that cannot exist here.
#[derive(Debug)]
pub enum LocalStream {}

impl LocalStream {
    pub fn set_timeout(&self, _timeout: std::time::Duration) -> io::Result<()> {
        match *self {}
    }
}

impl io::Read for LocalStream {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
}

impl io::Write for LocalStream {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        match *self {}
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self {}
    }
}

/// Handing sockets to another program is Unix's way (socket activation):
/// `free --exec` refuses up front where this is false.
pub const HANDS_OVER_SOCKETS: bool = false;

pub fn exec_with_sockets(
    _program: &std::ffi::OsStr,
    _args: &[std::ffi::OsString],
    _env: &[(String, String)],
    _sockets: Vec<socket2::Socket>,
) -> io::Error {
    unsupported("free --exec")
}

/// No per-process open-file limit of the Unix kind.
pub fn raise_fd_limit() -> u64 {
    u64::MAX
}

pub fn user_name(_uid: u32) -> Option<String> {
    None
}

/// No users to name.
#[allow(dead_code)] // not every OS door takes it
pub fn process_user(_pid: u32) -> Option<String> {
    None
}

/// No kernel record of TCP changes here: `trace` polls the table.
pub fn tcp_changes() -> Result<TcpChanges, crate::platform::TraceError> {
    Err(crate::platform::TraceError::Unsupported)
}

/// A record that cannot exist here.
pub enum TcpChanges {}

impl TcpChanges {
    pub fn next_batch(
        &mut self,
        _wait: std::time::Duration,
    ) -> io::Result<Vec<crate::platform::KernelRecord>> {
        match *self {}
    }

    pub fn lost(&self) -> Option<u64> {
        match *self {}
    }

    pub fn caught_up(&self) -> std::time::SystemTime {
        match *self {}
    }

    pub fn rest(&mut self) -> Vec<crate::platform::KernelRecord> {
        match *self {}
    }
}

/// No other network namespaces to look into.
pub fn listeners_elsewhere() -> Vec<crate::model::Socket> {
    Vec::new()
}

/// No user ids of the Unix kind.
pub fn current_uid() -> Option<u32> {
    None
}

/// No file owners of the Unix kind.
pub fn path_owner(_path: &std::path::Path) -> Option<u32> {
    None
}

/// The first `limit` bytes of `path`, if it is a regular file.
pub fn read_own_file(path: &std::path::Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}
