//! What `/proc` says about processes and about this machine's port
//! settings. Readers are thin; the parsing is pure and tested on text.

use crate::platform::{Executable, PortSettings, ProcFacts};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The facts of one process, or `None` once it is gone.
pub fn process_facts(pid: u32) -> Option<ProcFacts> {
    let stat = read_lossy(&format!("/proc/{pid}/stat"))?;
    let (ppid, start_ticks) = parse_stat(&stat)?;
    Some(ProcFacts {
        ppid: (ppid != 0).then_some(ppid),
        cmdline: process_cmdline(pid).unwrap_or_default(),
        started: started(start_ticks),
        start: Some(start_ticks),
    })
}

/// When `pid` started, in clock ticks since boot: exact, and never the
/// same for two processes that held the PID one after the other.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = read_lossy(&format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).map(|(_, start)| start)
}

/// A `/proc` file as text. `stat` and `status` carry the process's name
/// as its bytes, which need not be UTF-8 (`prctl(PR_SET_NAME)` takes any):
/// read as strict text they would make the process's start and user
/// unknown, and so turn off the checks that rest on them.
fn read_lossy(path: &str) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The names of `pids` (`/proc/PID/comm`, as `ps` and `ss` show them).
pub fn process_names(pids: &[u32]) -> HashMap<u32, String> {
    pids.iter()
        .filter_map(|&pid| {
            let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
            let name = comm.strip_suffix(b"\n").unwrap_or(&comm);
            Some((pid, String::from_utf8_lossy(name).into_owned()))
        })
        .collect()
}

/// The real user a process runs as (`Uid:` in `/proc/PID/status`, which
/// every user may read).
pub fn process_uid(pid: u32) -> Option<u32> {
    let status = read_lossy(&format!("/proc/{pid}/status"))?;
    parse_uid(&status)
}

fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The program `pid` runs and whether only root could have put it there:
/// the file (as the kernel holds it open, so a rename since changes
/// nothing) and every directory of its path owned by root and writable by
/// nobody else. The path is the one the process sees, so its folders are
/// looked at through its own root (`/proc/PID/root`), in its own mount
/// namespace: a user who bind-mounts a root's file under a runtime's name
/// in a namespace of their own is seen with the folders they made, and
/// the fleet image sees the host's folders, not its own. The file found
/// there must be the one running. `None` where it may not be read
/// (another user's process, without privileges) or is gone.
pub fn executable(pid: u32) -> Option<Executable> {
    let link = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&link).ok()?;
    // A file replaced since the start reads "… (deleted)"; its directory
    // is still where it was.
    let (path, deleted) = match target.to_str().and_then(|t| t.strip_suffix(" (deleted)")) {
        Some(kept) => (PathBuf::from(kept), true),
        None => (target, false),
    };
    let file = std::fs::metadata(&link).ok()?;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let seen = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    // The same file where the path leads (a deleted one leads nowhere).
    let same_file = deleted
        || std::fs::metadata(seen(&path))
            .is_ok_and(|m| (m.dev(), m.ino()) == (file.dev(), file.ino()));
    let root_owned = path.is_absolute()
        && same_file
        && only_root_may_write(file.uid(), file.mode())
        && path.ancestors().skip(1).all(|dir| {
            std::fs::symlink_metadata(seen(dir))
                .is_ok_and(|m| only_root_may_write(m.uid(), m.mode()))
        });
    Some(Executable { path, root_owned })
}

/// Owned by root, and neither its group nor others may write to it.
fn only_root_may_write(uid: u32, mode: u32) -> bool {
    uid == 0 && mode & 0o022 == 0
}

/// Whether every directory from the cgroup hierarchy's mount down to
/// `path` is owned by root: a delegated subtree (one handed to a user,
/// who may then make folders named like anything) is not. `controllers`
/// names the hierarchy as `/proc/PID/cgroup` does (empty for v2,
/// `name=systemd`, `cpu,cpuacct`, …). `None` where the hierarchy is not
/// mounted here or the folder cannot be found (another cgroup namespace).
pub fn cgroup_owned_by_root(controllers: &str, path: &str) -> Option<bool> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = cgroup_mount(&mounts, controllers)?;
    let relative = path.trim_start_matches('/');
    if relative.split('/').any(|part| part == "..") {
        return None;
    }
    let mut dir = mount.clone();
    let mut owners = vec![std::fs::symlink_metadata(&dir).ok()?.uid()];
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        owners.push(std::fs::symlink_metadata(&dir).ok()?.uid());
    }
    Some(owners.iter().all(|&uid| uid == 0))
}

/// Where the cgroup hierarchy of `controllers` is mounted, from
/// `/proc/self/mountinfo`: the mount whose root is `/` (a bind mount of a
/// subtree would shift every path).
fn cgroup_mount(mountinfo: &str, controllers: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        let mut rest = after.split(' ');
        let fstype = rest.next()?;
        let options = rest.nth(1).unwrap_or_default();
        let matches = match fstype {
            "cgroup2" => controllers.is_empty(),
            "cgroup" => {
                let wanted: Vec<&str> = controllers.split(',').collect();
                !controllers.is_empty()
                    && wanted.iter().all(|c| options.split(',').any(|o| o == *c))
            }
            _ => false,
        };
        (matches && *root == "/").then(|| Path::new(&unescape_mount(point)).to_path_buf())
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of `/proc/PID/cgroup`.
pub fn process_cgroup(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
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

/// NUL-terminated arguments, as text (invalid UTF-8 replaced). An empty
/// argument is an argument (`printf ''`); only the final NUL ends one.
fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
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
    let per_second = Some(rustix::param::clock_ticks_per_second()).filter(|&t| t > 0)?;
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
        effective_caps(&status).map(|caps| caps & CAP_NET_BIND_SERVICE != 0),
    )
}

const CAP_DAC_OVERRIDE: u64 = 1 << 1;
const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_SYS_PTRACE: u64 = 1 << 19;

/// The effective capability set, `CapEff` in `/proc/PID/status`.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// What this process lacks to read every other process's descriptors:
/// opening `/proc/PID/fd` of another user takes CAP_DAC_READ_SEARCH (or
/// CAP_DAC_OVERRIDE), reading its links CAP_SYS_PTRACE. Root in a
/// container with its capabilities dropped has neither. (CAP_SYS_PTRACE
/// missing, CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE missing).
pub fn missing_capabilities() -> (bool, bool) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    missing(effective_caps(&status).unwrap_or(0))
}

fn missing(caps: u64) -> (bool, bool) {
    (
        caps & CAP_SYS_PTRACE == 0,
        caps & (CAP_DAC_READ_SEARCH | CAP_DAC_OVERRIDE) == 0,
    )
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
        // Empty arguments are kept: `printf ''` has two.
        assert_eq!(parse_cmdline(b"printf\0\0"), ["printf", ""]);
        assert_eq!(parse_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            effective_caps("CapEff:\t000001ffffffffff\n").map(|c| c & CAP_NET_BIND_SERVICE != 0),
            Some(true)
        );
        assert_eq!(effective_caps("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(effective_caps("Name: x\n"), None);
        // Root's full set; the two the README's image adds; one alone.
        assert_eq!(missing(0x1ff_ffff_ffff), (false, false));
        assert_eq!(
            missing(CAP_SYS_PTRACE | CAP_DAC_READ_SEARCH),
            (false, false)
        );
        assert_eq!(missing(CAP_SYS_PTRACE), (false, true));
        assert_eq!(missing(CAP_DAC_READ_SEARCH), (true, false));
    }

    #[test]
    fn uids_and_cgroup_mounts() {
        assert_eq!(
            parse_uid("Name:\tx\nUid:\t1000\t1000\t1000\t1000\n"),
            Some(1000)
        );
        assert_eq!(parse_uid("Name:\tx\n"), None);
        let mounts = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 25 0:30 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";
        let at = |c| cgroup_mount(mounts, c).map(|p| p.display().to_string());
        assert_eq!(at("").as_deref(), Some("/sys/fs/cgroup/unified"));
        assert_eq!(
            at("name=systemd").as_deref(),
            Some("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            at("cpu,cpuacct").as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        // A mount of a subtree shifts every path: not used.
        assert_eq!(at("memory"), None);
        assert_eq!(at("pids").as_deref(), Some("/mnt/with space"));
        assert_eq!(at("blkio"), None);
    }

    #[test]
    fn only_root_may_write_means_root_and_no_group_or_other_write() {
        assert!(only_root_may_write(0, 0o100755));
        assert!(!only_root_may_write(0, 0o100775));
        assert!(!only_root_may_write(0, 0o41777), "/tmp");
        assert!(!only_root_may_write(65534, 0o100755));
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
