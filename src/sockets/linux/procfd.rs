//! Socket owners: which processes hold which socket inodes, read from
//! `/proc/PID/fd` — the only place Linux records it.
//!
//! Every directory is opened relative to its parent and every link read
//! with `readlinkat`, so the kernel never walks a full path per descriptor.

use rustix::fd::OwnedFd;
use rustix::fs::{openat, readlinkat, Dir, Mode, OFlags, CWD};
use std::collections::{HashMap, HashSet};

/// What a scan of `/proc/*/fd` found.
#[derive(Debug, Default)]
pub struct FdScan {
    pub by_inode: HashMap<u64, Vec<u32>>,
    /// Some process's descriptors could not be read (another user's,
    /// without privileges): an unowned socket may belong to it.
    pub unreadable: bool,
}

/// Finds the processes holding each of `wanted`; stops as soon as every
/// wanted inode has an owner. Processes that exit mid-scan are skipped.
pub fn scan(wanted: &HashSet<u64>) -> FdScan {
    let mut result = FdScan::default();
    if wanted.is_empty() {
        return result;
    }
    let Ok(proc) = open_dir(CWD, "/proc") else {
        result.unreadable = true;
        return result;
    };
    let Ok(pids) = Dir::read_from(&proc) else {
        result.unreadable = true;
        return result;
    };
    let mut link = Vec::with_capacity(64);
    let mut path = String::with_capacity(16);
    for entry in pids.flatten() {
        let Some(pid) = parse_u32(entry.file_name().to_bytes()) else {
            continue;
        };
        path.clear();
        path.push_str(itoa(pid, &mut [0u8; 10]));
        path.push_str("/fd");
        let fds = match open_dir(&proc, &path) {
            Ok(fds) => fds,
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                result.unreadable = true;
                continue;
            }
            Err(_) => continue, // exited since the listing
        };
        let Ok(entries) = Dir::read_from(&fds) else {
            continue;
        };
        for fd in entries.flatten() {
            let name = fd.file_name();
            if name.to_bytes().first().is_none_or(|b| !b.is_ascii_digit()) {
                continue;
            }
            let Ok(target) = readlinkat(&fds, name, std::mem::take(&mut link)) else {
                continue; // closed since the listing
            };
            if let Some(inode) = socket_inode(target.as_bytes()) {
                if wanted.contains(&inode) {
                    let pids = result.by_inode.entry(inode).or_default();
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
            }
            link = target.into_bytes();
        }
        if result.by_inode.len() == wanted.len() {
            break;
        }
    }
    result
}

fn open_dir<Fd: rustix::fd::AsFd>(at: Fd, path: &str) -> rustix::io::Result<OwnedFd> {
    openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Formats a PID without allocating.
fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn reads_socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[99999999999]"), Some(99_999_999_999));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
    }

    #[test]
    fn formats_pids() {
        for n in [0, 7, 10, 4_294_967_295] {
            assert_eq!(itoa(n, &mut [0; 10]), n.to_string());
        }
    }

    #[test]
    fn finds_this_process_as_owner_of_its_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        let found = scan(&HashSet::from([inode]));
        assert_eq!(found.by_inode.get(&inode), Some(&vec![std::process::id()]));
    }
}
