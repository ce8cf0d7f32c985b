//! The calls Linux and macOS share: signals, the parent, the open-file
//! limit, the effective user, user names, how servers bind, and
//! Ctrl+C/SIGTERM for servers.

use crate::model::{Proto, Signal, TcpState};
use crate::platform::ServerBind;
use crate::platform::{Delivery, JobSignal, Unseen};
use std::io;

/// SO_REUSEADDR for TCP, as servers set it, so connections in TIME_WAIT
/// do not keep a restarted server out. UDP gets none: two UDP sockets
/// with it can share a port, and that port is not free.
pub fn prepare_server(socket: &socket2::Socket, proto: Proto) -> io::Result<()> {
    if proto == Proto::Tcp {
        socket.set_reuse_address(true)?;
    }
    Ok(())
}

/// Servers reuse addresses here: see `prepare_server`.
pub fn server_bind() -> ServerBind {
    ServerBind::ReuseAddr
}

/// Ports below 1024 (or the sysctl's start) need privilege to bind.
pub fn privileged_ports() -> bool {
    true
}

/// Why an owner may be missing: another user's process, which sudo
/// names; as root without the capabilities that read other processes'
/// descriptors, one of those (and which are missing); with them, one
/// outside this PID namespace or the kernel's.
pub fn unseen_owner() -> Unseen {
    let (ptrace, dac) = super::os::missing_capabilities();
    if !ptrace && !dac {
        Unseen::Beyond
    } else if is_superuser() {
        Unseen::NoCapabilities { ptrace, dac }
    } else {
        Unseen::OtherUser
    }
}

/// PID 1, which `kill` never stops.
pub fn is_system_process(pid: u32, _name: Option<&str>) -> bool {
    pid == 1
}

pub fn system_processes() -> &'static str {
    "PID 1"
}

/// Nothing more to say about a holder than its name.
pub fn holder_note(_pid: u32) -> Option<&'static str> {
    None
}

/// The Unix names, as `kill -l` has them.
pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Term => "SIGTERM",
        Signal::Kill => "SIGKILL",
    }
}

/// State names as `netstat` and `ss` print them.
pub fn state_name(state: TcpState) -> &'static str {
    state.as_str()
}

/// Sends `signal` to the process `pid` that started at `start` (see
/// `process_start`), and to no other: a PID handed to a new process since
/// is `Gone`, never signalled. On Linux the check and the signal go
/// through one pidfd, so no reuse can slip between them.
pub fn send_signal(pid: u32, start: Option<u64>, signal: Signal) -> io::Result<Delivery> {
    use rustix::process::{kill_process, Pid, Signal as Sig};
    let Some(id) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(Delivery::Gone);
    };
    let number = match signal {
        Signal::Term => Sig::TERM,
        Signal::Kill => Sig::KILL,
    };
    // Linux always knows a live process's start: one not known when the
    // stop was agreed to cannot be told from a PID's next owner, and is
    // left alone. Where the OS offers no start, the PID is all there is.
    let is_agreed = || {
        if cfg!(target_os = "linux") {
            start.is_some() && super::process_start(pid) == start
        } else {
            start.is_none() || super::process_start(pid) == start
        }
    };
    #[cfg(target_os = "linux")]
    if !proc_is_ours() {
        return Err(foreign_proc(pid));
    }
    #[cfg(target_os = "linux")]
    match rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty()) {
        // The pidfd names whatever held the PID when it was opened: if
        // that is the agreed process now, the signal can reach no other.
        Ok(pidfd) => match pidfd_pid(&pidfd) {
            // Reaped since the pidfd was opened.
            Some(-1) => return Ok(Delivery::Gone),
            Some(shown) if shown != i64::from(pid) => return Err(foreign_proc(pid)),
            _ if is_agreed() => {
                return delivered(rustix::process::pidfd_send_signal(&pidfd, number))
            }
            _ => return Ok(Delivery::Gone),
        },
        Err(rustix::io::Errno::SRCH) => return Ok(Delivery::Gone),
        // Kernels before 5.3: the check, then kill(2).
        Err(rustix::io::Errno::NOSYS) => {}
        Err(e) => return Err(e.into()),
    }
    if !is_agreed() {
        return Ok(Delivery::Gone);
    }
    delivered(kill_process(id, number))
}

/// Owners and starts come from `/proc`, whose PIDs are another PID
/// namespace's when it was mounted there (a container or `unshare -p`
/// sharing the host's `/proc`): a signal by such a PID would reach
/// whatever has the number here. Then nothing is signalled.
#[cfg(target_os = "linux")]
fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .is_ok_and(|me| me.as_os_str() == std::process::id().to_string().as_str())
}

#[cfg(target_os = "linux")]
fn foreign_proc(pid: u32) -> io::Error {
    io::Error::other(format!(
        "/proc belongs to another PID namespace, where PID {pid} is not the process it is here (mount /proc for this namespace)"
    ))
}

/// The PID `/proc` gives the process behind `pidfd` (its `fdinfo`
/// numbers it as `/proc` does; -1 once reaped), where it can be read
/// (Linux 5.3 and later; before, `proc_is_ours` stands alone).
#[cfg(target_os = "linux")]
fn pidfd_pid(pidfd: &rustix::fd::OwnedFd) -> Option<i64> {
    use rustix::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()
}

fn delivered(result: rustix::io::Result<()>) -> io::Result<Delivery> {
    match result {
        Ok(()) => Ok(Delivery::Sent),
        Err(rustix::io::Errno::SRCH) => Ok(Delivery::Gone),
        Err(e) => Err(e.into()),
    }
}

/// portctl's parent, which it never signals.
pub fn parent_pid() -> Option<u32> {
    rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get().unsigned_abs())
}

/// Whether portctl runs as root: then an owner it cannot see lives in
/// another PID namespace or is the kernel, and `sudo` would not help.
pub fn is_superuser() -> bool {
    rustix::process::geteuid().is_root()
}

/// Raises the soft limit on open files to the hard limit: thousands of
/// clients need thousands of descriptors. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return u64::MAX; // unlimited
    };
    if limit.maximum.is_none_or(|max| max > current) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum.unwrap_or(u64::MAX);
        }
    }
    current
}

/// Whether a bind failed because the address family is turned off.
pub fn family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error())
}

/// Not asked: the socket table carries the uid, which `user_name` names.
pub fn process_user(_pid: u32) -> Option<String> {
    None
}

/// The user portctl runs as (its effective uid).
pub fn current_uid() -> Option<u32> {
    Some(rustix::process::geteuid().as_raw())
}

/// The user who owns `path` (following symlinks).
pub fn path_owner(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

/// The first `limit` bytes of `path`, read only if it is a regular file
/// owned by this user or by root; opened without waiting (a FIFO in its
/// place would otherwise stall the read for ever).
pub fn read_own_file(path: &std::path::Path, limit: u64) -> Option<Vec<u8>> {
    use rustix::fs::{fstat, open, FileType, Mode, OFlags};
    use std::io::Read;
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let stat = fstat(&fd).ok()?;
    let me = rustix::process::geteuid().as_raw();
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || !(stat.st_uid == me || stat.st_uid == 0)
    {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// `getpwuid_r`, which asks NSS (files, LDAP, systemd-userdb) like `ls -l`
/// does, rather than parsing /etc/passwd. (libc's: rustix has no NSS.)
pub fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: all zeroes is a valid `passwd` (integers and null
        // pointers), used only as an out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid pointers to `pwd` and `result`; the buffer
        // outlives the call and its length is passed with it.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in
        // `buffer`, which is still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// Ctrl+C and SIGTERM, caught from the moment this is created: a signal
/// that arrives right after a server's listening line must not kill the
/// process with the default action.
pub struct Shutdown {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
    quit: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Must be called inside the tokio runtime.
    pub fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Shutdown {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
            quit: signal(SignalKind::quit()).ok(),
        }
    }

    /// Resolves at the first Ctrl+C, SIGTERM, SIGHUP (the terminal went
    /// away) or SIGQUIT: each ends a server cleanly and gives `top`'s
    /// terminal back.
    pub async fn requested(&mut self) {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.hangup) => {}
            _ = next(&mut self.quit) => {}
        }
    }
}

/// SIGTSTP and SIGCONT, caught from the moment this is created: a job
/// stopped from outside must first give its terminal back (a caught
/// SIGTSTP no longer stops the process: `stop_self` does, after).
pub struct JobSignals {
    stop: Option<tokio::signal::unix::Signal>,
    cont: Option<tokio::signal::unix::Signal>,
}

impl JobSignals {
    /// Must be called inside the tokio runtime.
    pub fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let kind = |s: rustix::process::Signal| SignalKind::from_raw(s.as_raw());
        JobSignals {
            stop: signal(kind(rustix::process::Signal::TSTP)).ok(),
            cont: signal(kind(rustix::process::Signal::CONT)).ok(),
        }
    }

    pub async fn next(&mut self) -> JobSignal {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.stop) => JobSignal::Stop,
            () = next(&mut self.cont) => JobSignal::Continue,
        }
    }
}

/// The width of the terminal stdout writes to, where it is one.
pub fn stdout_width() -> Option<u16> {
    rustix::termios::tcgetwinsize(rustix::stdio::stdout())
        .ok()
        .map(|size| size.ws_col)
}

/// Stops this process as Ctrl+Z would (SIGSTOP, which nothing catches);
/// returns once it is continued (`fg`).
pub fn stop_self() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
}

/// A connection to a local service's Unix socket (a container runtime's
/// API), with `timeout` on the connect and, until `set_timeout` changes
/// it, on every read and write: a wedged daemon whose backlog is full
/// would block a plain connect for good.
pub fn local_stream(
    path: &std::path::Path,
    timeout: std::time::Duration,
) -> io::Result<LocalStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.connect_timeout(&socket2::SockAddr::unix(path)?, timeout)?;
    let stream = LocalStream(std::os::unix::net::UnixStream::from(socket));
    stream.set_timeout(timeout)?;
    Ok(stream)
}

/// A Unix stream to a local service.
#[derive(Debug)]
pub struct LocalStream(std::os::unix::net::UnixStream);

impl LocalStream {
    /// How long the next reads and writes may wait.
    pub fn set_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        self.0.set_read_timeout(Some(timeout))?;
        self.0.set_write_timeout(Some(timeout))
    }
}

impl io::Read for LocalStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for LocalStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Sockets are handed to programs the way systemd socket activation does.
pub const HANDS_OVER_SOCKETS: bool = true;

/// The environment variables of socket activation: never passed on from
/// portctl's own environment, only set for the sockets handed over.
const ACTIVATION_VARIABLES: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
];

/// Replaces this process with `program`, handing `sockets` over as
/// descriptors 3, 4, ... and nothing else: every other descriptor from 3
/// up, inherited ones included, is closed by the exec, and socket
/// activation's variables come only from `env`. Returns only when the exec
/// failed.
pub fn exec_with_sockets(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
    env: &[(String, String)],
    sockets: Vec<socket2::Socket>,
) -> io::Error {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let first = crate::platform::FIRST_FD;
    // Out of the way first (above every target), so moving them to 3..
    // cannot clobber one.
    let above = first + sockets.len() as i32;
    let mut high = Vec::with_capacity(sockets.len());
    for socket in sockets {
        match rustix::io::fcntl_dupfd_cloexec(&socket, above) {
            Ok(fd) => high.push(fd),
            Err(e) => return e.into(),
        }
    }
    let kept: Vec<i32> = high.iter().map(|fd| fd.as_raw_fd()).collect();
    if let Err(e) = close_on_exec_from_3(&kept) {
        return e;
    }
    let mut command = std::process::Command::new(program);
    command.args(args);
    for name in ACTIVATION_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: only async-signal-safe calls (dup2) run between the exec's
    // preparation and the exec itself. rustix's dup2 wants an owned
    // target, and descriptor 3 may not be open: libc's takes a number.
    // dup2 leaves the new descriptor without FD_CLOEXEC, so exactly these
    // cross the exec.
    unsafe {
        command.pre_exec(move || {
            for (i, fd) in kept.iter().enumerate() {
                if libc::dup2(*fd, first + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let error = command.exec();
    drop(high);
    error
}

/// Marks every open descriptor from 3 up but `kept` close-on-exec: what
/// portctl inherited without the flag must not reach the program.
fn close_on_exec_from_3(kept: &[i32]) -> io::Result<()> {
    use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
    let listing = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let open: Vec<i32> = std::fs::read_dir(listing)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd >= 3 && !kept.contains(fd)) {
        // SAFETY: the descriptor is open in this process (the listing's
        // own, closed since, fails the fcntl and is skipped); it is only
        // borrowed for the two fcntl calls.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = fcntl_getfd(borrowed) {
            fcntl_setfd(borrowed, flags | FdFlags::CLOEXEC)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_stream;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::time::{Duration, Instant};

    #[test]
    fn a_daemon_that_never_accepts_cannot_hold_a_connect() {
        let dir = std::env::temp_dir().join(format!("portctl-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("api.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        // A daemon that answers at all is reached.
        assert!(local_stream(&path, Duration::from_secs(5)).is_ok());
        // Fill its backlog: it never accepts.
        let mut queued = Vec::new();
        for _ in 0..10_000 {
            let socket =
                socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            socket.set_nonblocking(true).unwrap();
            match socket.connect(&socket2::SockAddr::unix(&path).unwrap()) {
                Ok(()) => queued.push(UnixStream::from(socket)),
                Err(_) => break,
            }
        }
        let (done, answer) = std::sync::mpsc::channel();
        let asked = path.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = local_stream(&asked, Duration::from_millis(500));
            let _ = done.send((result.is_ok(), started.elapsed()));
        });
        let (_, took) = answer
            .recv_timeout(Duration::from_secs(10))
            .expect("the connect was still blocked after 10 s");
        assert!(took < Duration::from_secs(5), "{took:?}");
        drop((listener, queued));
        let _ = std::fs::remove_dir_all(dir);
    }
}
