//! macOS: the table from netstat2 (sysctl and proc_pidinfo), and the Unix
//! calls. Not compiled here (netstat2 needs the macOS SDK).

pub use super::absent::{
    cgroup_owned_by_root, executable, listeners_elsewhere, port_settings, process_cgroup,
    process_cmdline, process_facts, process_start, process_uid, tcp_changes, TcpChanges,
};
pub use super::netstat2::{find_owners, read_table, read_table_with_owners};
pub use super::unix::{
    current_uid, exec_with_sockets, family_unsupported, holder_note, is_superuser,
    is_system_process, local_stream, parent_pid, path_owner, prepare_server, privileged_ports,
    process_user, raise_fd_limit, read_own_file, send_signal, server_bind, signal_name, state_name,
    stdout_width, stop_self, system_processes, unseen_owner, user_name, JobSignals, LocalStream,
    Shutdown, HANDS_OVER_SOCKETS,
};

/// Root reads every process's sockets here (no capability sets): as
/// root nothing is missing, as a user (both) everything is.
pub fn missing_capabilities() -> (bool, bool) {
    let missing = !is_superuser();
    (missing, missing)
}

/// `net.inet6.ip6.v6only` is 0 unless changed: `[::]` takes IPv4 too.
pub fn ipv6_only_by_default() -> bool {
    false
}

/// The names of `pids`, from sysinfo.
pub fn process_names(pids: &[u32]) -> std::collections::HashMap<u32, String> {
    super::sysinfo_names::names(pids)
}
