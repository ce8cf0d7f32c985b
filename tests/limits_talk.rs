//! Hard limits for `portctl talk`, against the real binary and peers
//! written here: whatever a server sends, talk holds a bounded amount of
//! memory, never panics, ends a response when its framing says so, and
//! sends each line of stdin as it is read.
//!
//! The implementation before these limits kept whole replies and whole
//! HTTP responses in memory, overflowed (and panicked) on a chunk size of
//! `ffffffffffffffff`, waited for the server to close after a complete
//! response, read all of stdin before sending the first datagram, and sent
//! `exit` as a message awaiting a reply. Each test here failed on it.
//!
//! Memory is the talk process's own peak resident set (`ru_maxrss` from
//! wait4), so a spike given back before exit still counts. Peers stream a
//! fixed 1 MB pattern and compare what comes back piece by piece, so this
//! test process stays small (its own high-water mark would otherwise leak
//! into the child's figure; see `common::wait_peak_rss`).
//!
//! Loopback only (127.0.0.1 and [::1]); every loop is bounded in count and
//! time, and every peer and child ends by itself.
//!
//! A test binary of its own, apart from `tests/it`, for that reason: the
//! other tests, in the same process, would raise its high-water mark (to
//! about 41 MB) and with it every figure measured here.
// The tests stage what they test with the OS's own calls (signals,
// rlimits, wait4) through libc: unsafe is theirs to use, as it is
// platform/'s in the crate.
#![allow(unsafe_code)]
// Unix only: it measures peak memory with wait4.
#![cfg(unix)]

mod common;

use common::{portctl, wait_peak_rss, wait_timeout, Server};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// The most a talk process may hold at its peak, whatever it is sent:
/// the runtime, a 64 KiB read buffer, one JSON piece or the 1 MiB `--json`
/// body, with room for the allocator. The old implementation held every
/// byte of a reply, several times over.
const PEAK_LIMIT_KIB: u64 = 64 * 1024;

/// The longest any peer waits: for talk to connect, to send its request,
/// or to close a connection the peer holds open.
const PEER_LIMIT: Duration = Duration::from_secs(10);

/// The pattern's period: prime, so no read, write or chunk size lines up
/// with it and a lost, doubled or reordered piece shows.
const PERIOD: usize = 1_000_003;

/// Pseudo-random bytes (every value, newlines included), one period.
fn binary_pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| pattern(|x| x as u8))
}

/// Letters, digits and spaces, one period: text that `--json` carries
/// byte for byte.
fn text_pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789";
    PATTERN.get_or_init(|| pattern(|x| ALPHABET[(x % ALPHABET.len() as u64) as usize]))
}

fn pattern(byte: impl Fn(u64) -> u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..PERIOD)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            byte(state >> 32)
        })
        .collect()
}

/// Writes `len` bytes of `pattern`, starting `offset` bytes into it.
fn send_pattern(
    out: &mut impl Write,
    pattern: &[u8],
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let mut sent = 0u64;
    while sent < len {
        let at = ((offset + sent) % PERIOD as u64) as usize;
        let n = (PERIOD - at).min(256 * 1024).min((len - sent) as usize);
        out.write_all(&pattern[at..at + n])?;
        sent += n as u64;
    }
    Ok(())
}

/// Reads `input` to its end and checks it is exactly `len` bytes of
/// `pattern` from its start, a piece at a time.
fn check_pattern(mut input: impl Read, pattern: &[u8], len: u64) -> Result<(), String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading back: {e}")),
        };
        let mut piece = &buf[..n];
        while !piece.is_empty() {
            if seen >= len {
                return Err(format!("more than {len} bytes"));
            }
            let at = (seen % PERIOD as u64) as usize;
            let take = piece.len().min(PERIOD - at);
            if piece[..take] != pattern[at..at + take] {
                let bad = (0..take).find(|&i| piece[i] != pattern[at + i]).unwrap();
                return Err(format!("byte {} differs", seen + bad as u64));
            }
            piece = &piece[take..];
            seen += take as u64;
        }
    }
    if seen == len {
        Ok(())
    } else {
        Err(format!("{seen} bytes of {len}"))
    }
}

/// A one-connection peer on `ip` (port chosen by the OS): waits for talk
/// to connect, reads its HTTP request head when `http`, then runs `act`
/// with the stream. Bounded by [`PEER_LIMIT`] at every step.
fn peer<T: Send + 'static>(
    ip: IpAddr,
    http: bool,
    act: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<Option<T>>) {
    let listener = TcpListener::bind((ip, 0)).expect("bind a loopback peer");
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + PEER_LIMIT;
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    // Polling accept until talk connects, bounded.
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return None,
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(PEER_LIMIT)).unwrap();
        stream.set_write_timeout(Some(PEER_LIMIT)).unwrap();
        let _ = stream.set_nodelay(true);
        if http {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.ends_with(b"\r\n\r\n") && request.len() < 64 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            assert!(request.starts_with(b"GET /"), "{request:?}");
        }
        Some(act(&mut stream))
    });
    (addr, handle)
}

/// Keeps the connection open until talk closes it (true) or `limit`
/// passes (false), reading and dropping whatever talk sends.
fn hold(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Where talk's stdout goes.
#[derive(Clone, Copy)]
enum Out {
    Null,
    /// Captured, keeping at most this many bytes (all are counted).
    Keep(usize),
}

/// One run of talk.
struct Run {
    code: Option<i32>,
    peak_kib: u64,
    stdout: Vec<u8>,
    stdout_bytes: u64,
    stderr: String,
    took: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?} in {:?}, peak {} KiB, {} bytes on stdout\n--- stdout (start)\n{}\n--- stderr\n{}",
            self.code,
            self.took,
            self.peak_kib,
            self.stdout_bytes,
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(2000)]),
            self.stderr
        )
    }

    /// No panic, and exactly one `error:` line.
    #[track_caller]
    fn assert_one_clean_error(&self, case: &str) {
        assert!(!self.stderr.contains("panicked"), "{case}: {}", self.show());
        let errors = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count();
        assert_eq!(errors, 1, "{case}: one error line\n{}", self.show());
        assert_eq!(
            self.stderr.matches("error:").count(),
            1,
            "{case}: {}",
            self.show()
        );
    }

    /// Exit 0 or 3, never a panic.
    #[track_caller]
    fn assert_clean(&self, case: &str) {
        assert!(
            matches!(self.code, Some(0) | Some(3)),
            "{case}: {}",
            self.show()
        );
        assert!(!self.stderr.contains("panicked"), "{case}: {}", self.show());
    }

    #[track_caller]
    fn assert_peak_bounded(&self, case: &str) {
        eprintln!("{case}: talk peak RSS {} KiB", self.peak_kib);
        assert!(
            self.peak_kib > 0 && self.peak_kib < PEAK_LIMIT_KIB,
            "{case}: peak RSS {} KiB, limit {PEAK_LIMIT_KIB} KiB\n{}",
            self.peak_kib,
            self.show()
        );
    }
}

/// Reads `input` to its end on a thread, keeping at most `keep` bytes.
fn drain(mut input: impl Read + Send + 'static, keep: usize) -> JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = keep.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                    total += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, total)
    })
}

/// Runs `portctl ARGS` (stdin empty), killed after `limit`, and measures
/// its peak memory.
fn talk(args: &[&str], out: Out, limit: Duration) -> Run {
    let mut cmd = portctl();
    cmd.args(args).stderr(Stdio::piped());
    cmd.stdout(match out {
        Out::Null => Stdio::null(),
        Out::Keep(_) => Stdio::piped(),
    });
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run portctl");
    let stdout = child.stdout.take().map(|s| {
        let Out::Keep(keep) = out else { unreachable!() };
        drain(s, keep)
    });
    let stderr = drain(child.stderr.take().unwrap(), 64 * 1024);
    let (code, peak_kib) = wait_peak_rss(child, limit);
    let took = started.elapsed();
    let (stdout, stdout_bytes) = stdout.map_or((Vec::new(), 0), |h| h.join().unwrap());
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap().0).into_owned();
    Run {
        code,
        peak_kib,
        stdout,
        stdout_bytes,
        stderr,
        took,
    }
}

/// What a run that does nothing reports: the memory the kernel carries
/// over from this test process into every child's `ru_maxrss`.
fn floor_kib() -> u64 {
    let run = talk(&["--version"], Out::Null, Duration::from_secs(10));
    assert_eq!(run.code, Some(0), "{}", run.show());
    run.peak_kib
}

/// A file of this run in the temporary directory (each test removes its
/// own, so no directory is left behind).
fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("portctl-limits-talk-{}-{name}", std::process::id()))
}

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A chunked body that goes wrong: what follows the head, and whether the
/// peer closes after it (else it holds the connection open, so talk must
/// see the fault itself, not wait for the server).
struct Attack {
    name: String,
    bytes: Vec<u8>,
    closes: bool,
}

fn chunk_attacks() -> Vec<Attack> {
    let size_line = |size: &str| Attack {
        name: format!("chunk size '{size}'"),
        bytes: format!("{size}\r\nabc\r\n0\r\n\r\n").into_bytes(),
        closes: false,
    };
    // The largest size that fits: valid, so the body is cut short when the
    // server closes (the old code computed size + 2 and panicked).
    let mut attacks = vec![Attack {
        closes: true,
        ..size_line("ffffffffffffffff")
    }];
    for size in [
        "10000000000000000",
        "fffffffffffffffffffff",
        "-1",
        "zz",
        "0x10",
        "",
        "5 5",
    ] {
        attacks.push(size_line(size));
    }
    attacks.push(Attack {
        name: "chunk size 'FFFFFFFFFFFFFFFF;ext' then 64 KiB".into(),
        bytes: [b"FFFFFFFFFFFFFFFF;ext=1\r\n".as_slice(), &[b'x'; 64 * 1024]].concat(),
        closes: true,
    });
    // Size lines over 8 KiB: digits, zeros (the old code read them as the
    // last chunk and succeeded), an endless extension, and no line end.
    for (name, line, end) in [
        ("a 9000-digit size line", vec![b'1'; 9000], "\r\n"),
        ("a 9000-zero size line", vec![b'0'; 9000], "\r\n\r\n"),
        (
            "a size line with a 12 KiB extension",
            [b"5;".as_slice(), &[b'e'; 12 * 1024]].concat(),
            "\r\nhello\r\n0\r\n\r\n",
        ),
        ("a 20 KiB size line never ended", vec![b'a'; 20 * 1024], ""),
    ] {
        attacks.push(Attack {
            name: name.into(),
            bytes: [line, end.as_bytes().to_vec()].concat(),
            closes: false,
        });
    }
    attacks.push(Attack {
        name: "a chunk longer than its size".into(),
        bytes: b"3\r\nabcdef\r\n0\r\n\r\n".to_vec(),
        closes: false,
    });
    attacks.push(Attack {
        name: "a 1-byte chunk followed by 100 KiB".into(),
        bytes: [b"1\r\n".as_slice(), &[b'y'; 100 * 1024], b"\r\n0\r\n\r\n"].concat(),
        closes: false,
    });
    // The server closes where the CRLF after a chunk should be.
    attacks.push(Attack {
        name: "a chunk without its CRLF".into(),
        bytes: b"3\r\nabcXY".to_vec(),
        closes: true,
    });
    attacks
}

/// (1) Absurd chunked framing: exit 3 with one `error:` line, no panic,
/// and at once (the peer holds the connection open), in every output
/// mode, over IPv4 and IPv6, sent whole or in pieces, as the first chunk
/// or after a good one.
#[test]
fn absurd_chunk_sizes_are_one_clean_error() {
    let file = scratch_file("chunks");
    let file_arg = file.to_str().unwrap().to_string();
    let mut runs = 0;
    for (a, attack) in chunk_attacks().into_iter().enumerate() {
        for after_good in [false, true] {
            for mode in 0..3 {
                let i = a * 6 + usize::from(after_good) * 3 + mode;
                let ip = if i % 2 == 0 { V4 } else { V6 };
                let dribble = (i / 2) % 2 == 1;
                let mut response = CHUNKED_HEAD.to_vec();
                if after_good {
                    response.extend_from_slice(b"5\r\nfirst\r\n");
                }
                response.extend_from_slice(&attack.bytes);
                let closes = attack.closes;
                let (addr, server) = peer(ip, true, move |s| {
                    let piece = if dribble {
                        (response.len() / 13).max(3)
                    } else {
                        response.len()
                    };
                    for part in response.chunks(piece) {
                        if s.write_all(part).is_err() {
                            return;
                        }
                        if dribble {
                            // The attack itself: the response in pieces,
                            // so talk meets each fault mid-read.
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                    if !closes {
                        hold(s, Duration::from_secs(20));
                    }
                });
                let target = addr.to_string();
                // Bounds far apart, so a loaded machine cannot blur them:
                // talk ends within seconds, its timeout and the peer's
                // hold are 30 s and 20 s.
                let mut args = vec!["talk", "--timeout", "30", &target, "--http", "/"];
                match mode {
                    0 => {}
                    1 => args.extend(["-o", &file_arg]),
                    _ => args.push("--json"),
                }
                let case = format!(
                    "{} ({}{}, {}, mode {mode})",
                    attack.name,
                    if after_good {
                        "after a good chunk, "
                    } else {
                        ""
                    },
                    ip,
                    if dribble { "in pieces" } else { "whole" }
                );
                let run = talk(&args, Out::Keep(256 * 1024), Duration::from_secs(40));
                assert_eq!(run.code, Some(3), "{case}: {}", run.show());
                run.assert_one_clean_error(&case);
                assert!(
                    run.took < Duration::from_secs(8),
                    "{case}: talk waited for the server: {}",
                    run.show()
                );
                server.join().unwrap();
                runs += 1;
            }
        }
    }
    eprintln!("{runs} hostile chunked responses, each one clean error");
    let _ = std::fs::remove_file(file);
}

/// (2a) A greeting that never pauses: talk prints it as it arrives and
/// holds a bounded amount, whatever its size and shape.
#[test]
fn an_endless_greeting_is_streamed_in_bounded_memory() {
    // (address, bytes, pattern, then): 300 MB of every byte value, then
    // close; 120 MB of line ends, then stay open until talk leaves; 30 MB
    // for --json, whose pieces are capped too.
    let newlines: &'static [u8] = Box::leak(b"\r\n".repeat(PERIOD / 2 + 1).into_boxed_slice());
    let cases: [(IpAddr, u64, &'static [u8], bool, bool); 3] = [
        (V4, 300_000_000, binary_pattern(), true, false),
        (V6, 120_000_000, &newlines[..PERIOD], false, false),
        (V4, 30_000_000, binary_pattern(), true, true),
    ];
    let floor = floor_kib();
    eprintln!("the measure's floor (portctl --version): {floor} KiB");
    assert!(
        floor < PEAK_LIMIT_KIB / 2,
        "this test process is too big to measure talk: {floor} KiB"
    );
    for (ip, len, pattern, closes, json) in cases {
        let (addr, server) = peer(ip, false, move |s| {
            let mut out = BufWriter::with_capacity(256 * 1024, &mut *s);
            // Count what went out: talk may end the greeting at a pause
            // the scheduler makes, and then close.
            let mut counted = Counted(&mut out, 0);
            let sent = send_pattern(&mut counted, pattern, 0, len);
            let bytes = counted.1;
            let sent = sent.and_then(|_| out.flush());
            drop(out);
            if sent.is_ok() && !closes {
                hold(s, Duration::from_secs(8));
            }
            bytes
        });
        let target = addr.to_string();
        let mut args = vec!["talk", "--timeout", "5", &target];
        if json {
            args.push("--json");
        }
        let case = format!(
            "a {} MB greeting from {ip}{}",
            len / 1_000_000,
            if json { " (--json)" } else { "" }
        );
        let run = talk(&args, Out::Null, Duration::from_secs(20));
        run.assert_clean(&case);
        if !closes {
            assert_eq!(run.code, Some(0), "{case}: {}", run.show());
        }
        run.assert_peak_bounded(&case);
        let sent = server.join().unwrap().unwrap_or(0);
        eprintln!("{case}: {sent} bytes sent");
        // Most of it went through talk: tens of times its peak.
        assert!(sent >= len / 2, "{case}: only {sent} bytes sent");
    }
}

/// A writer that counts what it passed on.
struct Counted<W>(W, u64);

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// (2b) A download to a file: whole and exact, in bounded memory, by
/// length (300 MB, IPv4), chunked (100 MB in chunks of every awkward size,
/// IPv6), and until close (100 MB to stdout, IPv4).
#[test]
fn a_large_download_is_whole_in_bounded_memory() {
    // By length.
    let len = 300_000_000u64;
    let file = scratch_file("length");
    let (addr, server) = peer(V4, true, move |s| {
        let mut out = BufWriter::with_capacity(256 * 1024, &mut *s);
        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").unwrap();
        send_pattern(&mut out, binary_pattern(), 0, len)
            .and_then(|_| out.flush())
            .is_ok()
    });
    let run = talk(
        &[
            "talk",
            &addr.to_string(),
            "--http",
            "/big",
            "-o",
            file.to_str().unwrap(),
        ],
        Out::Keep(64 * 1024),
        Duration::from_secs(30),
    );
    let case = "300 MB by Content-Length to a file";
    assert_eq!(run.code, Some(0), "{case}: {}", run.show());
    assert!(
        run.stdout.starts_with(b"HTTP/1.1 200 OK\n"),
        "{}",
        run.show()
    );
    run.assert_peak_bounded(case);
    assert_eq!(server.join().unwrap(), Some(true));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len);
    check_pattern(File::open(&file).unwrap(), binary_pattern(), len).unwrap();
    std::fs::remove_file(&file).unwrap();

    // Chunked, in chunks of awkward sizes, sizes spelled every legal way.
    let len = 100_000_000u64;
    let file = scratch_file("chunked");
    let (addr, server) = peer(V6, true, move |s| {
        let sizes = [
            1u64, 2, 17, 4095, 4096, 65_535, 65_536, 65_537, 999_983, 3_333_333,
        ];
        let mut out = BufWriter::with_capacity(256 * 1024, &mut *s);
        let sent = (|| -> std::io::Result<()> {
            out.write_all(CHUNKED_HEAD)?;
            let mut done = 0u64;
            for (i, size) in sizes.iter().cycle().enumerate() {
                if done == len {
                    break;
                }
                let size = (*size).min(len - done);
                match i % 4 {
                    0 => write!(out, "{size:x}\r\n")?,
                    1 => write!(out, "{size:X};name=value\r\n")?,
                    2 => writeln!(out, "000{size:x}")?,
                    _ => write!(out, "{size:x} ;a;b=\"c\"\r\n")?,
                }
                send_pattern(&mut out, binary_pattern(), done, size)?;
                out.write_all(b"\r\n")?;
                done += size;
            }
            out.write_all(b"0\r\nX-Trailer: yes\r\n\r\n")?;
            out.flush()
        })();
        drop(out);
        // Talk must not need the close: hold until it leaves.
        sent.is_ok() && hold(s, Duration::from_secs(8))
    });
    let run = talk(
        &[
            "talk",
            &addr.to_string(),
            "--http",
            "/chunked",
            "-o",
            file.to_str().unwrap(),
        ],
        Out::Keep(64 * 1024),
        Duration::from_secs(30),
    );
    let case = "100 MB chunked to a file";
    assert_eq!(run.code, Some(0), "{case}: {}", run.show());
    run.assert_peak_bounded(case);
    assert_eq!(server.join().unwrap(), Some(true), "talk did not close");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len);
    check_pattern(File::open(&file).unwrap(), binary_pattern(), len).unwrap();
    std::fs::remove_file(&file).unwrap();

    // Until close, to stdout (a pipe read back here, not kept).
    let len = 100_000_000u64;
    let (addr, server) = peer(V4, true, move |s| {
        let mut out = BufWriter::with_capacity(256 * 1024, &mut *s);
        out.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        send_pattern(&mut out, binary_pattern(), 0, len)
            .and_then(|_| out.flush())
            .is_ok()
    });
    let mut child = portctl()
        .args(["talk", &addr.to_string(), "--http", "/close"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checker = {
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || check_pattern(stdout, binary_pattern(), len))
    };
    let (code, peak_kib) = wait_peak_rss(child, Duration::from_secs(30));
    let case = "100 MB until close to stdout";
    assert_eq!(code, Some(0), "{case}");
    eprintln!("{case}: talk peak RSS {peak_kib} KiB");
    assert!(peak_kib < PEAK_LIMIT_KIB, "{case}: peak {peak_kib} KiB");
    checker.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap(), Some(true));
}

/// (2c) `--http --json` without `-o`: the object carries the first MiB of
/// the body and says how long it was; memory stays bounded.
#[test]
fn a_large_json_body_is_counted_and_cut() {
    for (ip, len, chunked) in [(V4, 50_000_000u64, false), (V6, 20_000_000u64, true)] {
        let (addr, server) = peer(ip, true, move |s| {
            let mut out = BufWriter::with_capacity(256 * 1024, &mut *s);
            let sent = (|| -> std::io::Result<()> {
                if chunked {
                    out.write_all(CHUNKED_HEAD)?;
                    let mut done = 0;
                    while done < len {
                        let size = (len - done).min(700_001);
                        write!(out, "{size:x}\r\n")?;
                        send_pattern(&mut out, text_pattern(), done, size)?;
                        out.write_all(b"\r\n")?;
                        done += size;
                    }
                    out.write_all(b"0\r\n\r\n")?;
                } else {
                    write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")?;
                    send_pattern(&mut out, text_pattern(), 0, len)?;
                }
                out.flush()
            })();
            sent.is_ok()
        });
        let target = addr.to_string();
        let run = talk(
            &["talk", &target, "--http", "/", "--json"],
            Out::Keep(4 * MIB as usize),
            Duration::from_secs(20),
        );
        let case = format!("a {} MB body as JSON from {ip}", len / 1_000_000);
        assert_eq!(run.code, Some(0), "{case}: {}", run.show());
        run.assert_peak_bounded(&case);
        assert_eq!(server.join().unwrap(), Some(true));
        let v: serde_json::Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", run.show()));
        assert_eq!(v["status"], 200, "{case}");
        assert_eq!(v["body_bytes"].as_u64(), Some(len), "{case}");
        assert_eq!(v["body_truncated"], true, "{case}");
        let body = v["body"].as_str().expect("a body field");
        assert_eq!(body.len() as u64, MIB, "{case}: the body field holds 1 MiB");
        check_pattern(body.as_bytes(), text_pattern(), MIB).unwrap();
    }
}

/// (2d) A complete response on a connection the server keeps open: talk
/// ends when the framing says so, not at its timeout or the server's close.
#[test]
fn a_complete_response_ends_without_the_close() {
    let cases: [(IpAddr, &str, &[u8], &[u8]); 4] = [
        (
            V4,
            "Content-Length: 5, one write",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"",
        ),
        (
            V6,
            "Content-Length: 5, body written later",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"hello",
        ),
        (
            V4,
            "Content-Length: 5, more bytes after the body",
            b"HTTP/1.1 200 OK\r\ncontent-length:5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\nEXTRA",
            b"",
        ),
        (
            V6,
            "chunked, last chunk then trailers",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\nX: 1\r\n\r\n",
            b"",
        ),
    ];
    for (ip, case, first, later) in cases {
        let (addr, server) = peer(ip, true, move |s| {
            s.write_all(first).unwrap();
            if !later.is_empty() {
                // The case itself: the body comes in a later write, which
                // talk must wait for although the head is complete.
                std::thread::sleep(Duration::from_millis(200));
                s.write_all(later).unwrap();
            }
            // Up to 20 s: true when talk closed first.
            hold(s, Duration::from_secs(20))
        });
        let target = addr.to_string();
        let run = talk(
            &["talk", "--timeout", "30", &target, "--http", "/"],
            Out::Keep(64 * 1024),
            Duration::from_secs(40),
        );
        assert_eq!(run.code, Some(0), "{case}: {}", run.show());
        assert_eq!(run.stdout, b"hello", "{case}: {}", run.show());
        assert!(
            run.took < Duration::from_secs(8),
            "{case}: talk waited {:?} for a response that was over",
            run.took
        );
        assert!(
            run.stderr.starts_with("HTTP/1.1 200 OK\n"),
            "{}",
            run.show()
        );
        assert_eq!(server.join().unwrap(), Some(true), "{case}: talk held on");
    }
}

/// (3) `talk --udp` with stdin: each line goes out as it is read, its reply
/// printed while stdin is still open.
#[test]
fn udp_sends_each_line_as_it_is_read() {
    let lines: [&[&str]; 2] = [&["Bob", "Alice"], &["x\r", &"y".repeat(1000)]];
    for (bind, lines) in [("127.0.0.1", lines[0]), ("::1", lines[1])] {
        let server = Server::start(&["hello", "--udp", "--bind", bind, "--port", "0"], 1);
        let target = SocketAddr::new(bind.parse().unwrap(), server.port).to_string();
        let mut child = portctl()
            .args(["talk", "--udp", "--timeout", "5", &target])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = {
            let stdout = BufReader::new(child.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in stdout.lines().take(16) {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        };
        let mut stdin = child.stdin.take().unwrap();
        for line in lines {
            stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
            let reply = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("no reply to {line:?} on {bind} while stdin was open")
                });
            let sent = line.trim_end_matches('\r');
            assert_eq!(reply, format!("Hello, {sent}!"), "{bind}");
        }
        drop(stdin);
        let code = wait_timeout(&mut child, Duration::from_secs(5));
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        assert_eq!(code, Some(0), "{bind}: {err}");
        reader.join().unwrap();
        assert!(rx.try_recv().is_err(), "{bind}: an extra reply");
    }
}

/// A hello-speaking peer that records every line it gets, and keeps
/// reading after `exit` until talk closes.
fn recording_hello(ip: IpAddr) -> (SocketAddr, JoinHandle<Option<Vec<String>>>) {
    peer(ip, false, |s| {
        s.write_all(b"welcome!\n").unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut lines = Vec::new();
        while lines.len() < 16 {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = line.trim_end().to_string();
            if line != "exit" {
                let _ = s.write_all(format!("hello,{line}!\n").as_bytes());
            }
            lines.push(line);
        }
        lines
    })
}

/// (4) `exit` ends a session cleanly: exit 0, the replies before it, and
/// nothing sent after it.
#[test]
fn exit_ends_the_session() {
    for bind in ["127.0.0.1", "::1"] {
        let server = Server::start(&["hello", "--bind", bind, "--port", "0", "-q"], 1);
        let target = SocketAddr::new(bind.parse().unwrap(), server.port).to_string();
        let run = talk(
            &["talk", "--timeout", "3", &target, "hi", "exit"],
            Out::Keep(4096),
            Duration::from_secs(10),
        );
        assert_eq!(run.code, Some(0), "{bind}: {}", run.show());
        assert_eq!(run.stdout, b"welcome!\nhello,hi!\n", "{}", run.show());
        assert!(run.stderr.is_empty(), "{}", run.show());

        let mut child = portctl()
            .args(["talk", "--timeout", "3", &target])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hi\nexit\nnever\n")
            .unwrap();
        let stdout = drain(child.stdout.take().unwrap(), 4096);
        let stderr = drain(child.stderr.take().unwrap(), 4096);
        let code = wait_timeout(&mut child, Duration::from_secs(10));
        let (out, _) = stdout.join().unwrap();
        let (err, _) = stderr.join().unwrap();
        let err = String::from_utf8_lossy(&err);
        assert_eq!(code, Some(0), "{bind} (stdin): {err}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "welcome!\nhello,hi!\n",
            "{bind} (stdin): {err}"
        );
    }
    // What goes on the wire: nothing after `exit`, from messages or stdin.
    for (ip, via_stdin) in [(V4, false), (V6, true), (V4, true)] {
        let (addr, peer) = recording_hello(ip);
        let target = addr.to_string();
        let mut cmd = portctl();
        cmd.args(["talk", "--timeout", "3", &target]);
        if !via_stdin {
            cmd.args(["hi", "exit", "never"]);
        }
        let mut child = cmd
            .stdin(if via_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"hi\nexit\nnever\n").unwrap();
        }
        let stdout = drain(child.stdout.take().unwrap(), 4096);
        let code = wait_timeout(&mut child, Duration::from_secs(10));
        let (out, _) = stdout.join().unwrap();
        let case = format!("{ip}, {}", if via_stdin { "stdin" } else { "messages" });
        assert_eq!(code, Some(0), "{case}");
        assert_eq!(out, b"welcome!\nhello,hi!\n", "{case}");
        assert_eq!(
            peer.join().unwrap(),
            Some(vec!["hi".to_string(), "exit".to_string()]),
            "{case}: what the server got"
        );
    }
}
