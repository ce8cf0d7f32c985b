//! What portctl answers where an OS does not offer a fact: no process
//! story, no port sysctls, no container sockets, no socket handover, no
//! users. Each OS module re-exports what it lacks from here.

use std::io;

pub(super) fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported on this operating system"),
    )
}

/// Not read here: `who` shows what the socket table says. (Windows reads
/// them through sysinfo.)
#[cfg(not(target_os = "windows"))]
pub fn process_facts(_pid: u32) -> Option<crate::platform::ProcFacts> {
    None
}

pub fn process_cgroup(_pid: u32) -> Option<String> {
    None
}

#[cfg(not(target_os = "windows"))]
pub fn process_cmdline(_pid: u32) -> Option<Vec<String>> {
    None
}

pub fn process_exe(_pid: u32) -> Option<std::path::PathBuf> {
    None
}

/// No sysctls: nothing is known beyond what a bind says.
pub fn port_settings() -> crate::platform::PortSettings {
    crate::platform::PortSettings::default()
}

/// No Unix sockets to container runtimes.
pub fn local_stream(
    _path: &std::path::Path,
    _timeout: std::time::Duration,
) -> io::Result<io::Empty> {
    Err(unsupported("talking to a container runtime's socket"))
}

/// Handing sockets to another program is Unix's way (socket activation).
pub fn exec_with_sockets(
    _program: &std::ffi::OsStr,
    _args: &[std::ffi::OsString],
    _env: &[(String, String)],
    _sockets: Vec<socket2::Socket>,
) -> io::Error {
    unsupported("free --exec")
}

pub fn is_superuser() -> bool {
    false
}

/// No per-process open-file limit of the Unix kind.
pub fn raise_fd_limit() -> u64 {
    u64::MAX
}

pub fn user_name(_uid: u32) -> Option<String> {
    None
}

/// No users to name.
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
pub fn process_user(_pid: u32) -> Option<String> {
    None
}
