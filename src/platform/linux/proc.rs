//! What `/proc` says about one process and about this machine's port
//! settings. Readers are thin; the parsing is pure and tested on text.

use crate::platform::ProcFacts;
use crate::platform::PortSettings;
use std::time::{Duration, SystemTime};

/// The facts of one process, or `None` once it is gone.
pub fn process_facts(pid: u32) -> Option<ProcFacts> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (ppid, start_ticks) = parse_stat(&stat)?;
    Some(ProcFacts {
        ppid: (ppid != 0).then_some(ppid),
        cmdline: process_cmdline(pid).unwrap_or_default(),
        started: started(start_ticks),
    })
}

/// The text of `/proc/PID/cgroup`.
pub fn process_cgroup(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
}

/// The program a process runs (`/proc/PID/exe`); `None` where it may not
/// be read (another user's process) or is gone.
pub fn process_exe(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The arguments of `/proc/PID/cmdline`.
pub fn process_cmdline(pid: u32) -> Option<Vec<String>> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|bytes| parse_cmdline(&bytes))
}

/// (ppid, start time in clock ticks since boot) from `/proc/PID/stat`.
/// The command name is in parentheses and may hold spaces or `)`: the
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), ... starttime (22).
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// NUL-separated arguments, as text (invalid UTF-8 replaced).
fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Boot time (`btime` in `/proc/stat`) plus the start in clock ticks.
/// The boot time is read once: the kernel derives it from the wall clock,
/// so a clock step between two reads would shift one process against
/// another (and a parent could seem younger than its child).
fn started(ticks: u64) -> Option<SystemTime> {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let boot = match BOOT.get() {
        Some(&boot) => boot,
        // Kept only once read: a failed read (no descriptors left) is
        // tried again next time.
        None => {
            let read = parse_btime(&std::fs::read_to_string("/proc/stat").ok()?)?;
            *BOOT.get_or_init(|| read)
        }
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)?;
    let since_boot = Duration::from_millis(ticks.checked_mul(1000)? / per_second);
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(boot) + since_boot)
}

fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The sysctls that decide which ports a server may bind, and whether
/// this process may bind below the unprivileged start.
pub fn port_settings() -> PortSettings {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    PortSettings::parse(
        read("ip_unprivileged_port_start").as_deref(),
        read("ip_local_port_range").as_deref(),
        read("ip_local_reserved_ports").as_deref(),
        cap_net_bind_service(&status),
    )
}

/// Whether `CapEff` in `/proc/PID/status` holds CAP_NET_BIND_SERVICE (10).
fn cap_net_bind_service(status: &str) -> Option<bool> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let caps = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(caps & (1 << 10) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_hostile_names() {
        let line =
            "4242 (a) b) c) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some((17, 987_654)));
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdlines_and_boot_time() {
        assert_eq!(
            parse_cmdline(b"/usr/sbin/docker-proxy\0-proto\0tcp\0"),
            ["/usr/sbin/docker-proxy", "-proto", "tcp"]
        );
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            cap_net_bind_service("CapEff:\t000001ffffffffff\n"),
            Some(true)
        );
        assert_eq!(
            cap_net_bind_service("CapEff:\t0000000000000000\n"),
            Some(false)
        );
        assert_eq!(cap_net_bind_service("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_facts() {
        let facts = process_facts(std::process::id()).unwrap();
        assert!(facts.ppid.is_some());
        assert!(!facts.cmdline.is_empty());
        let started = facts.started.unwrap();
        assert!(started <= SystemTime::now());
        assert!(SystemTime::now().duration_since(started).unwrap() < Duration::from_secs(3600));
    }
}
