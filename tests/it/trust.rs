//! What any user can forge, or a daemon can stall, staged for real: a
//! look-alike `docker-proxy`, a cgroup folder named like a container's in
//! a subtree handed to `nobody`, a PID given out again, a runtime API that
//! trickles, never answers or never ends, descriptors and `LISTEN_*`
//! inherited by `free --exec`, hostile names in `metrics`. None of it may
//! be believed, hang portctl or make it panic (RELIABILITY.md, "What a
//! user can forge").
#![cfg(unix)]

use crate::common;

use common::json;
use common::{
    assert_exit, binary_for_nobody, named_listener, portctl, python, quiet_port, require_root,
    require_root_and_setpriv, run, run_as_nobody, run_setpriv, stderr, stdout, Kid, SocketHolder,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    portctl()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run portctl")
}

fn who(port: u16, env: &[(&str, &str)]) -> Value {
    let out = run_env(&["who", &port.to_string(), "--json"], env);
    assert_exit(&out, 0);
    let story = json::parse(&out);
    json::story(&story);
    story
}

/// The listener's socket in a `who` story.
fn listener(story: &Value) -> &Value {
    story["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("no listener in {story:#}"))
}

/// A 64-hex-digit id, different each call.
fn container_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:048x}", std::process::id(), n + 0xc0ffee)
}

// ------------------------------------------------------------ cgroups

/// A cgroup folder `docker-ID.scope` under a folder of its own in the
/// v1 `name=systemd` hierarchy (or cgroup v2), owned by `owner` (root, or
/// a user it was delegated to), with processes moved in by root; they go
/// back to the root cgroup and the folders are removed when dropped.
struct Claim {
    hierarchy: PathBuf,
    parent: PathBuf,
    folder: PathBuf,
    id: String,
}

impl Claim {
    #[track_caller]
    fn new(owner: &str) -> Claim {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let hierarchy = mounts
            .lines()
            .find_map(|line| {
                let (before, after) = line.split_once(" - ")?;
                let point = before.split(' ').nth(4)?;
                let root = before.split(' ').nth(3)?;
                let systemd = after.starts_with("cgroup ") && after.contains("name=systemd");
                let v2 = after.starts_with("cgroup2 ");
                ((systemd || v2) && root == "/").then(|| PathBuf::from(point))
            })
            .expect("a name=systemd (v1) or cgroup2 hierarchy mounted at its root");
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let parent = hierarchy.join(format!(
            "portctl-trust-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&parent).expect("make a cgroup (root)");
        let id = container_id();
        let folder = parent.join(format!("docker-{id}.scope"));
        if owner == "root" {
            std::fs::create_dir(&folder).unwrap();
        } else {
            // A delegated subtree: the folder is the user's, and the user
            // makes what it likes inside.
            let chown = Command::new("chown")
                .args([owner, parent.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(chown.success());
            let made = Command::new("setpriv")
                .args([
                    &format!("--reuid={owner}"),
                    "--regid=nogroup",
                    "--clear-groups",
                    "--",
                    "mkdir",
                ])
                .arg(&folder)
                .status()
                .expect("run setpriv (util-linux)");
            assert!(made.success(), "{owner} could not make {folder:?}");
        }
        Claim {
            hierarchy,
            parent,
            folder,
            id,
        }
    }

    fn enter(&self, pid: u32) {
        std::fs::write(self.folder.join("cgroup.procs"), pid.to_string())
            .expect("move the process into the claimed cgroup");
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.folder.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.hierarchy.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.folder);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// A folder only root may write to, and every folder above it: where a
/// runtime's program would be installed.
fn root_only_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(format!(
        "/var/lib/portctl-trust-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A copy of portctl itself named `name`, in `dir`: whatever runs it is a
/// process called `name`.
fn look_alike(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let copied = Command::new("cp")
        .arg(binary_for_nobody())
        .arg(&path)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `program serve hello --port 0` as `user`: the process and its port.
fn serve_as(program: &Path, user: &str) -> (Kid, u16) {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={user}"),
        "--regid=nogroup",
        "--clear-groups",
        "--",
    ]);
    let mut child = cmd
        .arg(program)
        .args(["serve", "hello", "--port", "0", "--quiet", "--json"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run setpriv (util-linux)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = json::port(&json::line(&line)["port"]);
    (Kid(child), port)
}

/// root's `kill PORT --force` stops `child`, which holds `port`, as any
/// other process: exit 0, and the process gone.
#[track_caller]
fn force_stops(port: u16, child: &mut Kid, what: &str) {
    let port = port.to_string();
    let kill = run(&["kill", &port, "--yes", "--force", "--timeout", "1"]);
    assert_exit(&kill, 0);
    assert!(
        common::poll(Duration::from_secs(5), || child.0.try_wait().unwrap()).is_some(),
        "{what} still runs: {}",
        stderr(&kill)
    );
}

#[test]
#[ignore = "needs root and setpriv"]
fn a_program_called_docker_proxy_is_an_ordinary_process() {
    require_root_and_setpriv();
    // Installed where only root writes, run by nobody; and a copy in
    // /tmp, which anyone may write to, run by root.
    let installed = root_only_dir();
    let cases = [
        (look_alike(&installed, "docker-proxy"), "nobody"),
        (look_alike(&installed, "dockerd"), "nobody"),
        // A rootless runtime's helpers run as their user, who may run
        // root's real program on sockets of their own: to root, theirs.
        (look_alike(&installed, "conmon"), "nobody"),
        (look_alike(&installed, "rootlessport"), "nobody"),
        (
            look_alike(
                &std::env::temp_dir(),
                &format!("docker-proxy-{}", std::process::id()),
            ),
            "root",
        ),
    ];
    for (program, user) in &cases {
        let (mut child, port) = serve_as(program, user);
        let story = who(port, &[]);
        let held = listener(&story);
        assert!(
            held["container"].is_null(),
            "{program:?} as {user}: {story:#}"
        );
        assert!(
            !story["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["kind"] == "container-published"),
            "{story:#}"
        );
        let text = run(&["who", &port.to_string()]);
        assert!(!stdout(&text).contains("published"), "{}", stdout(&text));
        // root's kill --force stops it like any other process.
        force_stops(port, &mut child, &format!("{program:?} as {user}"));
    }
    let _ = std::fs::remove_dir_all(installed);
    let _ = std::fs::remove_file(&cases[4].0);
}

/// A user with a namespace of their own bind-mounts a root's file under
/// a runtime's name on a folder they mounted: `/proc/PID/exe` then names
/// a path whose folders, seen from the host, are root's. Its folders are
/// looked at in the process's own mount namespace, where they are the
/// user's: an ordinary process, stopped like any other.
#[test]
#[ignore = "needs root, setpriv and unshare"]
fn a_runtime_name_bind_mounted_in_a_users_namespace_is_an_ordinary_process() {
    require_root_and_setpriv();
    common::require_program("unshare", "--version", "apt-get install util-linux");
    let installed = root_only_dir();
    let program = look_alike(&installed, "portctl-copy");
    let cover = root_only_dir();
    for name in ["conmon", "rootlessport", "docker-proxy"] {
        let script = format!(
            "mount -t tmpfs none \"$1\" && : > \"$1/{name}\" && \
             mount --bind \"$2\" \"$1/{name}\" && \
             exec \"$1/{name}\" serve hello --port 0 --quiet --json"
        );
        let mut child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .args(["unshare", "-Urm", "sh", "-c", &script, "sh"])
            .arg(&cover)
            .arg(&program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run setpriv (util-linux)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("nobody could not stage {name} in a namespace of its own (unprivileged user namespaces?): {err}");
        }
        let child = Kid(child);
        let port = json::port(&json::line(&line)["port"]);
        let story = who(port, &[]);
        let held = listener(&story);
        assert_eq!(held["process"], name, "{story:#}");
        assert!(held["container"].is_null(), "{name}: {story:#}");
        let mut child = child;
        force_stops(port, &mut child, &format!("{name} in nobody's namespace"));
    }
    let _ = std::fs::remove_dir_all(installed);
    let _ = std::fs::remove_dir_all(cover);
}

#[test]
#[ignore = "needs root and setpriv"]
fn a_cgroup_folder_a_user_made_names_no_container() {
    require_root_and_setpriv();
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let port = holder.ports[0];
    let nowhere = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    // nobody's subtree, nobody's docker-ID.scope: not evidence.
    let forged = Claim::new("nobody");
    forged.enter(holder.pid());
    let story = who(port, &nowhere);
    assert!(listener(&story)["container"].is_null(), "{story:#}");
    let kill = run_env(
        &["kill", &port.to_string(), "--container", "--yes"],
        &nowhere,
    );
    assert_exit(&kill, 1);
    assert!(stderr(&kill).contains("no container"), "{}", stderr(&kill));
    drop(forged);
    // The same, made by root: a container, by its id (no API answers).
    let real = Claim::new("root");
    real.enter(holder.pid());
    let story = who(port, &nowhere);
    let container = &listener(&story)["container"];
    assert_eq!(container["runtime"], "docker", "{story:#}");
    assert_eq!(container["id"], real.id.as_str(), "{story:#}");
}

// ------------------------------------------------------- runtime APIs

/// How a fake runtime API misbehaves.
#[derive(Clone, Copy, Debug)]
enum Daemon {
    /// A byte of a valid reply every 200 ms.
    Trickles,
    /// Accepts, reads, never writes.
    Silent,
    /// A chunked body that never ends.
    Endless,
    /// Answers at once, with `listing` as its containers.
    Answers,
}

/// A fake Docker API on a Unix socket, answering as `daemon` does.
struct FakeApi {
    dir: PathBuf,
}

impl FakeApi {
    fn start(daemon: Daemon, listing: String) -> FakeApi {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "portctl-api-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join("docker.sock")).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let listing = listing.clone();
                std::thread::spawn(move || {
                    let mut head = [0u8; 4096];
                    let _ = stream.read(&mut head);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{listing}",
                        listing.len()
                    );
                    match daemon {
                        Daemon::Answers => {
                            let _ = stream.write_all(reply.as_bytes());
                        }
                        Daemon::Trickles => {
                            for b in reply.bytes().cycle().take(600) {
                                if stream.write_all(&[b]).is_err() {
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(200));
                            }
                        }
                        Daemon::Silent => std::thread::sleep(Duration::from_secs(120)),
                        Daemon::Endless => {
                            let _ = stream.write_all(
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                            );
                            let chunk = format!("4000\r\n{}\r\n", "[".repeat(0x4000));
                            let deadline = Instant::now() + Duration::from_secs(120);
                            while Instant::now() < deadline
                                && stream.write_all(chunk.as_bytes()).is_ok()
                            {
                            }
                        }
                    }
                });
            }
        });
        FakeApi { dir }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A listener in a cgroup root made as a Docker container's: every
/// lookup of it asks the runtime's API.
fn container_listener() -> (SocketHolder, Claim) {
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let claim = Claim::new("root");
    claim.enter(holder.pid());
    (holder, claim)
}

#[test]
#[ignore = "needs root"]
fn a_runtime_api_that_stalls_costs_about_a_second_and_the_answer_goes_on() {
    require_root();
    let (holder, claim) = container_listener();
    let port = holder.ports[0].to_string();
    for daemon in [Daemon::Trickles, Daemon::Silent, Daemon::Endless] {
        let api = FakeApi::start(daemon, "[]".into());
        let env = [("DOCKER_HOST", api.host())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for args in [
            vec!["who", &port, "--json"],
            vec!["check", &port, "--json"],
            vec!["list", "-w", "--json", "--port", &port],
            vec!["kill", &port, "--container", "--yes", "--timeout", "1"],
        ] {
            let started = Instant::now();
            let out = run_env(&args, &env);
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(4),
                "{daemon:?}: {args:?} took {took:?}"
            );
            assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
            if args[0] == "who" {
                let story = json::parse(&out);
                let container = &listener(&story)["container"];
                assert_eq!(container["id"], claim.id.as_str(), "{daemon:?}: {story:#}");
                assert!(container["name"].is_null(), "{daemon:?}: {story:#}");
            }
        }
    }
}

/// A scrape of `serve metrics` at `port`: the status line and the body.
fn scrape(port: u16, request: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{request} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (head.to_string(), body.to_string())
}

#[test]
#[ignore = "needs root"]
fn serve_metrics_answers_every_scrape_and_stops_whatever_its_lookups_do() {
    require_root();
    let (_holder, _claim) = container_listener();
    for daemon in [Daemon::Trickles, Daemon::Silent, Daemon::Endless] {
        let api = FakeApi::start(daemon, "[]".into());
        let mut child = portctl()
            .args(["serve", "metrics", "--port", "0", "--json", "--quiet"])
            .env("DOCKER_HOST", api.host())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = json::port(&json::line(&line)["port"]);
        for _ in 0..2 {
            let started = Instant::now();
            let (head, body) = scrape(port, "GET /metrics");
            assert!(head.starts_with("HTTP/1.1 200"), "{daemon:?}: {head}");
            assert!(body.contains("portctl_listener_info"), "{daemon:?}");
            assert!(started.elapsed() < Duration::from_secs(5), "{daemon:?}");
        }
        // A scrape under way when SIGTERM comes: stopped within 2 s.
        let scraping = std::thread::spawn(move || scrape(port, "GET /metrics"));
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        let status = common::wait_timeout(&mut child, Duration::from_secs(10));
        assert_eq!(status, Some(0), "{daemon:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{daemon:?}: serve metrics took {:?} to stop",
            started.elapsed()
        );
        let _ = scraping.join();
    }
}

#[test]
#[ignore = "needs root"]
fn hostile_ids_and_names_from_a_runtime_api_neither_panic_nor_reach_the_terminal() {
    require_root();
    let (holder, claim) = container_listener();
    let port = holder.ports[0].to_string();
    let listing = serde_json::json!([
        {"Id": "日本語のコンテナ識別子です".repeat(5), "Names": ["/x"], "Ports": []},
        {"Id": "../../../containers/x", "Names": ["/y"]},
        {"Id": claim.id, "Names": ["/web\u{1b}]0;pwned\u{7}\u{202e}\u{200b}"], "Image": "img\u{9b}31m"},
    ])
    .to_string();
    let api = FakeApi::start(Daemon::Answers, listing);
    let env = [("DOCKER_HOST", api.host())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let story = who(holder.ports[0], &env);
    let container = &listener(&story)["container"];
    assert_eq!(container["id"], claim.id.as_str());
    assert!(container["name"].as_str().unwrap().starts_with("web"));
    for args in [
        vec!["who", &port],
        vec!["list", "-w", "--port", &port],
        vec!["check", &port],
        vec!["metrics"],
        vec!["kill", &port, "--yes", "--timeout", "0"],
    ] {
        let out = run_env(&args, &env);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        assert!(
            !text.chars().any(|c| c == '\u{1b}'
                || c == '\u{7}'
                || c == '\u{9b}'
                || c == '\u{202e}'
                || c == '\u{200b}'),
            "{args:?} printed a raw control: {text:?}"
        );
    }
}

// ---------------------------------------------------------- PID reuse

/// Sets the next PID the kernel hands out to `pid`.
fn next_pid_is(pid: u32) {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .expect("write /proc/sys/kernel/ns_last_pid (root)");
}

/// A python3 listener on `port` (SO_REUSEPORT, so several share it).
/// `mode`: `leaves` says "term" on SIGTERM and exits a second later;
/// `stays` ignores SIGTERM. `name`, in hex, is the process's name when
/// not empty: any bytes, as `prctl(PR_SET_NAME)` takes them.
const LISTEN_PY: &str = r#"
import ctypes, signal, socket, sys, time, os
port = int(sys.argv[1]); mode = sys.argv[2]
if sys.argv[3]:
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[3])), 0, 0, 0)
def leave(*_):
    print("term", flush=True); time.sleep(1); os._exit(0)
signal.signal(signal.SIGTERM, leave if mode == "leaves" else signal.SIG_IGN)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", port)); s.listen()
print(os.getpid(), flush=True)
while True:
    time.sleep(60)
"#;

fn listen(
    port: u16,
    mode: &str,
    name: &[u8],
) -> (
    std::process::Child,
    u32,
    BufReader<std::process::ChildStdout>,
) {
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("python3")
        .args(["-c", LISTEN_PY, &port.to_string(), mode, &hex])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, line.trim().parse().unwrap(), out)
}

#[test]
#[ignore = "needs root"]
fn a_forced_stop_never_kills_a_process_that_took_the_pid_meanwhile() {
    require_root();
    forced_stop_spares_a_reused_pid(b"");
}

/// A name that is not UTF-8 must not make the process's start unknown,
/// and an unknown start must not let any process with the PID pass.
#[test]
#[ignore = "needs root"]
fn a_name_that_is_not_utf8_does_not_turn_the_pid_check_off() {
    require_root();
    let port = quiet_port();
    let (child, _, _) = listen(port, "stays", b"\xffsrv");
    let child = Kid(child);
    let story = json::parse(&run(&["who", &port.to_string(), "--json"]));
    let held = listener(&story);
    assert!(
        !held["started"].is_null() && held["cmdline"].as_array().is_some_and(|c| !c.is_empty()),
        "the process's facts are lost to its name: {story:#}"
    );
    drop(child);
    forced_stop_spares_a_reused_pid(b"\xffsrv");
}

fn forced_stop_spares_a_reused_pid(name: &[u8]) {
    let port = quiet_port();
    for attempt in 0..20 {
        // The agreed server: it leaves a second after SIGTERM.
        let (mut first, pid, mut said) = listen(port, "leaves", name);
        let kill = portctl()
            .args([
                "kill",
                &port.to_string(),
                "--yes",
                "--force",
                "--timeout",
                "4",
                "--json",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the stop has begun (SIGTERM came), another server shares
        // the port, so it never looks free...
        let mut term = String::new();
        said.read_line(&mut term).unwrap();
        assert_eq!(term.trim(), "term");
        let (beside, _, _) = listen(port, "stays", name);
        let _beside = Kid(beside);
        // ...and when the agreed one is gone, its PID goes to a third
        // python3 on the port: same PID, same name, another process.
        assert!(common::poll(Duration::from_secs(5), || first.try_wait().unwrap()).is_some());
        next_pid_is(pid);
        let (second, reused, _) = listen(port, "stays", name);
        let mut second = Kid(second);
        let out = kill.wait_with_output().unwrap();
        if reused != pid {
            // Another process forked first: try again.
            assert!(attempt < 19, "the PID was never handed out again");
            continue;
        }
        let report = json::parse(&out);
        json::kill_report(&report);
        let killed = report["signals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["signal"] == "SIGKILL");
        assert!(!killed, "SIGKILL went to another process: {report:#}");
        assert!(
            second.0.try_wait().unwrap().is_none(),
            "the process that took the PID was killed: {report:#}"
        );
        assert_exit(&out, 1);
        return;
    }
}

// ----------------------------------------------------------- TIME_WAIT

#[test]
fn after_a_stop_time_wait_alone_is_no_holder() {
    // A server without SO_REUSEADDR that closed its side first: its port
    // is left in TIME_WAIT, which refuses such a bind after it is gone.
    let script = r#"
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
a.close(); time.sleep(0.2); c.close()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"#;
    let (child, line) = python(script, &[]);
    let _child = Kid(child);
    let port = line.trim().to_string();
    let out = run(&["kill", &port, "--yes", "--json", "--timeout", "5"]);
    assert_exit(&out, 0);
    let report = json::parse(&out);
    json::kill_report(&report);
    assert_eq!(report["free"], true, "{report:#}");
    let note = report["note"].as_str().unwrap_or_default();
    assert!(note.contains("TIME_WAIT"), "{report:#}");
    assert!(note.contains("SO_REUSEADDR"), "{report:#}");
}

// -------------------------------------------------------- free --exec

/// What CMD sees: its LISTEN_* variables and its open descriptors.
const SEES_PY: &str = r#"
import os, json
def open_fd(fd):
    try:
        os.fstat(fd); return True
    except OSError:
        return False
print(json.dumps({
    "env": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")},
    "fds": [fd for fd in range(3, 256) if open_fd(fd)],
}), flush=True)
"#;

/// Runs `portctl ARGS -- python3 -c SEES_PY` from a parent holding
/// descriptor `inherited` open without close-on-exec, with LISTEN_*
/// already in the environment.
fn what_cmd_sees(args: &[&str]) -> Value {
    let launcher = r#"
import os, subprocess, sys
r, w = os.pipe()
os.set_inheritable(r, True)
env = dict(os.environ, LISTEN_FDS="7", LISTEN_PID="1", LISTEN_FDNAMES="bogus", LISTEN_PIDFDID="9")
out = subprocess.run(sys.argv[1:], pass_fds=(r,), env=env, capture_output=True)
sys.stdout.write(out.stdout.decode()); sys.stderr.write(out.stderr.decode())
"#;
    let mut argv: Vec<String> = vec![env!("CARGO_BIN_EXE_portctl").into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["--".into(), "python3".into(), "-c".into(), SEES_PY.into()]);
    let out = Command::new("python3")
        .arg("-c")
        .arg(launcher)
        .args(&argv)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_else(|| {
        panic!(
            "CMD printed nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    json::line(last)
}

#[test]
fn free_exec_hands_over_its_sockets_and_nothing_else() {
    let seen = what_cmd_sees(&["free", "--exec"]);
    assert_eq!(seen["fds"], serde_json::json!([3]), "{seen}");
    let env = &seen["env"];
    assert_eq!(env["LISTEN_FDS"], "1", "{seen}");
    assert!(
        env["LISTEN_FDNAMES"].as_str().unwrap().starts_with("tcp-"),
        "{seen}"
    );
    assert!(env.get("LISTEN_PIDFDID").is_none(), "{seen}");
    // --release hands over nothing, and says nothing of sockets.
    let released = what_cmd_sees(&["free", "--release", "--exec"]);
    assert_eq!(released["fds"], serde_json::json!([]), "{released}");
    assert_eq!(released["env"], serde_json::json!({}), "{released}");
    // Nested: the inner portctl's own LISTEN_* never reach its CMD.
    let portctl = env!("CARGO_BIN_EXE_portctl");
    let nested = what_cmd_sees(&[
        "free",
        "--exec",
        "--",
        portctl,
        "free",
        "--release",
        "--exec",
    ]);
    assert_eq!(nested["env"], serde_json::json!({}), "{nested}");
    assert_eq!(nested["fds"], serde_json::json!([]), "{nested}");
}

// ------------------------------------------------------------- metrics

#[test]
fn metrics_never_write_a_control_character_and_stay_valid() {
    let (child, port) = named_listener(b"m\x1b]0;x\x07\xe2\x80\xae\xe2\x80\x8b", "127.0.0.1");
    let _child = Kid(child);
    let out = run(&["metrics"]);
    assert_exit(&out, 0);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        !text.chars().any(|c| (c.is_control() && c != '\n')
            || ('\u{200b}'..='\u{200f}').contains(&c)
            || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{text:?}"
    );
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("portctl_listener_info{") && l.contains(&format!("port=\"{port}\""))
        })
        .expect("the listener is exported");
    // Made visible, then escaped as the format requires.
    assert!(
        line.contains(r#"process="m\\e]0;x\\x07\\u{202e}\\u{200b}""#),
        "{line}"
    );
    // Every sample line is `name{labels} value`, labels quoted and
    // escaped: a parser of the format reads it.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(!series.contains('\n'), "{l}");
    }
}

#[test]
fn two_reuseport_listeners_of_one_process_are_one_series() {
    let script = r#"
import socket, time
a = socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
a.bind(("127.0.0.1", 0)); a.listen()
b = socket.socket(); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
b.bind(a.getsockname()); b.listen()
print(a.getsockname()[1], flush=True)
time.sleep(60)
"#;
    let (child, line) = python(script, &[]);
    let _child = Kid(child);
    let port = line.trim();
    let out = run(&["metrics"]);
    let text = stdout(&out);
    let info = text
        .lines()
        .filter(|l| {
            l.starts_with("portctl_listener_info{") && l.contains(&format!("port=\"{port}\""))
        })
        .count();
    assert_eq!(info, 1, "{text}");
    let pid = text
        .lines()
        .filter(|l| {
            l.starts_with("portctl_listener_pid{") && l.contains(&format!("port=\"{port}\""))
        })
        .count();
    assert_eq!(pid, 1, "{text}");
}

#[test]
fn serve_metrics_heads_like_it_gets_and_ignores_a_query() {
    let server = common::Server::start(&["metrics", "--port", "0"], 1);
    let (head, body) = scrape(server.port, "HEAD /metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.is_empty(), "HEAD sent a body: {body:?}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Content-Length");
    let (_, get) = scrape(server.port, "GET /metrics");
    // Two scrapes differ only in their timing digits.
    assert!(
        length.abs_diff(get.len()) < 64,
        "HEAD says {length} bytes, GET sent {}",
        get.len()
    );
    let (head, body) = scrape(server.port, "GET /metrics?target=db1&x=%20");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("# TYPE portctl_sockets gauge"));
    let json = run(&["metrics", "--json"]);
    assert_exit(&json, 0);
    let doc = json::parse(&json);
    assert!(
        doc["listeners"].is_array() && doc["sockets"].is_array(),
        "{doc}"
    );
}

// -------------------------------------------------------------- names

#[test]
fn invisible_characters_in_a_name_are_shown() {
    let (child, port) = named_listener("\u{200b}".repeat(5).as_bytes(), "127.0.0.1");
    let _child = Kid(child);
    let out = run(&["list", "-t", "--port", &port.to_string()]);
    let text = stdout(&out);
    assert!(
        text.contains(r"\u{200b}\u{200b}\u{200b}\u{200b}\u{200b}"),
        "{text}"
    );
    assert!(!text.contains('\u{200b}'), "{text:?}");
    let json = run(&["list", "-t", "--json", "--port", &port.to_string()]);
    let raw = String::from_utf8(json.stdout).unwrap();
    assert!(raw.contains(r"\u200b"), "{raw}");
    assert!(!raw.contains('\u{200b}'), "{raw:?}");
}

// ------------------------------------------------------------- port 0

#[test]
fn port_0_is_never_free_and_never_privileged() {
    let (code, records) = common::check_json(&["0"]);
    assert_eq!(code, 1);
    assert!(
        records.iter().all(|r| r["status"] == "unbindable"),
        "{records:?}"
    );
    assert!(records[0]["reason"]
        .as_str()
        .unwrap()
        .contains("any free port"));
    no_privileged_note(&run(&["who", "0", "--json"]));
}

/// `who 0` must not say port 0 needs privilege: it binds any free port.
#[track_caller]
fn no_privileged_note(who: &Output) {
    let story = json::parse(who);
    let notes = story["notes"].as_array().unwrap();
    assert!(
        !notes.iter().any(|n| n["kind"] == "privileged"),
        "{story:#}"
    );
}

#[test]
#[ignore = "needs root and setpriv"]
fn port_0_as_a_user_is_not_privileged_either() {
    require_root_and_setpriv();
    no_privileged_note(&run_as_nobody(&["who", "0", "--json"]));
}

/// portctl as root with the capability set `bounding` (setpriv's syntax):
/// how a container started with `--cap-drop=ALL` runs it.
fn run_as_root_with(bounding: &str, args: &[&str]) -> Output {
    run_setpriv(&[&format!("--bounding-set={bounding}")], args)
}

/// Root without CAP_KILL cannot signal another user's listener: kill
/// says why in words (the OS says only "Operation not permitted"), does
/// not claim to have waited for a port it never asked to be let go, and
/// leaves the listener running.
#[test]
#[ignore = "needs root and setpriv"]
fn a_signal_that_is_not_permitted_is_explained_and_not_waited_for() {
    require_root_and_setpriv();
    let (mut holder, port) = serve_as(&binary_for_nobody(), "nobody");
    let port_arg = port.to_string();
    let started = Instant::now();
    let out = run_as_root_with("-kill", &["kill", &port_arg, "--yes", "--timeout", "30"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for nothing: {:?}",
        started.elapsed()
    );
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("cannot signal") && text.contains("another user's process"),
        "{text}"
    );
    assert!(!text.contains("after 30"), "{text}");
    let json = run_as_root_with("-kill", &["kill", &port_arg, "--yes", "--json"]);
    assert_exit(&json, 1);
    let report = json::parse(&json);
    assert_eq!(report["free"], false, "{report}");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("another user's process"),
        "{report}"
    );
    assert!(
        holder.0.try_wait().unwrap().is_none(),
        "the listener was stopped"
    );
}

#[test]
#[ignore = "needs root and setpriv"]
fn root_without_its_capabilities_says_which_it_lacks_not_another_namespace() {
    require_root_and_setpriv();
    let (holder, port) = serve_as(&binary_for_nobody(), "nobody");
    let port_arg = port.to_string();
    let args = ["list", "-l", "--port", &port_arg, "--json"];
    // Each alone is not enough: listing another user's /proc/PID/fd takes
    // CAP_DAC_READ_SEARCH, reading its links CAP_SYS_PTRACE.
    for (caps, lacks) in [
        ("-all", "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"),
        ("-all,+sys_ptrace", "CAP_DAC_READ_SEARCH"),
        ("-all,+dac_read_search", "CAP_SYS_PTRACE"),
    ] {
        let out = run_as_root_with(caps, &args);
        assert_exit(&out, 0);
        let rows = json::array(&out);
        let row = rows
            .iter()
            .find(|r| json::port(&r["local_port"]) == port)
            .unwrap_or_else(|| panic!("{caps}: no row for {port} in {rows:?}"));
        assert_eq!(json::pid(&row["pid"]), None, "{caps}: {row}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("add {lacks} to see")) && !err.contains("namespace"),
            "{caps}: the hint must name what is missing ({lacks}): {err}"
        );
        let story = run_as_root_with(caps, &["who", &port_arg]);
        assert!(
            stdout(&story).contains(&format!("without {lacks}, which")),
            "{caps}: {}",
            stdout(&story)
        );
    }
    // The two the README's image adds: the owner, and no hint.
    let out = run_as_root_with("-all,+dac_read_search,+sys_ptrace", &args);
    assert_exit(&out, 0);
    let rows = json::array(&out);
    let row = rows
        .iter()
        .find(|r| json::port(&r["local_port"]) == port)
        .unwrap();
    assert_eq!(json::pid(&row["pid"]), Some(holder.0.id()), "{row}");
    assert!(!stderr(&out).contains("hint"), "{}", stderr(&out));
}

// ------------------------------------------------- a socket in flight

/// A listening socket sent over a Unix socket and not yet received is held
/// by no process: any user can leave one so. root is told whose socket it
/// is and where it may be, not only "another namespace or the kernel".
#[test]
#[ignore = "needs root and setpriv"]
fn a_socket_in_flight_names_its_user_and_says_where_it_may_be() {
    require_root_and_setpriv();
    const IN_FLIGHT_PY: &str = r#"
import array, socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [l.fileno()]))])
port = l.getsockname()[1]; l.close()
print(port, flush=True)
time.sleep(60)
"#;
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", IN_FLIGHT_PY])
        .env_clear()
        .stdout(Stdio::piped())
        .spawn()
        .expect("run setpriv and /usr/bin/python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _child = Kid(child);
    let port = line.trim().to_string();
    let who = run(&["who", &port]);
    assert_exit(&who, 0);
    let text = stdout(&who);
    assert!(
        text.contains("user nobody") && text.contains("in flight over a Unix socket"),
        "{text}"
    );
    let check = run(&["check", &port]);
    assert_exit(&check, 1);
    assert!(stdout(&check).contains("user nobody"), "{}", stdout(&check));
    let kill = run(&["kill", &port, "--yes"]);
    assert_exit(&kill, 1);
    assert!(stderr(&kill).contains("in flight"), "{}", stderr(&kill));
    // To nobody it is its own socket: no sudo would show a process.
    let own = run_as_nobody(&["who", &port]);
    assert!(
        stdout(&own).contains("in flight") && !stdout(&own).contains("sudo"),
        "{}",
        stdout(&own)
    );
}

/// portctl in a PID namespace of its own that still sees the host's
/// `/proc` (`unshare -p` without remounting it): the owners it finds are
/// numbered as the host numbers them, and the same number here is another
/// process. Here a `sleep` is given the listener's host PID: nothing is
/// signalled, and the kill says why.
#[test]
#[ignore = "needs root and unshare"]
fn a_pid_from_another_namespaces_proc_is_never_signalled_here() {
    require_root();
    common::require_program("unshare", "--version", "apt-get install util-linux");
    let port = quiet_port();
    let (listener, pid, _) = listen(port, "stays", b"");
    let mut listener = Kid(listener);
    let script = r#"echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid
sleep 30 & S=$!
[ "$S" = "$1" ] || echo "the sleep got $S, not $1"
"$2" kill "$3" --yes --json --timeout 1
kill -0 $S && echo sleep-alive; kill $S"#;
    let out = Command::new("unshare")
        .args(["-p", "-f", "sh", "-c", script, "sh"])
        .arg(pid.to_string())
        .arg(env!("CARGO_BIN_EXE_portctl"))
        .arg(port.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sleep-alive"),
        "the sleep was signalled: {text}"
    );
    assert!(!text.contains("the sleep got"), "{text}");
    let report = json::line(text.lines().next().unwrap());
    assert_eq!(report["signals"], serde_json::json!([]), "{report}");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("another PID namespace")),
        "{report}"
    );
    assert!(listener.0.try_wait().unwrap().is_none());
}
