//! Socket owners: which processes hold which socket inodes, read from
//! `/proc/PID/fd` — the only place Linux records it.
//!
//! Every directory is opened relative to its parent and every link read
//! with `readlinkat`, so the kernel never walks a full path per descriptor.
//! Directories are listed and links read into reused buffers: no heap
//! allocation per descriptor, which matters most where the allocator takes
//! a global lock (musl) and the scan runs on several threads.

use crate::platform::Scope;
use rustix::fd::OwnedFd;
use rustix::fs::{openat, readlinkat_raw, Mode, OFlags, RawDir, CWD};
use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a scan of `/proc/*/fd` found.
#[derive(Debug, Default)]
pub struct FdScan {
    /// (socket inode, pid) pairs, in no particular order; a flat list
    /// costs a fraction of a map at tens of thousands of sockets.
    pub owners: Vec<(u64, u32)>,
    /// Some process's descriptors could not be read (another user's,
    /// without privileges): an unowned socket may belong to it.
    pub unreadable: bool,
}

/// Descriptors read per work item: large enough to amortise the hand-off,
/// small enough that one process holding 20,000 sockets is shared out.
const CHUNK: usize = 512;

/// Bytes of directory entries read per `getdents64`: some 1,300 entries.
const DIRENT_BUFFER: usize = 32 * 1024;

/// The longest link read whole: `socket:[` and a 20-digit inode fit. A
/// longer target is cut short and never reads as a socket.
const LINK_MAX: usize = 64;

/// One process's descriptor directory and a slice of its entries.
struct Work {
    pid: u32,
    dir: std::sync::Arc<OwnedFd>,
    fds: Vec<u32>,
}

/// Finds the processes holding each of `wanted`, or every socket when
/// `wanted` is `None`. The readlinks, which are nearly all the cost, are
/// spread over the machine's cores. Processes and descriptors that vanish
/// mid-scan are skipped.
pub fn scan(wanted: Option<&HashSet<u64>>, scope: Scope) -> FdScan {
    if wanted.is_some_and(HashSet::is_empty) {
        return FdScan::default();
    }
    let Some((queue, unreadable)) = list_work() else {
        return FdScan {
            owners: Vec::new(),
            unreadable: true,
        };
    };
    let (owners, denied) = read_links(&queue, wanted, scope);
    FdScan {
        owners,
        unreadable: unreadable || denied,
    }
}

/// Every process's descriptors, cut into work items; and whether some
/// could not be read. Listing is cheap next to reading the links: it stays
/// on this thread.
fn list_work() -> Option<(Vec<Work>, bool)> {
    let proc = open_dir(CWD, "/proc").ok()?;
    let mut buf = Box::new_uninit_slice(DIRENT_BUFFER);
    let mut queue: Vec<Work> = Vec::new();
    let mut unreadable = false;
    let mut path = String::with_capacity(16);
    for pid in numbered(&proc, &mut buf) {
        path.clear();
        path.push_str(itoa(pid, &mut [0u8; 10]));
        path.push_str("/fd");
        match list_fds(&proc, pid, &path, &mut buf) {
            Ok(Some(work)) => queue.extend(work),
            Ok(None) => {}
            Err(()) => unreadable = true,
        }
    }
    Some((queue, unreadable))
}

/// The entries of `dir` named by a number (PIDs in `/proc`, descriptors
/// and threads below a process), listed through `buf`. An error ends the
/// listing: the directory of a process that exits mid-read.
fn numbered(dir: &OwnedFd, buf: &mut [MaybeUninit<u8>]) -> Vec<u32> {
    let mut entries = RawDir::new(dir, buf);
    let mut numbers = Vec::new();
    while let Some(Ok(entry)) = entries.next() {
        numbers.extend(parse_u32(entry.file_name().to_bytes()));
    }
    numbers
}

/// Owners of `wanted` found only in the descriptor tables of threads that
/// unshared theirs (`unshare(CLONE_FILES)`), which `/proc/PID/fd` does not
/// show. Asked only for sockets the process tables left without owner, so
/// the common case pays nothing.
pub fn scan_threads(wanted: &HashSet<u64>) -> Vec<(u64, u32)> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let Some(proc) = open_dir(CWD, "/proc").ok() else {
        return Vec::new();
    };
    let mut buf = Box::new_uninit_slice(DIRENT_BUFFER);
    let mut queue: Vec<Work> = Vec::new();
    let mut path = String::with_capacity(32);
    for pid in numbered(&proc, &mut buf) {
        for tid in threads_with_own_table(&proc, pid, &mut buf) {
            path.clear();
            path.push_str(itoa(pid, &mut [0u8; 10]));
            path.push_str("/task/");
            path.push_str(itoa(tid, &mut [0u8; 10]));
            path.push_str("/fd");
            if let Ok(Some(work)) = list_fds(&proc, pid, &path, &mut buf) {
                queue.extend(work);
            }
        }
    }
    read_links(&queue, Some(wanted), Scope::Every).0
}

/// Reads the links of every work item, on several threads when there are
/// thousands; (inode, pid) for each socket wanted, and whether a link was
/// refused (a directory listed with CAP_DAC_READ_SEARCH but no
/// CAP_SYS_PTRACE to read it). With `FirstOwner`, stops once every wanted
/// socket has one.
fn read_links(
    queue: &[Work],
    wanted: Option<&HashSet<u64>>,
    scope: Scope,
) -> (Vec<(u64, u32)>, bool) {
    let found: Mutex<Vec<(u64, u32)>> = Mutex::new(Vec::new());
    // Only for `FirstOwner`: which wanted inodes have an owner yet.
    let seen: Mutex<HashSet<u64>> = Mutex::new(HashSet::new());
    let done = AtomicBool::new(false);
    let denied = AtomicBool::new(false);
    let fds: usize = queue.iter().map(|w| w.fds.len()).sum();
    // Threads pay off only with thousands of links to read.
    let workers = if fds < 4 * CHUNK {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    let next_item = AtomicUsize::new(0);
    let worker = || {
        let mut mine: Vec<(u64, u32)> = Vec::new();
        let mut link = [0u8; LINK_MAX];
        while !done.load(Ordering::Relaxed) {
            let i = next_item.fetch_add(1, Ordering::Relaxed);
            let Some(work) = queue.get(i) else { break };
            for &fd in &work.fds {
                let len = match readlinkat_raw(&*work.dir, itoa(fd, &mut [0u8; 10]), &mut link) {
                    Ok(len) => len,
                    Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                        denied.store(true, Ordering::Relaxed);
                        break; // the rest of this process is refused too
                    }
                    Err(_) => continue, // closed since the listing
                };
                let inode = socket_inode(&link[..len]);
                let Some(inode) = inode.filter(|i| wanted.is_none_or(|w| w.contains(i))) else {
                    continue;
                };
                mine.push((inode, work.pid));
                if scope == Scope::FirstOwner {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.insert(inode);
                    if wanted.is_some_and(|w| seen.len() == w.len()) {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        found.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
    };
    if workers == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(worker);
            }
        });
    }
    let found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    (found, denied.into_inner())
}

/// The threads of `pid` whose descriptor table is not the process's own
/// (`unshare(CLONE_FILES)`): their sockets appear only under
/// `/proc/PID/task/TID/fd`. Most processes have one table; `kcmp` tells
/// without listing any descriptors.
fn threads_with_own_table(proc: &OwnedFd, pid: u32, buf: &mut [MaybeUninit<u8>]) -> Vec<u32> {
    let mut path = String::with_capacity(16);
    path.push_str(itoa(pid, &mut [0u8; 10]));
    path.push_str("/task");
    // A task directory links to one entry per thread, plus `.` and `..`:
    // a single-threaded process needs no listing.
    if rustix::fs::statat(proc, path.as_str(), rustix::fs::AtFlags::empty())
        .is_ok_and(|st| st.st_nlink <= 3)
    {
        return Vec::new();
    }
    let Ok(dir) = open_dir(proc, &path) else {
        return Vec::new();
    };
    let mut tids = numbered(&dir, buf);
    tids.retain(|&tid| tid != pid && !same_fd_table(pid, tid));
    tids
}

/// Whether two tasks share one descriptor table (libc's syscall: rustix
/// has no kcmp). Where `kcmp` cannot
/// answer (not built in, not permitted), the thread is scanned too: a
/// duplicate find costs a readlink, a missed socket costs an owner.
fn same_fd_table(pid: u32, tid: u32) -> bool {
    const KCMP_FILES: libc::c_long = 2;
    // SAFETY: kcmp only compares kernel objects of the two tasks; the
    // arguments are plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(pid),
            libc::c_long::from(tid),
            KCMP_FILES,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    rc == 0
}

/// The descriptors in `path` (a process's or one thread's `fd` directory),
/// cut into work items owned by `pid`. `Ok(None)` for a process that
/// exited (or has no descriptors); `Err` when it may not be inspected.
fn list_fds(
    proc: &OwnedFd,
    pid: u32,
    path: &str,
    buf: &mut [MaybeUninit<u8>],
) -> Result<Option<Vec<Work>>, ()> {
    let dir = match open_dir(proc, path) {
        Ok(dir) => dir,
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => return Err(()),
        Err(_) => return Ok(None),
    };
    let fds = numbered(&dir, buf);
    if fds.is_empty() {
        return Ok(None);
    }
    let dir = std::sync::Arc::new(dir);
    Ok(Some(
        fds.chunks(CHUNK)
            .map(|chunk| Work {
                pid,
                dir: dir.clone(),
                fds: chunk.to_vec(),
            })
            .collect(),
    ))
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
        let found = scan(Some(&HashSet::from([inode])), Scope::Every);
        assert_eq!(found.owners, vec![(inode, std::process::id())]);
    }
}
