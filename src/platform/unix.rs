//! The calls Linux and macOS share: signals, the parent, the open-file
//! limit, the effective user, user names, how servers bind, and
//! Ctrl+C/SIGTERM for servers.

use crate::platform::ServerBind;
use crate::model::{Proto, Signal, TcpState};
use crate::platform::Unseen;
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
/// names; as root, one outside this PID namespace or the kernel's.
pub fn unseen_owner() -> Unseen {
    if is_superuser() {
        Unseen::Beyond
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

pub fn signal_name(signal: Signal) -> &'static str {
    signal.as_str()
}

/// State names as `netstat` and `ss` print them.
pub fn state_name(state: TcpState) -> &'static str {
    state.as_str()
}

/// Sends `signal`; a process already gone is not an error.
pub fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let number = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) with a checked pid and a valid signal number.
    if unsafe { libc::kill(pid, number) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// portctl's parent, which it never signals.
pub fn parent_pid() -> Option<u32> {
    // SAFETY: getppid has no preconditions.
    u32::try_from(unsafe { libc::getppid() }).ok()
}

/// Whether portctl runs as root: then an owner it cannot see lives in
/// another PID namespace or is the kernel, and `sudo` would not help.
pub fn is_superuser() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Raises the soft limit on open files to the hard limit: thousands of
/// clients need thousands of descriptors. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Whether a bind failed because the address family is turned off.
pub fn family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// Not asked: the socket table carries the uid, which `user_name` names.
pub fn process_user(_pid: u32) -> Option<String> {
    None
}

/// `getpwuid_r`, which asks NSS (files, LDAP, systemd-userdb) like `ls -l`
/// does, rather than parsing /etc/passwd.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: zeroed `passwd` is a valid out-parameter; the buffer
        // outlives the call and its length is passed with it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
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

/// A connection to a local service's Unix socket (a container runtime's
/// API), with `timeout` on the connect and on every read and write: a
/// wedged daemon whose backlog is full would block a plain connect for
/// good.
pub fn local_stream(
    path: &std::path::Path,
    timeout: std::time::Duration,
) -> io::Result<std::os::unix::net::UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.connect_timeout(&socket2::SockAddr::unix(path)?, timeout)?;
    let stream = std::os::unix::net::UnixStream::from(socket);
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Replaces this process with `program`, handing `sockets` over as
/// descriptors 3, 4, ... (and nothing else: every other descriptor is
/// close-on-exec); returns only when the exec failed.
pub fn exec_with_sockets(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
    env: &[(String, String)],
    sockets: Vec<socket2::Socket>,
) -> io::Error {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // Out of the way first (above every target), so moving them to 3..
    // cannot clobber one.
    let above = crate::platform::FIRST_FD + sockets.len() as i32;
    let mut high = Vec::with_capacity(sockets.len());
    for socket in sockets {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we own.
        let fd = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) };
        if fd < 0 {
            return io::Error::last_os_error();
        }
        drop(socket);
        high.push(fd);
    }
    let mut command = std::process::Command::new(program);
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: only async-signal-safe calls (dup2) between fork-less exec
    // preparation and exec; dup2 leaves the new descriptor without
    // FD_CLOEXEC, so exactly these cross the exec.
    unsafe {
        command.pre_exec(move || {
            for (i, fd) in high.iter().enumerate() {
                let target = crate::platform::FIRST_FD + i as i32;
                if libc::dup2(*fd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.exec()
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
