//! `portctl who` against real parts: Docker containers (published with and
//! without the userland proxy, host networking), a systemd-style unit
//! cgroup, TIME_WAIT, bound-inactive sockets, the port sysctls, and hidden
//! owners in another PID namespace or of another user.
//!
//! Loopback only: containers are there to be attributed, never connected
//! to. A test that needs a real part (root, Docker, a kernel feature) is
//! ignored unless asked for, and fails when the part is missing.
// Unix only: it needs /proc, cgroups, namespaces, Docker and signals.
#![cfg(unix)]

use crate::common;

use common::{
    assert_exit, assert_usage_error, check_records, json, poll, portctl, python, quiet_port,
    require_program, require_root, require_root_and_setpriv, run, run_as_nobody, stderr, stdout,
    wait_timeout, Kid, SocketHolder,
};
use serde_json::Value;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// Runs portctl with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    portctl()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run portctl")
}

/// `who --json`'s story, checked against the shape of a story.
#[track_caller]
fn story_of(out: &Output) -> Value {
    let story = json::parse(out);
    json::story(&story);
    story
}

/// `who PORT --json` (plus `extra` arguments) with `env`: its output and story.
#[track_caller]
fn who_json(port: u16, extra: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let port = port.to_string();
    let mut args = vec!["who", port.as_str(), "--json"];
    args.extend_from_slice(extra);
    let out = run_env(&args, env);
    let story = story_of(&out);
    (out, story)
}

/// The story's sockets.
fn sockets(story: &Value) -> &Vec<Value> {
    story["sockets"].as_array().unwrap()
}

/// The story's note of `kind` (`time-wait`, `hidden-owner`, ...).
fn note<'a>(story: &'a Value, kind: &str) -> Option<&'a Value> {
    story["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == kind)
}

#[track_caller]
fn must_note<'a>(story: &'a Value, kind: &str) -> &'a Value {
    note(story, kind).unwrap_or_else(|| panic!("no {kind} note in {story:#}"))
}

/// A note's text.
fn words(note: &Value) -> &str {
    note["text"].as_str().unwrap()
}

/// The story's listening socket.
fn listener(story: &Value) -> Option<&Value> {
    sockets(story).iter().find(|s| s["state"] == "LISTEN")
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
    /// there (imported from the host's static busybox when missing). A
    /// missing part fails the test.
    #[track_caller]
    fn ready(host: &str) -> Docker {
        require_program("docker", "--version", "apt-get install docker.io");
        let docker = Docker { host: host.into() };
        let version = docker.run(&["version", "--format", "{{.Server.Version}}"]);
        assert!(
            version.status.success(),
            "this test needs a Docker daemon answering at {host} (.ci/run starts one: \
             dockerd --data-root /var/lib/portctl-ci-docker): {}",
            stderr(&version).trim()
        );
        docker.ensure_image();
        docker
    }

    /// Imports `portctl-busybox:test` without any registry: a rootfs of
    /// /bin/busybox and a few links to it.
    #[track_caller]
    fn ensure_image(&self) {
        if self.run(&["image", "inspect", IMAGE]).status.success() {
            return;
        }
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "this test needs /bin/busybox for its image: apt-get install busybox-static"
        );
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
        assert!(
            out.status.success(),
            "docker import failed: {}",
            stderr(&out).trim()
        );
    }

    /// `docker run -d` of the test image with `options` before the image
    /// and `command` after it; removed (`docker rm -f`) when dropped.
    #[track_caller]
    fn start(&self, options: &[&str], command: &[&str]) -> RunningContainer {
        self.start_named(&unique_name(), options, command)
    }

    /// As `start`, with the container's name given.
    #[track_caller]
    fn start_named(&self, name: &str, options: &[&str], command: &[&str]) -> RunningContainer {
        let name = name.to_string();
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
fn assert_container(c: &Value, name: &str, id: &str, port: u16) {
    assert_eq!(c["runtime"], "docker", "{c}");
    assert_eq!(c["name"], name, "{c}");
    assert_eq!(c["image"], IMAGE, "{c}");
    assert_eq!(c["port"], port, "{c}");
    let got = c["id"].as_str().unwrap_or_default();
    assert!(is_full_id(got), "not a full id: {c}");
    assert_eq!(got, id, "{c}");
}

/// Waits for `who PORT` to show a listener, with `env`.
#[track_caller]
fn who_listener(port: u16, env: &[(&str, &str)]) -> (Output, Value) {
    poll(Duration::from_secs(10), || {
        let (out, story) = who_json(port, &["--tcp"], env);
        listener(&story).is_some().then_some((out, story))
    })
    .unwrap_or_else(|| {
        let (out, story) = who_json(port, &["--tcp"], env);
        panic!(
            "nothing listens on {port} after 10 s: {story:#}\n{}",
            stderr(&out)
        )
    })
}

#[test]
#[ignore = "needs docker"]
fn docker_published_port_through_the_userland_proxy() {
    let _lock = docker_lock();
    let docker = Docker::ready(DEFAULT_DOCKER);
    let host_port = quiet_port();
    let publish = format!("127.0.0.1:{host_port}:8080");
    let container = docker.start(&["-p", &publish], &["httpd", "-f", "-p", "8080"]);
    let name = container.name.as_str();
    let id = container.id();
    let port = host_port.to_string();

    let (out, story) = who_listener(host_port, &[]);
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    assert_ne!(
        held["process"], "dockerd",
        "this test needs the default daemon's userland proxy (dockerd's default; \
         the daemon at {DEFAULT_DOCKER} runs with --userland-proxy=false)"
    );
    assert_eq!(held["process"], "docker-proxy", "{story:#}");
    assert_eq!(held["local_port"], host_port, "{held}");
    let c = &held["container"];
    assert!(!c.is_null(), "a container: {held}");
    assert_container(c, name, &id, 8080);
    let published = must_note(&story, "container-published");
    assert!(words(published).contains(name), "{published}");

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
    let records = check_records(&check);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "in-use", "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(name), "check's reason: {reason:?}");
    let text = run(&["check", &port, "--tcp"]);
    assert!(stdout(&text).contains(name), "{}", stdout(&text));

    // list carries the same container, and -w shows its name.
    let list = run(&["list", "--json", "--port", &port]);
    assert_exit(&list, 0);
    let rows = json::array(&list);
    rows.iter().for_each(json::socket_record);
    let mine: Vec<&Value> = rows
        .iter()
        .filter(|r| r["local_port"] == host_port)
        .collect();
    assert!(!mine.is_empty(), "{rows:?}");
    for row in mine {
        assert_eq!(&row["container"], c, "{row}");
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
        .map(|s| &s["container"])
        .filter(|c| !c.is_null())
        .unwrap_or_else(|| panic!("no container without the API: {blind:#}"));
    assert_eq!(
        (&c["runtime"], &c["port"]),
        (&"docker".into(), &8080.into()),
        "{c}"
    );

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
#[ignore = "needs docker"]
fn docker_host_network_process_belongs_to_its_container() {
    let _lock = docker_lock();
    let docker = Docker::ready(DEFAULT_DOCKER);
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
    assert_eq!(held["process"], "httpd", "{story:#}");
    assert_container(&held["container"], &container.name, &id, port);
    // It is inside the container, not published by it.
    assert!(note(&story, "container-published").is_none(), "{story:#}");
    let text = run(&["who", &p]);
    assert!(
        stdout(&text).contains(&format!("inside container {}", container.name)),
        "{}",
        stdout(&text)
    );
}

/// A container's own program named like a runtime's (`docker-proxy`,
/// root-owned inside its image) is the container's: a runtime's process
/// never runs inside one of its containers. `who` says which container,
/// and `kill` treats it as any process, not as a runtime to shield.
#[test]
#[ignore = "needs docker"]
fn a_containers_program_named_docker_proxy_is_the_containers() {
    let _lock = docker_lock();
    let docker = Docker::ready(DEFAULT_DOCKER);
    let port = quiet_port();
    let script = format!(
        "mkdir -p /usr/sbin && cp /bin/busybox /usr/sbin/docker-proxy && \
         exec -a httpd /usr/sbin/docker-proxy -f -p 127.0.0.1:{port} -h /"
    );
    let container = docker.start(&["--network", "host"], &["sh", "-c", &script]);
    let id = container.id();
    let (out, story) = poll(Duration::from_secs(20), || {
        let (out, story) = who_listener(port, &[]);
        listener(&story).is_some().then_some((out, story))
    })
    .expect("the container's listener");
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    assert_eq!(held["process"], "docker-proxy", "{story:#}");
    assert_container(&held["container"], &container.name, &id, port);
    let text = stdout(&run(&["who", &port.to_string()]));
    assert!(
        text.contains(&format!("inside container {}", container.name)),
        "{text}"
    );
    let kill = run(&["kill", &port.to_string(), "--yes", "--json"]);
    assert!(
        !stderr(&kill).contains("runtime's own process"),
        "{}",
        stderr(&kill)
    );
}

/// Two containers publish one port number on two host addresses: each
/// socket is attributed to its own container, matched on transport, host
/// address and port (never port alone). Nothing connects to them.
#[test]
#[ignore = "needs docker"]
fn two_containers_on_one_port_and_two_addresses_are_told_apart() {
    let _lock = docker_lock();
    let docker = Docker::ready(DEFAULT_DOCKER);
    let host_port = quiet_port();
    let first = docker.start(
        &["-p", &format!("127.0.0.1:{host_port}:8080")],
        &["httpd", "-f", "-p", "8080"],
    );
    let second = docker.start(
        &["-p", &format!("127.0.0.2:{host_port}:9090")],
        &["httpd", "-f", "-p", "9090"],
    );
    let (out, story) = who_listener(host_port, &[]);
    assert_exit(&out, 0);
    let sockets = sockets(&story);
    let on = |addr: &str| {
        sockets
            .iter()
            .find(|s| s["local_addr"] == addr && s["state"] == "LISTEN")
            .unwrap_or_else(|| panic!("no listener on {addr}: {story:#}"))
    };
    assert_container(
        &on("127.0.0.1")["container"],
        &first.name,
        &first.id(),
        8080,
    );
    assert_container(
        &on("127.0.0.2")["container"],
        &second.name,
        &second.id(),
        9090,
    );
}

/// A container under a kubelet's cgroup parent (the cgroupfs driver's
/// `/kubepods/<qos>/pod<uid>`): the process is a pod's, with the runtime
/// `kubernetes`, its container id and the pod's uid.
#[test]
#[ignore = "needs docker"]
fn a_container_under_a_kubelet_cgroup_parent_is_a_pods() {
    let _lock = docker_lock();
    let docker = Docker::ready(DEFAULT_DOCKER);
    let pod = format!("0b8e6f3c-1b1a-4b0e-9d2a-{:012x}", std::process::id());
    let port = quiet_port();
    let p = port.to_string();
    let container = docker.start(
        &[
            "--cgroup-parent",
            &format!("/kubepods/besteffort/pod{pod}"),
            "--network",
            "host",
        ],
        &["httpd", "-f", "-p", &p, "-h", "/"],
    );
    let id = container.id();
    let (out, story) = who_listener(port, &[]);
    assert_exit(&out, 0);
    let c = &listener(&story).unwrap()["container"];
    assert_eq!(c["runtime"], "kubernetes", "{story:#}");
    assert_eq!(c["id"], id.as_str(), "{story:#}");
    assert_eq!(c["pod_uid"], pod.as_str(), "{story:#}");
    // Docker names it; the name is no kubelet's, so no pod name is made up.
    assert_eq!(c["name"], container.name.as_str(), "{story:#}");
    assert!(
        c.get("pod").is_none() && c.get("namespace").is_none(),
        "{story:#}"
    );
    let text = stdout(&run(&["who", &p]));
    assert!(text.contains(&format!("pod {pod}")), "{text}");
    let metrics = stdout(&run(&["metrics"]));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portctl_listener_info{")
                && l.contains(&format!("port=\"{port}\""))
                && l.contains("runtime=\"kubernetes\"")
                && l.contains(&format!("pod_uid=\"{pod}\""))),
        "{metrics}"
    );
    let wide = json::array(&run(&["list", "-w", "--json", "--port", &p]));
    assert!(
        wide.iter()
            .any(|s| s["container"]["pod_uid"] == pod.as_str()),
        "{wide:?}"
    );
    drop(container);

    // Named as the kubelet names a pod's container in Docker: the pod and
    // its namespace, but only where the uid in the name is the cgroup's.
    for (uid_in_name, believed) in [(pod.clone(), true), (pod.replace("0b8e", "1111"), false)] {
        let name = format!(
            "k8s_web_shop-7d4b9c_{}_{uid_in_name}_0",
            unique_name().replace('-', "")
        );
        let namespace = name.split('_').nth(3).unwrap().to_string();
        let container = docker.start_named(
            &name,
            &[
                "--cgroup-parent",
                &format!("/kubepods/besteffort/pod{pod}"),
                "--network",
                "host",
            ],
            &["httpd", "-f", "-p", &p, "-h", "/"],
        );
        let (out, story) = poll(Duration::from_secs(20), || {
            let (out, story) = who_listener(port, &[]);
            listener(&story).is_some().then_some((out, story))
        })
        .expect("the pod's listener");
        assert_exit(&out, 0);
        let c = &listener(&story).unwrap()["container"];
        assert_eq!(c["id"], container.id().as_str(), "{story:#}");
        let metrics = stdout(&run(&["metrics"]));
        let series = metrics
            .lines()
            .find(|l| {
                l.starts_with("portctl_listener_info{") && l.contains(&format!("port=\"{port}\""))
            })
            .unwrap_or_else(|| panic!("no series for {port}: {metrics}"));
        if believed {
            assert_eq!(c["pod"], "shop-7d4b9c", "{story:#}");
            assert_eq!(c["namespace"], namespace.as_str(), "{story:#}");
            assert_eq!(c["name"], "web", "{story:#}");
            assert!(
                series.contains("pod=\"shop-7d4b9c\"")
                    && series.contains(&format!("namespace=\"{namespace}\"")),
                "{series}"
            );
        } else {
            assert!(
                c.get("pod").is_none() && c.get("namespace").is_none(),
                "a name whose uid is another pod's: {story:#}"
            );
            assert!(series.contains("pod=\"\""), "{series}");
        }
    }
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
#[ignore = "needs root and docker"]
fn docker_published_port_without_the_userland_proxy() {
    let _lock = docker_lock();
    // A second dockerd and a bridge of its own need root.
    require_root();
    require_program("docker", "--version", "apt-get install docker.io");
    require_program("dockerd", "--version", "apt-get install docker.io");
    require_program("ip", "-V", "apt-get install iproute2");
    let daemon = SecondDaemon::start().unwrap_or_else(|why| panic!("{why}"));
    let docker = Docker::ready(&d2_host());
    let host_port = quiet_port();
    let publish = format!("127.0.0.1:{host_port}:8080");
    let container = docker.start(&["-p", &publish], &["httpd", "-f", "-p", "8080"]);
    let id = container.id();
    let env = [("DOCKER_HOST", d2_host())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (out, story) = who_listener(host_port, &env);
    assert_exit(&out, 0);
    let held = listener(&story).unwrap();
    assert_eq!(held["process"], "dockerd", "{story:#}");
    assert_eq!(json::pid(&held["pid"]), Some(daemon.pid()), "{story:#}");
    assert_container(&held["container"], &container.name, &id, 8080);
    must_note(&story, "container-published");

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
#[ignore = "needs root"]
fn a_process_in_a_service_cgroup_names_its_unit() {
    // Moving a process into a unit's cgroup needs root.
    require_root();
    let root = systemd_hierarchy()
        .expect("this test needs a name=systemd or unified cgroup hierarchy under /sys/fs/cgroup");
    let unit = format!("portctl-test-{}.service", std::process::id());
    let slice = root.join("system.slice");
    let made_slice = (!slice.exists()).then(|| slice.clone());
    if let Err(e) = std::fs::create_dir_all(slice.join(&unit)) {
        panic!("cannot create a cgroup under {slice:?}: {e}");
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
    assert_eq!(json::pid(&held["pid"]), Some(holder.pid()), "{held}");
    assert_eq!(held["unit"], unit.as_str(), "{story:#}");
    assert!(held["container"].is_null(), "{held}");

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
        note(&story, "time-wait").is_some().then_some((out, story))
    })
    .unwrap_or_else(|| panic!("no time-wait note: {:#}", who_json(port, &["--tcp"], &[]).1));
    assert_exit(&out, 0);
    let tw = must_note(&story, "time-wait");
    assert!(words(tw).starts_with("1 connection in TIME_WAIT"), "{tw}");
    assert!(
        sockets(&story).iter().all(|s| s["state"] == "TIME_WAIT"),
        "{story:#}"
    );

    let check = run(&["check", &port.to_string(), "--tcp", "--json"]);
    assert_exit(&check, 0);
    let records = check_records(&check);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "free", "{records:?}");
    let note = records[0]["note"].as_str().unwrap_or_default();
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
        note(&story, "time-wait").is_some().then_some((out, story))
    })
    .unwrap_or_else(|| panic!("no time-wait note: {:#}", who_json(port, &[], &[]).1));
    assert_exit(&out, 0);
    // The premise: std's TcpListener sets SO_REUSEADDR, and still fails.
    let err = TcpListener::bind(("127.0.0.1", port)).expect_err("SO_REUSEADDR bind succeeded");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    let check = run(&["check", &port.to_string(), "--tcp", "--json"]);
    assert_exit(&check, 1);
    let records = check_records(&check);
    assert_eq!(records[0]["status"], "in-use", "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("TIME_WAIT"),
        "check's reason does not name the TIME_WAIT connection: {reason:?}"
    );
    let tw = must_note(&story, "time-wait");
    assert!(
        !words(tw).contains("SO_REUSEADDR can bind"),
        "who promises a bind the kernel refuses: {tw}"
    );
}

#[test]
#[ignore = "needs a kernel that reports bound-inactive sockets (Linux 6.8+)"]
fn a_bound_socket_that_does_not_listen() {
    let (child, line) = python(
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)",
        &[],
    );
    let child = Kid(child);
    let port: u16 = line.trim().parse().unwrap();
    let (out, story) = who_json(port, &[], &[]);
    assert!(
        !sockets(&story).is_empty(),
        "this test needs a kernel whose sock_diag reports bound-inactive sockets \
         (Linux 6.8+); this one shows none: {story:#}"
    );
    assert_exit(&out, 0);
    let bound = sockets(&story)
        .iter()
        .find(|s| s["state"] == "CLOSE")
        .unwrap_or_else(|| panic!("no CLOSE socket: {story:#}"));
    assert_eq!(json::pid(&bound["pid"]), Some(child.0.id()), "{story:#}");
    must_note(&story, "bound-inactive");
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
#[ignore = "needs root"]
fn a_reserved_port_is_noted() {
    // Writing net.ipv4.ip_local_reserved_ports needs root.
    require_root();
    let path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    let saved = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("net.ipv4.ip_local_reserved_ports is not readable: {e}"));
    let port = quiet_port();
    let guard = ReservedPorts {
        saved: saved.clone(),
    };
    let list = match saved.trim() {
        "" => port.to_string(),
        old => format!("{old},{port}"),
    };
    if let Err(e) = std::fs::write(path, &list) {
        panic!("cannot write {path}: {e}");
    }
    let (out, story) = who_json(port, &[], &[]);
    assert_exit(&out, 1);
    let reserved = must_note(&story, "reserved");
    assert!(
        words(reserved).contains("ip_local_reserved_ports"),
        "{reserved}"
    );
    drop(guard);
    assert_eq!(std::fs::read_to_string(path).unwrap(), saved);
    let (_, after) = who_json(port, &[], &[]);
    assert!(note(&after, "reserved").is_none(), "{after:#}");
}

#[test]
fn ephemeral_ports_are_noted_and_others_are_not() {
    let (low, high) = ephemeral_range().expect("net.ipv4.ip_local_port_range is readable on Linux");
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
    let e = must_note(&story, "ephemeral");
    assert!(words(e).contains(&format!("{low}-{high}")), "{e}");
    let outside = if low > 1 { low - 1 } else { high + 1 };
    let (_, story) = who_json(outside, &[], &[]);
    assert!(note(&story, "ephemeral").is_none(), "{story:#}");
}

#[test]
#[ignore = "needs root and setpriv"]
fn privileged_ports_for_a_user_without_the_capability() {
    // Running as nobody (setpriv) needs root.
    require_root_and_setpriv();
    let start: u16 = sysctl("ip_unprivileged_port_start")
        .trim()
        .parse()
        .expect("read net.ipv4.ip_unprivileged_port_start");
    assert!(
        start > 1,
        "this test needs ports that need privilege: net.ipv4.ip_unprivileged_port_start is \
         {start} here (containers often set 0; sysctl -w net.ipv4.ip_unprivileged_port_start=1024)"
    );
    let port = if start > 80 { 80 } else { start - 1 };
    let p = port.to_string();
    let out = run_as_nobody(&["who", &p, "--json"]);
    let story = story_of(&out);
    let note_text = words(must_note(&story, "privileged"));
    assert!(
        note_text.contains(&format!("ip_unprivileged_port_start ({start})")),
        "{note_text}"
    );
    let (_, as_root) = who_json(port, &[], &[]);
    assert!(note(&as_root, "privileged").is_none(), "{as_root:#}");
}

#[test]
#[ignore = "needs root and setpriv"]
fn hidden_owners_as_root_in_another_pid_namespace_and_as_nobody() {
    // unshare --pid and setpriv need root.
    require_root_and_setpriv();
    require_program("unshare", "--version", "apt-get install util-linux");
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
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "unshare --pid --fork --mount-proc fails here: {}",
        stderr(&out).trim()
    );
    assert_exit(&out, 0);
    let story = story_of(&out);
    let held = listener(&story).unwrap_or_else(|| panic!("no listener: {story:#}"));
    assert_eq!(json::pid(&held["pid"]), None, "{held}");
    let hidden = must_note(&story, "hidden-owner");
    assert!(words(hidden).contains("PID namespace"), "{hidden}");
    assert!(!words(hidden).contains("sudo"), "{hidden}");
    let text = in_namespace(false);
    assert!(!stdout(&text).contains("sudo"), "{}", stdout(&text));

    let out = run_as_nobody(&["who", &p, "--json"]);
    assert_exit(&out, 0);
    let story = story_of(&out);
    let hidden = must_note(&story, "hidden-owner");
    assert!(words(hidden).contains("sudo"), "{hidden}");
    assert!(words(hidden).contains("root"), "{hidden}");
    assert!(!words(hidden).contains("PID namespace"), "{hidden}");
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
    assert_eq!(story["port"], port, "{story}");
    assert!(sockets(&story).is_empty(), "{story:#}");
    assert_usage_error(&run(&["who", "70000"]), "70000");
    assert_usage_error(&run(&["who", "abc"]), "abc");
}
