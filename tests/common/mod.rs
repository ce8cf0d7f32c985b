//! Shared helpers for the integration tests: run the real binary with a
//! clean environment and read its output.
//!
//! The helpers marked `cfg(unix)` need python3, signals, `/proc`, setpriv
//! or util-linux's `script`; the rest also run the Windows build under
//! Wine.
//!
//! A test that needs a part a fresh machine lacks (root, Docker, tmux,
//! Prometheus, `ss`, `script`, ...) is `#[ignore = "needs PART"]`, and
//! inside it the part is required: `require_root`, `require_program`
//! fail it, naming the part, when it is missing. `.ci/run` installs and
//! starts every part and runs them with `--include-ignored`.
#![allow(dead_code)] // limits_talk, and the Windows build, use a subset

pub mod json;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Calls `f` every 20 ms until it answers, for at most `limit`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `ready` holds, polling; fails the test, naming `what`, if
/// it does not within `limit`.
#[track_caller]
pub fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    if poll(limit, || ready().then_some(())).is_none() {
        panic!("waited {limit:?} for {what}");
    }
}

/// Fails the test unless `program` starts (run with `probe`, e.g.
/// `--version`): the part an ignored test needs, with how to get it.
#[track_caller]
pub fn require_program(program: &str, probe: &str, install: &str) {
    let started = Command::new(program)
        .arg(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = started {
        panic!(
            "this test needs {program}, which does not start ({e}): {install}; \
             .ci/run installs every part the ignored tests need"
        );
    }
}

/// A port below the ephemeral range that nothing uses: see `quiet_ports`.
pub fn quiet_port() -> u16 {
    quiet_ports(1)
}

/// The first of `n` consecutive ports below the ephemeral range that
/// nothing uses right now: free for TCP and UDP, on IPv4 and IPv6, and
/// not lingering in TIME_WAIT (probed without SO_REUSEADDR, as a plain
/// server binds). Ports learned from a bind to port 0 and let go come
/// round again as other tests' ports; these are never handed out by the
/// OS, and each call in one test binary gets numbers of its own.
pub fn quiet_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (first, span) = quiet_range();
    let n = u32::from(n);
    let start = std::process::id() % span;
    for _ in 0..span {
        let base = first + (start + NEXT.fetch_add(n, Ordering::Relaxed)) % span;
        if base + n <= first + span && (base..base + n).all(|p| unused(p as u16)) {
            return base as u16;
        }
    }
    panic!("no {n} free ports in {first}-{}", first + span - 1);
}

/// Up to 12,000 ports just below the ephemeral range: Linux's sysctl, or
/// 49152 (Windows' and IANA's start) where it cannot be read.
fn quiet_range() -> (u32, u32) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(49_152);
    let end = ephemeral.min(32_000);
    let first = end.saturating_sub(12_000).max(1024);
    assert!(
        end >= first + 1000,
        "the ephemeral range starts at {ephemeral}: no quiet ports below it"
    );
    (first, end - first)
}

/// Whether nothing holds `port` for TCP or UDP on any address.
fn unused(port: u16) -> bool {
    use socket2::{Domain, Socket, Type};
    use std::io::ErrorKind;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let bind = |addr: SocketAddr, kind: Type| -> std::io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), kind, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())
    };
    [Type::STREAM, Type::DGRAM].into_iter().all(|kind| {
        let v4 = bind((Ipv4Addr::UNSPECIFIED, port).into(), kind);
        // Without IPv6 there is nothing to hold it there.
        let v6 = bind((Ipv6Addr::UNSPECIFIED, port).into(), kind);
        let held = |e: &std::io::Error| {
            matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::PermissionDenied)
        };
        v4.is_ok() && !v6.as_ref().is_err_and(held)
    })
}

/// The real portctl binary, with an environment that cannot leak colour
/// or terminal settings into the assertions.
pub fn portctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portctl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// Runs portctl with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    portctl().args(args).output().expect("run portctl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts a usage error: exit 2, exactly one `error:` line naming `value`,
/// and no panic.
#[track_caller]
pub fn assert_usage_error(out: &Output, value: &str) {
    assert_exit(out, 2);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(value), "'{value}' not named in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[cfg(unix)]
/// A child process (python3) that holds sockets until dropped.
/// Starts `python3 -c SCRIPT ARGS...` and returns it with the first line it
/// prints (scripts print once their sockets are open).
pub fn python(script: &str, args: &[String]) -> (std::process::Child, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start python3 (install it: apt-get install python3)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, line)
}

#[cfg(unix)]
pub struct SocketHolder {
    pub child: std::process::Child,
    /// The local ports it bound, in the order of its specs.
    pub ports: Vec<u16>,
}

#[cfg(unix)]
impl SocketHolder {
    /// Each spec is `tcp|udp HOST PORT`; PORT 0 lets the OS choose. A
    /// `tcp` socket listens; `udp` is bound. `ignore_term` makes the child
    /// ignore SIGTERM.
    pub fn start(specs: &[(&str, &str, u16)], ignore_term: bool) -> SocketHolder {
        let script = r#"
import socket, sys, time, signal
if sys.argv[1] == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
held = []
for spec in sys.argv[2:]:
    proto, host, port = spec.split(",")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
    s.bind((host, int(port)))
    if proto == "tcp":
        s.listen(64)
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held), flush=True)
time.sleep(120)
"#;
        let mut args = vec![String::from(if ignore_term { "1" } else { "0" })];
        args.extend(
            specs
                .iter()
                .map(|(proto, host, port)| format!("{proto},{host},{port}")),
        );
        let (child, line) = python(script, &args);
        let ports = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        SocketHolder { child, ports }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

#[cfg(unix)]
impl Drop for SocketHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
/// True when the tests run as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(unix)]
/// Fails the test unless it runs as root: for the tests marked
/// `#[ignore = "needs root..."]`.
#[track_caller]
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root: run `cargo test -- --include-ignored` as root, as .ci/run does"
    );
}

#[cfg(unix)]
/// Fails the test unless it runs as root and `setpriv` (util-linux) is
/// there to run portctl as `nobody`.
#[track_caller]
pub fn require_root_and_setpriv() {
    require_root();
    require_program("setpriv", "--version", "apt-get install util-linux");
}

#[cfg(unix)]
/// Fails the test unless util-linux's `script` is there to give portctl
/// a pseudo-terminal.
#[track_caller]
pub fn require_script() {
    require_program("script", "--version", "apt-get install bsdutils");
}

#[cfg(unix)]
/// Raises this process's soft limit on open descriptors to its hard
/// limit: tests that hold thousands of sockets would meet a soft 1024.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "getrlimit: {}",
            std::io::Error::last_os_error()
        );
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
                0,
                "setrlimit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(unix)]
/// How many sockets process `pid` holds open (its `/proc/PID/fd`).
#[track_caller]
pub fn socket_fds(pid: u32) -> usize {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"));
    dir.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|to| to.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

#[cfg(unix)]
/// A copy of the binary that the `nobody` user can execute, wherever the
/// checkout lives.
pub fn binary_for_nobody() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    // One copy per build, shared by every test binary and run of it.
    let built = std::fs::metadata(env!("CARGO_BIN_EXE_portctl")).unwrap();
    let stamp = built
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("portctl-nobody-{}-{stamp}", built.len()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("portctl");
    if !path.exists() {
        let tmp = dir.join(format!(
            "portctl.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        // Copied by cp, not here: a child forked by another test thread
        // meanwhile would inherit our descriptor open for writing, and
        // exec of the copy would fail with ETXTBSY until that child execs.
        let copied = Command::new("cp")
            .arg(env!("CARGO_BIN_EXE_portctl"))
            .arg(&tmp)
            .status()
            .expect("run cp");
        assert!(copied.success(), "cp of the binary failed");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _ = std::fs::rename(&tmp, &path);
    }
    path
}

#[cfg(unix)]
/// Runs portctl as `nobody` (setpriv), with a clean environment.
#[track_caller]
pub fn run_as_nobody(args: &[&str]) -> Output {
    run_setpriv(
        &["--reuid=nobody", "--regid=nogroup", "--clear-groups"],
        args,
    )
}

#[cfg(unix)]
/// Runs portctl through `setpriv SETPRIV --inh-caps=-all --`, with a
/// clean environment: as another user, or with fewer capabilities.
#[track_caller]
pub fn run_setpriv(setpriv: &[&str], args: &[&str]) -> Output {
    require_root_and_setpriv();
    Command::new("setpriv")
        .args(setpriv)
        .args(["--inh-caps=-all", "--"])
        .arg(binary_for_nobody())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)")
}

/// A tokio runtime for a crowd of test clients: two workers, whatever
/// the machine, as the tests beside it need their share too.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start a tokio runtime")
}

/// A child process, killed and reaped when dropped (also when a test
/// fails before it is done with it).
pub struct Kid(pub std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `portctl serve`, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
    /// The listening lines it printed.
    pub lines: Vec<String>,
}

impl Server {
    /// Starts `portctl serve ARGS...` and waits for one listening line per
    /// transport (`expect_lines`).
    pub fn start(args: &[&str], expect_lines: usize) -> Server {
        let mut child = portctl()
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start portctl serve");
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..expect_lines {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            assert!(!line.is_empty(), "serve {args:?} printed no listening line");
            lines.push(line.trim().to_string());
        }
        let port = lines[0]
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                // --json lines carry the port as a field.
                let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
                v["port"].as_u64().unwrap() as u16
            });
        Server { child, port, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    #[cfg(unix)]
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    #[cfg(unix)]
    /// SIGTERM, then the exit code and everything it wrote on stderr.
    pub fn stop(mut self) -> (Option<i32>, String) {
        self.terminate();
        let status = wait_timeout(&mut self.child, std::time::Duration::from_secs(10));
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        }
        (status, err)
    }

    #[cfg(unix)]
    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    #[cfg(unix)]
    /// The server's peak resident memory so far in KiB (`VmHWM`): what it
    /// held at its worst, even if it has given it back since.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    #[cfg(unix)]
    fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `input` on its stdin (then closed) and its stdout
/// captured.
pub fn with_input(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the command");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    child.wait_with_output().unwrap()
}

/// Waits for a child to exit, killing it after `limit`.
pub fn wait_timeout(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs portctl with `args`, reads the first bytes of its output and closes
/// the pipe, like `| head -1`; returns its exit code and stderr.
pub fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = portctl()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portctl");
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[cfg(unix)]
/// Runs `portctl ARGS` under a pseudo-terminal (util-linux `script`), so
/// portctl sees a terminal; returns what the terminal received.
#[track_caller]
pub fn on_terminal(args: &str, env: &[(&str, &str)]) -> String {
    require_script();
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_portctl")),
            "/dev/null",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs portctl on a pseudo-terminal");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(unix)]
/// Reaps `child` with wait4(2), polling (WNOHANG) until `limit` and then
/// killing it; returns its exit code (`None` when a signal ended it) and
/// its peak resident set in KiB (`ru_maxrss`, which Linux counts in KiB).
///
/// The kernel starts a process's `ru_maxrss` at the high-water RSS of the
/// memory it ran in before exec; `Command` spawns with vfork, so that is
/// this test process's. Keep the test process small: the figure can only
/// be too high, never too low.
pub fn wait_peak_rss(child: std::process::Child, limit: std::time::Duration) -> (Option<i32>, u64) {
    let pid = child.id() as libc::pid_t;
    let deadline = std::time::Instant::now() + limit;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut flags = libc::WNOHANG;
    loop {
        // SAFETY: wait4 on our own, not yet reaped child, with valid
        // pointers to a status and a rusage.
        let got = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if got == pid {
            break;
        }
        if got < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
            continue;
        }
        if flags != 0 && std::time::Instant::now() >= deadline {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            flags = 0;
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Reaped: dropping the handle closes whatever pipes it still holds.
    drop(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss.max(0) as u64)
}

#[cfg(unix)]
/// A python3 child whose process name (prctl PR_SET_NAME, at most 15
/// bytes) is `name`, holding a TCP listener on `host`; returns it and the
/// port. Hostile names are what the escaping tests feed portctl.
pub fn named_listener(name: &[u8], host: &str) -> (std::process::Child, u16) {
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    let family = if host.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let script = format!(
        "import ctypes, socket, time\n\
         ctypes.CDLL(None).prctl(15, bytes.fromhex('{hex}'), 0, 0, 0)\n\
         s = socket.socket(socket.{family}); s.bind(('{host}', 0)); s.listen()\n\
         print(s.getsockname()[1], flush=True)\n\
         time.sleep(60)\n"
    );
    let (child, line) = python(&script, &[]);
    (child, line.trim().parse().unwrap())
}

/// How long a fresh hello client on `ip` waits for `welcome!` and one
/// reply.
#[track_caller]
pub fn fresh_client(ip: std::net::IpAddr, port: u16) -> std::time::Duration {
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect((ip, port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"welcome!");
    s.write_all(b"fresh\n").unwrap();
    let mut reply = [0u8; 13];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"hello,fresh!\n");
    started.elapsed()
}

/// A fresh hello client on `ip` gets `welcome!` and one reply within 3 s:
/// blocked would be never (the read gives up at 5 s), and tests flooding
/// other servers run beside this one on a shared machine.
#[track_caller]
pub fn assert_answers_promptly(ip: std::net::IpAddr, port: u16) {
    let took = fresh_client(ip, port);
    assert!(
        took < std::time::Duration::from_secs(3),
        "a fresh client on {ip} took {took:?}"
    );
}

/// Runs `portctl check --json ARGS`: the exit code and the records, each
/// checked against the shape of a `check` record.
#[track_caller]
pub fn check_json(args: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let mut full = vec!["check", "--json"];
    full.extend_from_slice(args);
    let out = run(&full);
    (out.status.code().unwrap(), check_records(&out))
}

/// The records a `check --json` run printed, each checked against the
/// shape of a `check` record.
#[track_caller]
pub fn check_records(out: &Output) -> Vec<serde_json::Value> {
    let records = json::array(out);
    records.iter().for_each(json::check_record);
    records
}
