//! macOS: the table from netstat2 (sysctl and proc_pidinfo), and the Unix
//! calls. Not compiled here (netstat2 needs the macOS SDK).

pub use super::netstat2::{find_owners, read_table, read_table_with_owners};
pub use super::unix::{
    exec_with_sockets, family_unsupported, is_superuser, local_stream, parent_pid, raise_fd_limit,
    send_signal, user_name, Shutdown,
};

/// Not read on macOS yet: `who` shows what the socket table says.
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

/// macOS has no such sysctls: system ports need root there.
pub fn port_settings() -> crate::settings::PortSettings {
    crate::settings::PortSettings::default()
}

/// `net.inet6.ip6.v6only` is 0 unless changed: `[::]` takes IPv4 too.
pub fn ipv6_only_by_default() -> bool {
    false
}
