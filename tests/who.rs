//! `portctl who` against real parts: Docker containers (published with and
//! without the userland proxy, host networking), a systemd-style unit
//! cgroup, TIME_WAIT, bound-inactive sockets, the port sysctls, and hidden
//! owners in another PID namespace or of another user.
//!
//! Loopback only: containers are there to be attributed, never connected
//! to. A test whose real part is missing skips, except in CI where it
//! fails (`skip_or_fail`).
// Unix only: it needs /proc, cgroups, namespaces, Docker and signals.
#![cfg(unix)]

mod common;

use common::{
    assert_exit, assert_usage_error, needs_root, portctl, python, quiet_port, run, run_as_nobody,
    skip_or_fail, stderr, stdout, wait_timeout, SocketHolder,
};
use portctl::cgroup::Runtime;
use portctl::check::{CheckRecord, Status};
use portctl::containers::Container;
use portctl::model::TcpState;
use portctl::notes::{Note, NoteKind};
use portctl::record::SocketRecord;
use portctl::who::{Story, WhoSocket};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// Runs portctl with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    portctl()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run portctl")
}

#[track_caller]
fn story_of(out: &Output) -> Story {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "who --json is not a Story ({e})\n--- stdout\n{}\n--- stderr\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// `who PORT --json` (plus `extra` arguments) with `env`: its output and story.
fn who_json(port: u16, extra: &[&str], env: &[(&str, &str)]) -> (Output, Story) {
    let port = port.to_string();
    let mut args = vec!["who", port.as_str(), "--json"];
    args.extend_from_slice(extra);
    let out = run_env(&args, env);
    let story = story_of(&out);
    (out, story)
}

fn note(story: &Story, kind: NoteKind) -> Option<&Note> {
    story.notes.iter().find(|n| n.kind == kind)
}

#[track_caller]
fn must_note(story: &Story, kind: NoteKind) -> &Note {
    note(story, kind).unwrap_or_else(|| panic!("no {kind:?} note in {story:#?}"))
}

fn listener(story: &Story) -> Option<&WhoSocket> {
    story
        .sockets
        .iter()
        .find(|s| s.socket.state == Some(TcpState::Listen))
}

/// Calls `f` until it answers, at most for `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a program can be started at all.
fn have(program: &str, probe: &str) -> bool {
    Command::new(program)
        .arg(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A child killed and reaped when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).unwrap_or_default()
}

fn ephemeral_range() -> Option<(u16, u16)> {
    let text = sysctl("ip_local_port_range");
    let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

// ---------------------------------------------------------------- docker

const IMAGE: &str = "portctl-busybox:test";
const DEFAULT_DOCKER: &str = "unix:///var/run/docker.sock";

/// The Docker tests run one at a time: containers are slow to start, and
/// the second daemon must not race the first test's image import.
static DOCKER_LOCK: Mutex<()> = Mutex::new(());

fn docker_lock() -> MutexGuard<'static, ()> {
    DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "portctl-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The `docker` CLI talking to one daemon, every call bounded.
#[derive(Clone)]
struct Docker {
    host: String,
}

impl Docker {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["60", "docker", "-H", &self.host])
            .args(args)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run timeout docker ...")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out).trim().to_string()
    }

    /// Ready to run the test image: the daemon answers and the image is
    /// there (imported from the host's static busybox when missing).
    fn ready(host: &str) -> Result<Docker, String> {
        if !have("docker", "--version") {
            return Err("the docker CLI is not installed (apt-get install docker.io)".into());
        }
        let docker = Docker { host: host.into() };
        let version = docker.run(&["version", "--format", "{{.Server.Version}}"]);
        if !version.status.success() {
            return Err(format!(
                "no Docker daemon answers at {host}: {}",
                stderr(&version).trim()
            ));
        }
        docker.ensure_image()?;
        Ok(docker)
    }

    /// Imports `portctl-busybox:test` without any registry: a rootfs of
    /// /bin/busybox and a few links to it.
    fn ensure_image(&self) -> Result<(), String> {
        if self.run(&["image", "inspect", IMAGE]).status.success() {
            return Ok(());
        }
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return Err("/bin/busybox is missing (apt-get install busybox-static)".into());
        }
        let dir = std::env::temp_dir().join(format!("portctl-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
        for link in ["sh", "httpd", "sleep"] {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(link)).unwrap();
        }
        let out = Command::new("sh")
            .args([
                "-c",
                r#"tar -C "$1" -c . | timeout 60 docker -H "$2" import - "$3""#,
                "sh",
            ])
            .arg(&dir)
            .args([&self.host, IMAGE])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        let _ = std::fs::remove_dir_all(&dir);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("docker import failed: {}", stderr(&out).trim()))
        }
    }

    /// `docker run -d` of the test image with `options` before the image
    /// and `command` after it; removed (`docker rm -f`) when dropped.
    #[track_caller]
    fn start(&self, options: &[&str], command: &[&str]) -> RunningContainer {
        let name = unique_name();
        let mut args = vec!["run", "-d", "--name", &name, "--stop-timeout", "1"];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        let guard = RunningContainer {
            docker: self.clone(),
            name: name.clone(),
        };
        let id = self.ok(&args);
        assert_eq!(id.len(), 64, "docker run printed {id:?}");
        guard
    }

    fn running(&self, name: &str) -> Option<bool> {
        let out = self.run(&["inspect", "-f", "{{.State.Running}}", name]);
        match stdout(&out).trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

struct RunningContainer {
    docker: Docker,
    name: String,
}

impl RunningContainer {
    fn id(&self) -> String {
        self.docker.ok(&["inspect", "-f", "{{.Id}}", &self.name])
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        let _ = self.docker.run(&["rm", "-f", &self.name]);
    }
}

fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[track_caller]
fn assert_container(c: &Container, name: &str, id: &str, port: u16) {
    assert_eq!(c.runtime, Runtime::Docker, "{c:?}");
    assert_eq!(c.name.as_deref(), Some(name), "{c:?}");
    assert_eq!(c.image.as_deref(), Some(IMAGE), "{c:?}");
    assert_eq!(c.port, Some(port), "{c:?}");
    let got = c.id.as_deref().unwrap_or_default();
    assert!(is_full_id(got), "not a full id: {c:?}");
    assert_eq!(got, id, "{c:?}");
}

/// Waits for `who PORT` to show a listener, with `env`.
fn who_listener(port: u16, env: &[(&str, &str)]) -> (Output, Story) {
    poll(Duration::from_secs(10), || {
        let (out, story) = who_json(port, &["--tcp"], env);
        listener(&story).is_some().then_some((out, story))
    })
    .unwrap_or_else(|| {
        let (out, story) = who_json(port, &["--tcp"], env);
        panic!(
            "nothing listens on {port} after 10 s: {story:#?}\n{}",
            stderr(&out)
        )
    })
}

#[test]
fn docker_published_port_through_the_userland_proxy() {
    let _lock = docker_lock();
    let docker = match Docker::ready(DEFAULT_DOCKER) {
        Ok(d) => d,
        Err(why) => return skip_or_fail(&why),
    };
    let host_port = quiet_port();
    let publish = format!("127.0.0.1:{host_port}:8080");
    let container = docker.start(&["-p", &publish], &["httpd", "-f", "-p", "8080"]);
    let name = container.name.as_str();
    let id = container.id();
    let port = host_port.to_string();

    let (out, story) = who_listener(host_port, &[]);
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    if held.socket.process.as_deref() == Some("dockerd") {
        return skip_or_fail("the default daemon runs with --userland-proxy=false");
    }
    assert_eq!(
        held.socket.process.as_deref(),
        Some("docker-proxy"),
        "{story:#?}"
    );
    assert_eq!(held.socket.local_port, host_port);
    let c = held.socket.container.as_ref().expect("a container");
    assert_container(c, name, &id, 8080);
    let published = must_note(&story, NoteKind::ContainerPublished);
    assert!(published.text.contains(name), "{published:?}");

    let text = run(&["who", &port]);
    assert_exit(&text, 0);
    assert!(
        stdout(&text).contains(&format!("is published by container {name}")),
        "{}",
        stdout(&text)
    );

    // check names the container.
    let check = run(&["check", &port, "--tcp", "--json"]);
    assert_exit(&check, 1);
    let records: Vec<CheckRecord> = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, Status::InUse);
    let reason = records[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains(name), "check's reason: {reason:?}");
    let text = run(&["check", &port, "--tcp"]);
    assert!(stdout(&text).contains(name), "{}", stdout(&text));

    // list carries the same container, and -w shows its name.
    let list = run(&["list", "--json", "--port", &port]);
    assert_exit(&list, 0);
    let rows: Vec<SocketRecord> = serde_json::from_slice(&list.stdout).unwrap();
    let mine: Vec<&SocketRecord> = rows.iter().filter(|r| r.local_port == host_port).collect();
    assert!(!mine.is_empty(), "{rows:?}");
    for row in mine {
        assert_eq!(row.container.as_ref(), Some(c), "{row:?}");
    }
    let wide = run(&["list", "-w", "--port", &port]);
    assert_exit(&wide, 0);
    assert!(stdout(&wide).contains(name), "{}", stdout(&wide));

    // Without the API the runtime and the container's port still show.
    let (_, blind) = who_json(
        host_port,
        &["--tcp"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let c = listener(&blind)
        .and_then(|s| s.socket.container.as_ref())
        .unwrap_or_else(|| panic!("no container without the API: {blind:#?}"));
    assert_eq!((c.runtime, c.port), (Runtime::Docker, Some(8080)), "{c:?}");

    // kill refuses the proxy, names the command, and leaves it running.
    let kill = run(&["kill", &port, "--yes"]);
    assert_exit(&kill, 1);
    assert!(
        stderr(&kill).contains(&format!("docker stop {name}")),
        "{}",
        stderr(&kill)
    );
    assert_eq!(docker.running(name), Some(true), "kill stopped it");
    assert!(
        listener(&who_json(host_port, &["--tcp"], &[]).1).is_some(),
        "the proxy must still listen"
    );

    // --container stops it through the API.
    let stop = run(&["kill", &port, "--yes", "--container"]);
    assert_exit(&stop, 0);
    assert!(
        stdout(&stop).contains(&format!("stopped container {name}")),
        "{}",
        stdout(&stop)
    );
    assert_eq!(docker.running(name), Some(false), "still running");
}

#[test]
fn docker_host_network_process_belongs_to_its_container() {
    let _lock = docker_lock();
    let docker = match Docker::ready(DEFAULT_DOCKER) {
        Ok(d) => d,
        Err(why) => return skip_or_fail(&why),
    };
    let port = quiet_port();
    let p = port.to_string();
    let container = docker.start(
        &["--network", "host"],
        &["httpd", "-f", "-p", &p, "-h", "/"],
    );
    let id = container.id();
    let (out, story) = who_listener(port, &[]);
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    assert_eq!(held.socket.process.as_deref(), Some("httpd"), "{story:#?}");
    let c = held.socket.container.as_ref().expect("a container");
    assert_container(c, &container.name, &id, port);
    // It is inside the container, not published by it.
    assert!(
        note(&story, NoteKind::ContainerPublished).is_none(),
        "{story:#?}"
    );
    let text = run(&["who", &p]);
    assert!(
        stdout(&text).contains(&format!("inside container {}", container.name)),
        "{}",
        stdout(&text)
    );
}

// A second daemon with the userland proxy off, on its own bridge.
const D2: &str = "/tmp/portctl-d2";
const D2_BRIDGE: &str = "portctlbr0";

fn d2_host() -> String {
    format!("unix://{D2}/docker.sock")
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip")
}

/// Whether anything is still mounted under the second daemon's directory.
fn d2_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(D2)))
}

/// Stops a second daemon left over from an earlier, interrupted run.
fn stop_leftover_daemon() {
    let Ok(pid) = std::fs::read_to_string(format!("{D2}/pid")) else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains(D2) {
        return;
    }
    // SAFETY: kill(2) on a daemon this test started in an earlier run.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let gone = poll(Duration::from_secs(15), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    if gone.is_none() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

struct SecondDaemon {
    child: Option<Child>,
}

impl SecondDaemon {
    fn log_tail() -> String {
        let log = std::fs::read_to_string(format!("{D2}/log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn start() -> Result<SecondDaemon, String> {
        stop_leftover_daemon();
        let _ = ip(&["link", "del", D2_BRIDGE]);
        if !d2_mounted() {
            let _ = std::fs::remove_dir_all(D2);
        }
        std::fs::create_dir_all(D2).map_err(|e| format!("{D2}: {e}"))?;
        // From here on, Drop cleans up whatever was made.
        let mut daemon = SecondDaemon { child: None };
        for args in [
            &["link", "add", D2_BRIDGE, "type", "bridge"][..],
            &["addr", "add", "172.31.250.1/24", "dev", D2_BRIDGE],
            &["link", "set", D2_BRIDGE, "up"],
        ] {
            let out = ip(args);
            if !out.status.success() {
                return Err(format!("ip {args:?}: {}", stderr(&out).trim()));
            }
        }
        let log = std::fs::File::create(format!("{D2}/log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--userland-proxy=false",
                &format!("--bridge={D2_BRIDGE}"),
                "--iptables=false",
                "--ip-masq=false",
                "--data-root",
                &format!("{D2}/data"),
                "--exec-root",
                &format!("{D2}/exec"),
                "--pidfile",
                &format!("{D2}/pid"),
                "--host",
                &d2_host(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        daemon.child = Some(child);
        let docker = Docker { host: d2_host() };
        let up = poll(Duration::from_secs(30), || {
            if let Some(Ok(Some(status))) = daemon.child.as_mut().map(Child::try_wait) {
                return Some(Err(format!(
                    "the second dockerd exited ({status}):\n{}",
                    Self::log_tail()
                )));
            }
            docker
                .run(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
                .then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => Ok(daemon),
            Some(Err(e)) => Err(e),
            None => Err(format!(
                "the second dockerd did not answer in 30 s:\n{}",
                Self::log_tail()
            )),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            wait_timeout(&mut child, Duration::from_secs(15));
        }
        let _ = ip(&["link", "del", D2_BRIDGE]);
        if !d2_mounted() {
            let _ = std::fs::remove_dir_all(D2);
        }
    }
}

#[test]
fn docker_published_port_without_the_userland_proxy() {
    let _lock = docker_lock();
    if !needs_root("a second dockerd and a bridge need root") {
        return;
    }
    if !have("dockerd", "--version") || !have("ip", "-V") {
        return skip_or_fail("dockerd (docker.io) or ip (iproute2) is missing");
    }
    if let Err(why) = Docker::ready(DEFAULT_DOCKER) {
        // Docker is not set up on this machine at all.
        return skip_or_fail(&why);
    }
    let daemon = match SecondDaemon::start() {
        Ok(d) => d,
        Err(why) => return skip_or_fail(&why),
    };
    let docker = Docker::ready(&d2_host()).expect("the second daemon runs the test image");
    let host_port = quiet_port();
    let publish = format!("127.0.0.1:{host_port}:8080");
    let container = docker.start(&["-p", &publish], &["httpd", "-f", "-p", "8080"]);
    let id = container.id();
    let env = [("DOCKER_HOST", d2_host())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (out, story) = who_listener(host_port, &env);
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    assert_eq!(
        held.socket.process.as_deref(),
        Some("dockerd"),
        "{story:#?}"
    );
    assert_eq!(held.socket.pid, Some(daemon.pid()), "{story:#?}");
    let c = held.socket.container.as_ref().expect("a container");
    assert_container(c, &container.name, &id, 8080);
    must_note(&story, NoteKind::ContainerPublished);

    let text = run_env(&["who", &host_port.to_string()], &env);
    assert!(
        stdout(&text).contains(&format!("is published by container {}", container.name)),
        "{}",
        stdout(&text)
    );
    // kill never signals dockerd; it names the container instead.
    let kill = run_env(&["kill", &host_port.to_string(), "--yes"], &env);
    assert_exit(&kill, 1);
    assert!(
        stderr(&kill).contains(&format!("docker stop {}", container.name)),
        "{}",
        stderr(&kill)
    );
    drop(container);
    drop(daemon);
    assert!(
        !ip(&["link", "show", D2_BRIDGE]).status.success(),
        "the bridge is left behind"
    );
}

// ---------------------------------------------------------------- units

/// A cgroup made for one test, removed (after its processes) when dropped.
struct UnitCgroup {
    dir: PathBuf,
    /// The slice, when this test had to create it.
    made_slice: Option<PathBuf>,
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        let _ = poll(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.dir).ok()
        });
        if let Some(slice) = &self.made_slice {
            let _ = std::fs::remove_dir(slice);
        }
    }
}

/// Where systemd's tree lives: cgroup v1's `name=systemd` hierarchy, or
/// the unified one.
fn systemd_hierarchy() -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup/systemd");
    if v1.join("cgroup.procs").exists() {
        return Some(v1.into());
    }
    let v2 = Path::new("/sys/fs/cgroup");
    v2.join("cgroup.controllers")
        .exists()
        .then(|| v2.to_path_buf())
}

#[test]
fn a_process_in_a_service_cgroup_names_its_unit() {
    if !needs_root("moving a process into a unit's cgroup needs root") {
        return;
    }
    let Some(root) = systemd_hierarchy() else {
        return skip_or_fail("no name=systemd or unified cgroup hierarchy is mounted");
    };
    let unit = format!("portctl-test-{}.service", std::process::id());
    let slice = root.join("system.slice");
    let made_slice = (!slice.exists()).then(|| slice.clone());
    if let Err(e) = std::fs::create_dir_all(slice.join(&unit)) {
        return skip_or_fail(&format!("cannot create a cgroup under {slice:?}: {e}"));
    }
    let cgroup = UnitCgroup {
        dir: slice.join(&unit),
        made_slice,
    };
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    std::fs::write(cgroup.dir.join("cgroup.procs"), holder.pid().to_string())
        .expect("move the listener into the unit's cgroup");
    let placed = std::fs::read_to_string(format!("/proc/{}/cgroup", holder.pid())).unwrap();
    assert!(placed.contains(&unit), "{placed}");
    let port = holder.ports[0];
    let p = port.to_string();

    let (out, story) = who_json(port, &[], &[]);
    assert_exit(&out, 0);
    let held = listener(&story).expect("the listener");
    assert_eq!(held.socket.pid, Some(holder.pid()));
    assert_eq!(
        held.socket.unit.as_deref(),
        Some(unit.as_str()),
        "{story:#?}"
    );
    assert_eq!(held.socket.container, None);

    let text = run(&["who", &p]);
    assert!(
        stdout(&text).contains(&format!("unit {unit}")),
        "{}",
        stdout(&text)
    );
    let wide = run(&["list", "-w", "--port", &p]);
    assert_exit(&wide, 0);
    assert!(stdout(&wide).contains(&unit), "{}", stdout(&wide));
    let check = run(&["check", &p, "--tcp"]);
    assert!(stdout(&check).contains(&unit), "{}", stdout(&check));

    drop(holder);
    drop(cgroup);
}

// ---------------------------------------------------------------- notes

#[test]
fn time_wait_is_told_by_who_and_by_check() {
    // std's TcpListener sets SO_REUSEADDR (on Unix), and the TIME_WAIT
    // socket keeps it: a server that sets it too may bind right away.
    let listener_socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener_socket.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener_socket.accept().unwrap();
    // The server closes first: the TIME_WAIT is on the server's port.
    drop(server);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(client.read(&mut byte).unwrap(), 0, "EOF from the server");
    drop(client);
    drop(listener_socket);

    let (out, story) = poll(Duration::from_secs(5), || {
        // TCP only: a UDP socket of a test beside this one may share the number.
        let (out, story) = who_json(port, &["--tcp"], &[]);
        note(&story, NoteKind::TimeWait)
            .is_some()
            .then_some((out, story))
    })
    .unwrap_or_else(|| {
        panic!(
            "no time-wait note: {:#?}",
            who_json(port, &["--tcp"], &[]).1
        )
    });
    assert_exit(&out, 0);
    let tw = must_note(&story, NoteKind::TimeWait);
    assert!(tw.text.starts_with("1 connection in TIME_WAIT"), "{tw:?}");
    assert!(
        story
            .sockets
            .iter()
            .all(|s| s.socket.state == Some(TcpState::TimeWait)),
        "{story:#?}"
    );

    let check = run(&["check", &port.to_string(), "--tcp", "--json"]);
    assert_exit(&check, 0);
    let records: Vec<CheckRecord> = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, Status::Free);
    let note = records[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("TIME_WAIT"), "check's note: {note:?}");
}

/// A TIME_WAIT socket keeps the SO_REUSEADDR of the listener it came
/// from: left by a server without it, it refuses even a server that sets
/// SO_REUSEADDR. `check` must say the port is in use because of TIME_WAIT,
/// and `who` must not promise that SO_REUSEADDR binds.
#[test]
fn time_wait_left_by_a_server_without_so_reuseaddr() {
    let script = r#"
import socket
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
port = l.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port))
s, _ = l.accept()
s.close()
c.settimeout(5)
assert c.recv(1) == b""
c.close()
l.close()
print(port, flush=True)
"#;
    let (child, line) = python(script, &[]);
    let _child = Kid(child);
    let port: u16 = line.trim().parse().unwrap();
    let (out, story) = poll(Duration::from_secs(5), || {
        let (out, story) = who_json(port, &["--tcp"], &[]);
        note(&story, NoteKind::TimeWait)
            .is_some()
            .then_some((out, story))
    })
    .unwrap_or_else(|| panic!("no time-wait note: {:#?}", who_json(port, &[], &[]).1));
    assert_exit(&out, 0);
    // The premise: std's TcpListener sets SO_REUSEADDR, and still fails.
    let err = TcpListener::bind(("127.0.0.1", port)).expect_err("SO_REUSEADDR bind succeeded");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    let check = run(&["check", &port.to_string(), "--tcp", "--json"]);
    assert_exit(&check, 1);
    let records: Vec<CheckRecord> = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(records[0].status, Status::InUse, "{records:?}");
    let reason = records[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("TIME_WAIT"),
        "check's reason does not name the TIME_WAIT connection: {reason:?}"
    );
    let tw = must_note(&story, NoteKind::TimeWait);
    assert!(
        !tw.text.contains("SO_REUSEADDR can bind"),
        "who promises a bind the kernel refuses: {tw:?}"
    );
}

#[test]
fn a_bound_socket_that_does_not_listen() {
    let (child, line) = python(
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)",
        &[],
    );
    let child = Kid(child);
    let port: u16 = line.trim().parse().unwrap();
    let (out, story) = who_json(port, &[], &[]);
    if story.sockets.is_empty() {
        return skip_or_fail("this kernel does not report bound-inactive sockets (Linux 6.x)");
    }
    assert_exit(&out, 0);
    let bound = story
        .sockets
        .iter()
        .find(|s| s.socket.state == Some(TcpState::Close))
        .unwrap_or_else(|| panic!("no CLOSE socket: {story:#?}"));
    assert_eq!(bound.socket.pid, Some(child.0.id()), "{story:#?}");
    must_note(&story, NoteKind::BoundInactive);
    let text = run(&["who", &port.to_string()]);
    assert!(
        stdout(&text).contains("bound (not listening)"),
        "{}",
        stdout(&text)
    );
}

/// Restores `ip_local_reserved_ports` when dropped.
struct ReservedPorts {
    saved: String,
}

impl Drop for ReservedPorts {
    fn drop(&mut self) {
        std::fs::write("/proc/sys/net/ipv4/ip_local_reserved_ports", &self.saved)
            .expect("restore ip_local_reserved_ports");
    }
}

#[test]
fn a_reserved_port_is_noted() {
    if !needs_root("writing net.ipv4.ip_local_reserved_ports needs root") {
        return;
    }
    let path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    let Ok(saved) = std::fs::read_to_string(path) else {
        return skip_or_fail("net.ipv4.ip_local_reserved_ports is not readable");
    };
    let port = quiet_port();
    let guard = ReservedPorts {
        saved: saved.clone(),
    };
    let list = match saved.trim() {
        "" => port.to_string(),
        old => format!("{old},{port}"),
    };
    if let Err(e) = std::fs::write(path, &list) {
        return skip_or_fail(&format!("cannot write {path}: {e}"));
    }
    let (out, story) = who_json(port, &[], &[]);
    assert_exit(&out, 1);
    let reserved = must_note(&story, NoteKind::Reserved);
    assert!(
        reserved.text.contains("ip_local_reserved_ports"),
        "{reserved:?}"
    );
    drop(guard);
    assert_eq!(std::fs::read_to_string(path).unwrap(), saved);
    let (_, after) = who_json(port, &[], &[]);
    assert!(note(&after, NoteKind::Reserved).is_none(), "{after:#?}");
}

#[test]
fn ephemeral_ports_are_noted_and_others_are_not() {
    let Some((low, high)) = ephemeral_range() else {
        return skip_or_fail("net.ipv4.ip_local_port_range is not readable");
    };
    // A port the OS hands out itself is inside the range by definition.
    let inside = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(
        (low..=high).contains(&inside),
        "{inside} not in {low}-{high}"
    );
    let (out, story) = who_json(inside, &[], &[]);
    assert_exit(&out, 1);
    let e = must_note(&story, NoteKind::Ephemeral);
    assert!(e.text.contains(&format!("{low}-{high}")), "{e:?}");
    let outside = if low > 1 { low - 1 } else { high + 1 };
    let (_, story) = who_json(outside, &[], &[]);
    assert!(note(&story, NoteKind::Ephemeral).is_none(), "{story:#?}");
}

#[test]
fn privileged_ports_for_a_user_without_the_capability() {
    if !needs_root("running as nobody (setpriv) needs root") {
        return;
    }
    let start: u16 = sysctl("ip_unprivileged_port_start")
        .trim()
        .parse()
        .unwrap_or(1024);
    if start <= 1 {
        return skip_or_fail("net.ipv4.ip_unprivileged_port_start is 0: no port needs privilege");
    }
    let port = if start > 80 { 80 } else { start - 1 };
    let p = port.to_string();
    let out = run_as_nobody(&["who", &p, "--json"]);
    let story = story_of(&out);
    let note_text = &must_note(&story, NoteKind::Privileged).text;
    assert!(
        note_text.contains(&format!("ip_unprivileged_port_start ({start})")),
        "{note_text}"
    );
    let (_, as_root) = who_json(port, &[], &[]);
    assert!(
        note(&as_root, NoteKind::Privileged).is_none(),
        "{as_root:#?}"
    );
}

#[test]
fn hidden_owners_as_root_in_another_pid_namespace_and_as_nobody() {
    if !needs_root("unshare --pid and setpriv need root") {
        return;
    }
    if !have("unshare", "--version") {
        return skip_or_fail("unshare (util-linux) is missing");
    }
    let holder = SocketHolder::start(&[("tcp", "127.0.0.1", 0)], false);
    let p = holder.ports[0].to_string();
    let in_namespace = |json: bool| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(env!("CARGO_BIN_EXE_portctl"))
            .args(["who", &p])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("run unshare")
    };
    let out = in_namespace(true);
    if !out.status.success() && out.stdout.is_empty() {
        return skip_or_fail(&format!(
            "unshare --pid --fork --mount-proc fails here: {}",
            stderr(&out).trim()
        ));
    }
    assert_exit(&out, 0);
    let story = story_of(&out);
    assert_eq!(listener(&story).and_then(|s| s.socket.pid), None);
    let hidden = must_note(&story, NoteKind::HiddenOwner);
    assert!(hidden.text.contains("PID namespace"), "{hidden:?}");
    assert!(!hidden.text.contains("sudo"), "{hidden:?}");
    let text = in_namespace(false);
    assert!(!stdout(&text).contains("sudo"), "{}", stdout(&text));

    let out = run_as_nobody(&["who", &p, "--json"]);
    assert_exit(&out, 0);
    let story = story_of(&out);
    let hidden = must_note(&story, NoteKind::HiddenOwner);
    assert!(hidden.text.contains("sudo"), "{hidden:?}");
    assert!(hidden.text.contains("root"), "{hidden:?}");
    assert!(!hidden.text.contains("PID namespace"), "{hidden:?}");
}

// ---------------------------------------------------------------- answers

#[test]
fn a_port_nobody_uses_and_bad_input() {
    let port = quiet_port();
    let out = run(&["who", &port.to_string()]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!("{port}/tcp+udp is not in use")),
        "{}",
        stdout(&out)
    );
    let (out, story) = who_json(port, &[], &[]);
    assert_exit(&out, 1);
    assert_eq!(story.port, port);
    assert!(story.sockets.is_empty(), "{story:#?}");
    assert_usage_error(&run(&["who", "70000"]), "70000");
    assert_usage_error(&run(&["who", "abc"]), "abc");
}
