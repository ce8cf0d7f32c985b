//! The one door to the operating system. Each OS module offers the same
//! functions, chosen in the `cfg` block below; nothing outside `platform`
//! names an OS. A new OS plugs in as one more file with these functions:
//!
//! - `read_table`, `read_table_with_owners`, `find_owners`: the socket
//!   table and which processes own its sockets; `listeners_elsewhere`,
//!   other network namespaces' listeners;
//! - `send_signal`, `parent_pid`, `user_name`,
//!   `process_user`: processes and users (by the socket's uid, or by its
//!   owner where the table has no uid);
//! - `process_facts`, `port_settings`, `local_stream`: the story of a
//!   process, the port sysctls, a container runtime's API socket;
//! - `exec_with_sockets`: `free --exec`'s socket handover;
//! - `prepare_server`, `server_bind`, `privileged_ports`,
//!   `raise_fd_limit`, `family_unsupported`, `ipv6_only_by_default`,
//!   `Shutdown`: how servers and bind probes bind and when they stop;
//! - `unseen_owner`, `is_system_process`, `holder_note`, `signal_name`,
//!   `state_name`: the OS's own words for owners, processes and states.
//!
//! `windows_rules` holds Windows' rules that need no Windows, compiled
//! everywhere under test.
//!
//! The only place portctl calls `unsafe` code (Cargo.toml denies it
//! elsewhere); each block says why it is sound.
#![allow(unsafe_code)]

// The shared types serve the fullest door, Linux's; the others use a part.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod types;

#[cfg(not(target_os = "linux"))]
mod absent;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod ctrl_c;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(any(target_os = "macos", target_os = "windows"))]
mod netstat2;
#[cfg(not(target_os = "linux"))]
mod sysinfo_names;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod unix;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod unsupported;
#[cfg(target_os = "windows")]
mod windows;
#[cfg(any(target_os = "windows", test))]
mod windows_rules;

#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "macos")]
use macos as os;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
use unsupported as os;
#[cfg(target_os = "windows")]
use windows as os;

pub use types::*;

pub use os::{
    cgroup_owned_by_root, current_uid, exec_with_sockets, executable, family_unsupported,
    find_owners, holder_note, ipv6_only_by_default, is_system_process, listeners_elsewhere,
    local_stream, parent_pid, path_owner, port_settings, prepare_server, privileged_ports,
    process_cgroup, process_cmdline, process_facts, process_names, process_start, process_uid,
    process_user, raise_fd_limit, read_own_file, read_table, read_table_with_owners, send_signal,
    server_bind, signal_name, state_name, stdout_width, stop_self, system_processes, tcp_changes,
    unseen_owner, user_name, JobSignals, LocalStream, Shutdown, TcpChanges, HANDS_OVER_SOCKETS,
};
