//! `portctl top` driven as a person would: the real binary in a tmux pane
//! of a known size, keys sent with `send-keys`, the screen read back with
//! `capture-pane`. Each test has its own tmux server (`-L`), killed when
//! the test ends; every wait is bounded.
#![cfg(unix)]

use crate::common;

use common::{
    assert_usage_error, named_listener, portctl, quiet_port, require_program, wait_timeout, Server,
    SocketHolder,
};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the pane prints once top has exited, with its exit code.
const EXITED: &str = "top-exited-with";

/// A tmux server of its own with one session running `portctl top`.
struct Pane {
    server: String,
}

impl Pane {
    /// `portctl top ARGS` in a `width`×`height` pane; tmux must be there.
    #[track_caller]
    fn start(args: &str, width: u16, height: u16) -> Pane {
        let command = format!(
            "{} top {args}; echo {EXITED}-$?; sleep 60",
            env!("CARGO_BIN_EXE_portctl")
        );
        Pane::run(&command, width, height)
    }

    /// `command` (a shell's) in a `width`×`height` pane.
    #[track_caller]
    fn run(command: &str, width: u16, height: u16) -> Pane {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        require_program("tmux", "-V", "apt-get install tmux");
        let pane = Pane {
            server: format!(
                "portctl-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let started = pane
            .tmux(&["new-session", "-d", "-s", "top"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .expect("run tmux");
        assert!(started.success(), "tmux new-session failed");
        pane
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.server, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        cmd
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        let out = self
            .tmux(&["capture-pane", "-p", "-t", "top"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends tmux key names (`Enter`, `Escape`, `q`).
    fn keys(&self, keys: &[&str]) {
        let mut cmd = self.tmux(&["send-keys", "-t", "top"]);
        assert!(cmd.args(keys).status().unwrap().success());
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        let mut cmd = self.tmux(&["send-keys", "-t", "top", "-l"]);
        assert!(cmd.arg(text).status().unwrap().success());
    }

    /// Filters the table down to `port` and leaves the filter: the screen
    /// once only its row shows.
    #[track_caller]
    fn only_port(&self, port: u16) -> String {
        // Keys sent before top sets raw mode are cooked by the terminal:
        // the filter's Enter would come as a line feed. Its header says it
        // runs.
        self.wait_for("top", |s| s.contains("portctl top ·"));
        self.keys(&["/"]);
        self.type_text(&port.to_string());
        self.keys(&["Enter"]);
        self.wait_for("one row", |s| s.contains("1 shown"))
    }

    /// Polls the screen until `ready` holds, for at most ten seconds.
    #[track_caller]
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        self.wait_up_to(Duration::from_secs(10), what, ready)
    }

    /// Polls the screen until `ready` holds, for at most `limit`.
    #[track_caller]
    fn wait_up_to(&self, limit: Duration, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited {limit:?} for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The PID of top itself: the child of the pane's shell.
    fn top_pid(&self) -> u32 {
        let out = self
            .tmux(&["display-message", "-p", "-t", "top", "#{pane_pid}"])
            .output()
            .unwrap();
        let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}

/// A `portctl serve hello` child of this test, and its port.
fn server() -> Server {
    Server::start(&["hello", "--port", "0", "--quiet"], 1)
}

/// top in a 100-column pane `height` rows tall, filtered to `port`.
fn narrowed_to(port: u16, height: u16) -> Pane {
    let pane = Pane::start("", 100, height);
    pane.only_port(port);
    pane
}

fn shows(port: u16) -> impl Fn(&str) -> bool {
    move |screen: &str| screen.contains(&format!("127.0.0.1:{port} "))
}

#[test]
#[ignore = "needs tmux"]
fn the_table_shows_a_listener_and_the_filter_narrows_it() {
    let server = server();
    let pane = Pane::start("", 100, 60);
    let screen = pane.wait_for("the server's listener", shows(server.port));
    assert!(
        screen.contains("PROTO") && screen.contains("LISTEN"),
        "{screen}"
    );
    assert!(screen.contains("sockets · tcp"), "the counts:\n{screen}");
    pane.keys(&["/"]);
    pane.type_text(&server.port.to_string());
    let screen = pane.wait_for("the filter", |s| {
        s.contains(&format!("filter: {}", server.port))
    });
    let rows: Vec<&str> = screen.lines().filter(|l| l.starts_with("tcp")).collect();
    assert!(!rows.is_empty(), "{screen}");
    for row in rows {
        assert!(row.contains(&server.port.to_string()), "{row}\n{screen}");
    }
    pane.keys(&["Escape"]);
    pane.wait_for("the filter cleared", |s| !s.contains("filter:"));
}

#[test]
#[ignore = "needs tmux"]
fn enter_opens_the_story_of_the_socket() {
    let server = server();
    let pane = narrowed_to(server.port, 60);
    pane.keys(&["Enter"]);
    let screen = pane.wait_for("the details", |s| s.contains("command:"));
    assert!(screen.contains("serve hello --port 0"), "{screen}");
    assert!(
        screen.contains(&format!("portctl (pid {}", server.pid())),
        "{screen}"
    );
    assert!(screen.contains("parents:"), "{screen}");
    pane.keys(&["Escape"]);
    pane.wait_for("the details closed", |s| !s.contains("command:"));
}

#[test]
#[ignore = "needs tmux"]
fn details_taller_than_the_screen_scroll() {
    let server = server();
    let pane = narrowed_to(server.port, 9);
    pane.keys(&["Enter"]);
    let first = format!("process:   portctl (pid {}", server.pid());
    let top = pane.wait_for("the details, scrollable", |s| {
        s.contains(&first) && s.contains("↑↓")
    });
    assert!(!top.contains("Esc closes"), "{top}");
    pane.keys(&["End"]);
    let end = pane.wait_for("the end of the details", |s| s.contains("Esc closes"));
    assert!(!end.contains(&first), "{end}");
    pane.keys(&["Home"]);
    pane.wait_for("the top again", |s| {
        s.contains(&first) && !s.contains("Esc closes")
    });
    pane.keys(&["Escape"]);
    pane.wait_for("the details closed", |s| !s.contains(&first));
}

#[test]
#[ignore = "needs tmux"]
fn k_asks_then_stops_the_listener() {
    let mut server = server();
    let pane = narrowed_to(server.port, 60);
    let question = format!(
        "Stop portctl (pid {}) listening on port {}/tcp?",
        server.pid(),
        server.port
    );
    pane.keys(&["k"]);
    pane.wait_for("the question", |s| s.contains(&question));
    pane.keys(&["n"]);
    pane.wait_for("nothing done", |s| s.contains("nothing done"));
    assert!(server.child.try_wait().unwrap().is_none(), "n stopped it");
    pane.keys(&["k"]);
    pane.wait_for("the question again", |s| s.contains(&question));
    pane.keys(&["y"]);
    let screen = pane.wait_for("the outcome", |s| s.contains("the port is free"));
    assert!(
        screen.contains(&format!("sent SIGTERM to portctl (pid {})", server.pid())),
        "{screen}"
    );
    assert!(
        wait_timeout(&mut server.child, Duration::from_secs(10)).is_some(),
        "the server still runs"
    );
    pane.wait_for("the row gone", |s| s.contains("no socket matches"));
}

#[test]
#[ignore = "needs tmux"]
fn shift_k_forces_what_ignores_sigterm() {
    let mut holder = SocketHolder::start(&[("tcp", "127.0.0.1", quiet_port())], true);
    let port = holder.ports[0];
    let pane = narrowed_to(port, 60);
    let who = format!("python3 (pid {})", holder.pid());
    pane.keys(&["K"]);
    let question = pane.wait_for("the question", |s| {
        s.contains(&format!("Stop {who} listening on port {port}/tcp?"))
    });
    assert!(
        question.contains("then SIGKILL if it still listens"),
        "{question}"
    );
    pane.keys(&["y"]);
    pane.wait_for("the stop under way", |s| {
        s.contains("stopping what listens")
    });
    // top's 5 s for SIGTERM, then SIGKILL and up to 2 s more.
    let screen = pane.wait_up_to(Duration::from_secs(30), "the outcome", |s| {
        s.contains("the port is free")
    });
    assert!(
        screen.contains(&format!("sent SIGTERM then SIGKILL to {who}; port {port}")),
        "{screen}"
    );
    assert_killed(&mut holder.child);
}

#[test]
#[ignore = "needs tmux"]
fn quitting_while_k_waits_still_sends_sigkill() {
    let mut holder = SocketHolder::start(&[("tcp", "127.0.0.1", quiet_port())], true);
    let port = holder.ports[0];
    let pane = narrowed_to(port, 60);
    pane.keys(&["K"]);
    pane.wait_for("the question", |s| s.contains("then SIGKILL"));
    pane.keys(&["y"]);
    pane.wait_for("the stop under way", |s| {
        s.contains("stopping what listens")
    });
    pane.keys(&["q"]);
    let screen = pane.wait_up_to(Duration::from_secs(30), "top to exit", |s| {
        s.contains(EXITED)
    });
    assert!(
        screen.contains(&format!("finishing the forced stop on port {port}/tcp")),
        "{screen}"
    );
    assert!(screen.contains(&format!("{EXITED}-0")), "{screen}");
    assert_killed(&mut holder.child);
}

/// Waits up to 10 s for `child` to end, and checks that SIGKILL ended it.
#[track_caller]
fn assert_killed(child: &mut std::process::Child) {
    let ended = common::poll(Duration::from_secs(10), || child.try_wait().unwrap());
    let ended = ended.expect("still running after 10 s");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&ended),
        Some(libc::SIGKILL)
    );
}

#[test]
#[ignore = "needs tmux"]
fn q_quits_and_gives_the_terminal_back() {
    let server = server();
    let pane = Pane::start("", 100, 60);
    pane.wait_for("the table", shows(server.port));
    pane.keys(&["q"]);
    let screen = pane.wait_for("top to exit", |s| s.contains(EXITED));
    assert!(screen.contains(&format!("{EXITED}-0")), "{screen}");
    assert!(!screen.contains("PROTO"), "the table stayed:\n{screen}");
    assert!(
        !screen.contains("127.0.0.1:"),
        "the table stayed:\n{screen}"
    );
}

#[test]
#[ignore = "needs tmux"]
fn a_paste_goes_into_the_filter_and_q_still_quits_after_a_long_one() {
    let pane = Pane::start("", 100, 60);
    pane.wait_for("the table", |s| s.contains("PROTO"));
    pane.keys(&["/"]);
    pane.wait_for("the filter prompt", |s| {
        s.contains("Enter keeps the filter")
    });
    // Bracketed: the line break and the q are pasted text, not commands.
    let paste = |text: &str| {
        let mut load = pane
            .tmux(&["load-buffer", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = load.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, text.as_bytes()).unwrap();
        drop(stdin);
        assert!(wait_timeout(&mut load, Duration::from_secs(10)) == Some(0));
        assert!(pane
            .tmux(&["paste-buffer", "-p", "-t", "top"])
            .status()
            .unwrap()
            .success());
    };
    paste("abc\nq");
    pane.wait_for("the paste in the filter", |s| s.contains("/abcq"));
    assert!(!pane.screen().contains(EXITED));
    // 20,000 characters pasted, then a burst typed key by key (under
    // crossterm's 1 KiB read: more waits in the terminal for the next key).
    paste(&"x".repeat(20_000));
    pane.type_text(&"y".repeat(900));
    let started = Instant::now();
    // Apart: Esc and q in one write would read as Alt+q.
    pane.keys(&["Escape"]);
    pane.wait_for("the filter cleared", |s| !s.contains("filter:"));
    pane.keys(&["q"]);
    let screen = pane.wait_for("top to exit", |s| s.contains(EXITED));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "q took {:?}",
        started.elapsed()
    );
    assert!(screen.contains(&format!("{EXITED}-0")), "{screen}");
}

#[test]
#[ignore = "needs tmux"]
fn sigterm_gives_the_terminal_back() {
    let pane = Pane::start("", 100, 60);
    pane.wait_for("the table", |s| s.contains("PROTO"));
    let top = pane.top_pid();
    // SAFETY: kill(2) on the top this test started, in its tmux pane.
    unsafe { libc::kill(top as i32, libc::SIGTERM) };
    let screen = pane.wait_for("top to exit", |s| s.contains(EXITED));
    assert!(screen.contains(&format!("{EXITED}-0")), "{screen}");
    assert!(!screen.contains("PROTO"), "the table stayed:\n{screen}");
}

#[test]
#[ignore = "needs tmux"]
fn a_narrower_terminal_drops_columns_and_keeps_addresses_whole() {
    let server = server();
    let pane = Pane::start("", 100, 60);
    pane.wait_for("the table", shows(server.port));
    // Only the server's rows, so that the widths do not depend on what
    // else this machine holds.
    let screen = pane.only_port(server.port);
    assert!(
        screen.contains("SERVICE") && screen.contains("USER"),
        "{screen}"
    );
    // 54 columns: PROTO to PROCESS fit with any PID (up to 7 digits) and
    // a 5-digit port, USER (5 more) never does.
    assert!(pane
        .tmux(&["resize-window", "-t", "top", "-x", "54", "-y", "24"])
        .status()
        .unwrap()
        .success());
    let screen = pane.wait_for("the columns to give way", |s| {
        shows(server.port)(s) && !s.contains("SERVICE") && !s.contains("USER")
    });
    assert!(
        screen.contains("PID") && screen.contains(&server.pid().to_string()),
        "{screen}"
    );
    assert!(
        screen.contains("LISTEN") && screen.contains("portctl"),
        "{screen}"
    );
    // The mode line (`all sockets · sort: listeners first · 1 shown ·
    // filter: PORT`, 60 columns and more) says what fits and ends in `…`.
    let mode = screen.lines().nth(1).unwrap().trim_end();
    assert!(mode.ends_with('…'), "cut mid-word: {mode:?}");
}

#[test]
#[ignore = "needs tmux"]
fn hostile_process_names_are_escaped() {
    let (mut child, port) = named_listener(b"top\x1b[2Jevil", "127.0.0.1");
    let pane = Pane::start("", 100, 60);
    pane.wait_for("the listener", shows(port));
    pane.keys(&["/"]);
    pane.type_text(&port.to_string());
    let screen = pane.wait_for("the name", |s| s.contains("evil"));
    assert!(screen.contains("top\\e[2Jevil"), "{screen}");
    drop(pane);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn without_a_terminal_top_points_to_list_watch() {
    let out = portctl()
        .arg("top")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_usage_error(&out, "list --watch");
}

#[test]
fn json_is_refused() {
    let out = portctl().args(["top", "--json"]).output().unwrap();
    assert_usage_error(&out, "--json");
}

/// Whether the pane shows the alternate screen (top's) now.
fn alternate_on(pane: &Pane) -> bool {
    let out = pane
        .tmux(&["display-message", "-p", "-t", "top", "#{alternate_on}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

/// An interactive bash in the pane, with job control, and top started
/// from it: the shell's prompt is `$ `.
fn top_in_a_shell() -> Pane {
    let pane = Pane::run(
        "env -i PATH=/usr/bin:/bin TERM=screen PS1='$ ' bash --norc --noprofile -i",
        100,
        30,
    );
    pane.wait_for("the shell", |s| s.lines().any(|l| l.trim_end() == "$"));
    pane.type_text(&format!("{} top", env!("CARGO_BIN_EXE_portctl")));
    pane.keys(&["Enter"]);
    pane.wait_for("top", |s| s.contains("portctl top ·"));
    pane
}

/// Top stopped, the shell back as it was: its prompt, no alternate
/// screen, and what is typed is echoed and run.
#[track_caller]
fn the_shell_has_the_terminal(pane: &Pane) {
    let screen = pane.wait_for("top to stop", |s| s.contains("Stopped"));
    assert!(
        !alternate_on(pane),
        "still in the alternate screen:\n{screen}"
    );
    pane.type_text("echo alive-$((6*7))");
    pane.keys(&["Enter"]);
    pane.wait_for("the shell to run a command", |s| s.contains("alive-42"));
}

/// `fg`: top comes back and draws its whole screen.
#[track_caller]
fn fg_redraws_top(pane: &Pane) {
    pane.keys(&["C-l"]);
    pane.type_text("fg");
    pane.keys(&["Enter"]);
    let screen = pane.wait_for("top again", |s| {
        s.contains("portctl top ·") && s.contains("PROTO")
    });
    assert!(alternate_on(pane), "{screen}");
    assert!(
        !screen.contains("alive-42"),
        "the shell's lines were left on top's screen:\n{screen}"
    );
    pane.keys(&["q"]);
    pane.wait_for("the prompt after top", |s| s.trim_end().ends_with('$'));
}

#[test]
#[ignore = "needs tmux"]
fn ctrl_z_suspends_with_the_terminal_restored_and_fg_redraws() {
    let pane = top_in_a_shell();
    pane.keys(&["C-z"]);
    the_shell_has_the_terminal(&pane);
    fg_redraws_top(&pane);
}

#[test]
#[ignore = "needs tmux"]
fn sigtstp_from_outside_suspends_as_ctrl_z_does() {
    let pane = top_in_a_shell();
    let top = pane.top_pid();
    // SAFETY: kill(2) on the top this test started, in its tmux pane.
    unsafe { libc::kill(top as i32, libc::SIGTSTP) };
    the_shell_has_the_terminal(&pane);
    fg_redraws_top(&pane);
}

#[test]
#[ignore = "needs tmux"]
fn a_panic_on_a_background_thread_ends_top_with_the_terminal_restored() {
    let command = format!(
        "PORTCTL_TEST_PANIC_IN_FEED=1 {} top; echo {EXITED}-$?; sleep 60",
        env!("CARGO_BIN_EXE_portctl")
    );
    let pane = Pane::run(&command, 100, 30);
    let screen = pane.wait_for("top to end", |s| s.contains(EXITED));
    assert!(screen.contains(&format!("{EXITED}-3")), "{screen}");
    assert!(
        screen.contains("panicked"),
        "the panic was not said:\n{screen}"
    );
    assert!(!alternate_on(&pane), "{screen}");
}

/// A rate as top prints it (`2.0MiB/s`, `512B/s`), in bytes per second.
fn rate(cell: &str) -> Option<f64> {
    let amount = cell.strip_suffix("/s")?;
    let split = amount.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = amount.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

#[test]
#[ignore = "needs tmux"]
fn a_steady_senders_rate_and_its_process() {
    // A receiver, and a sender process of its own (`ratesender`) pushing
    // 64 KiB every 1/32 s: 2 MiB/s, for at most a minute.
    let receiver = r#"
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
end = time.time() + 60
while time.time() < end and c.recv(1 << 20):
    pass
"#;
    let sender = r#"
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, b"ratesender", 0, 0, 0)
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
chunk = b"x" * 65536
end = time.time() + 60
while time.time() < end:
    c.sendall(chunk); time.sleep(1 / 32)
"#;
    let (receiving, port) = common::python(receiver, &[]);
    let _receiving = common::Kid(receiving);
    let (sending, local) = common::python(sender, &[port.trim().to_string()]);
    let _sending = common::Kid(sending);
    let local: u16 = local.trim().parse().unwrap();
    let pane = Pane::start("", 140, 30);
    pane.wait_for("top", |s| s.contains("portctl top ·"));
    pane.keys(&["/"]);
    pane.type_text(&local.to_string());
    pane.keys(&["Enter"]);
    // The sender's own connection: its port may also be in an older
    // connection's TIME_WAIT, to another peer.
    let own = format!("127.0.0.1:{local}");
    let peer = format!("127.0.0.1:{}", port.trim());
    let in_range = |s: &str| {
        s.lines()
            .find(|l| {
                let mut words = l.split_whitespace().skip(1);
                words.next() == Some(own.as_str()) && words.next() == Some(peer.as_str())
            })
            .and_then(|row| {
                let rates: Vec<f64> = row.split_whitespace().filter_map(rate).collect();
                rates.get(1).copied()
            })
            .is_some_and(|tx| (1024.0 * 1024.0..=4.0 * 1024.0 * 1024.0).contains(&tx))
    };
    pane.wait_up_to(
        Duration::from_secs(15),
        "TX/s between 1 and 4 MiB/s",
        in_range,
    );
    pane.keys(&["p"]);
    let screen = pane.wait_for("the per-process view", |s| s.contains("ratesender"));
    let row = screen.lines().find(|l| l.contains("ratesender")).unwrap();
    let rates: Vec<f64> = row.split_whitespace().filter_map(rate).collect();
    assert!(
        rates.get(1).is_some_and(|tx| *tx >= 1024.0 * 1024.0),
        "the sender's process row: {row}"
    );
}
