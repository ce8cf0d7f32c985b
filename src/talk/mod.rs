//! `portctl talk`: the client side — a line client for hello/echo-style
//! servers, datagrams with `--udp`, and a raw HTTP/1.1 GET with `--http`.

mod http;

use crate::cli::TalkArgs;
use crate::exit::{Error, Exit, Result};
use crate::output::{sanitize_bytes, JsonArray, Output};
use crate::parse::{parse_host_port, Host};
use serde::{Deserialize, Serialize};
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long to wait for a greeting the server may never send.
const GREETING_WAIT: Duration = Duration::from_millis(300);
/// Once a reply has started, the pause that ends it.
const REPLY_QUIET: Duration = Duration::from_millis(40);

/// One thing the server said, as `talk --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// `greeting` or `reply`.
    pub kind: String,
    /// The message this answers; `null` for a greeting.
    pub sent: Option<String>,
    /// What came back (invalid UTF-8 replaced).
    pub data: String,
}

/// Where replies go: raw bytes to a pipe, escaped text to a terminal,
/// objects in a JSON array.
struct Printer {
    json: Option<JsonArray<io::Stdout>>,
    terminal: bool,
}

impl Printer {
    fn new(output: Output) -> Self {
        Printer {
            json: output.is_json().then(|| JsonArray::new(io::stdout())),
            terminal: io::stdout().is_terminal(),
        }
    }

    fn print(&mut self, kind: &str, sent: Option<&[u8]>, data: &[u8]) -> io::Result<()> {
        let data = data.strip_suffix(b"\n").unwrap_or(data);
        let data = data.strip_suffix(b"\r").unwrap_or(data);
        if let Some(json) = &mut self.json {
            return json.push(&Exchange {
                kind: kind.to_string(),
                sent: sent.map(|s| String::from_utf8_lossy(s).into_owned()),
                data: String::from_utf8_lossy(data).into_owned(),
            });
        }
        let mut out = io::stdout().lock();
        if self.terminal {
            writeln!(out, "{}", sanitize_bytes(data))?;
        } else {
            out.write_all(data)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn finish(self) -> io::Result<()> {
        match self.json {
            Some(json) => json.finish(),
            None => Ok(()),
        }
    }
}

pub fn run(args: &TalkArgs, output: Output) -> Result<Exit> {
    let (host, port) = parse_host_port(&args.target).map_err(|e| Error::usage(e.to_string()))?;
    crate::runtime(false)?.block_on(async {
        let addrs = resolve(&host, port, args.timeout).await?;
        if let Some(path) = &args.http {
            return http::run(&host, port, &addrs, path, args, output).await;
        }
        if args.udp {
            talk_udp(&addrs, args, output).await
        } else {
            talk_tcp(&addrs, args, output).await
        }
    })
}

/// An IP as given, or a name through the system resolver; a name that
/// does not resolve is an operational failure (exit 3).
pub(crate) async fn resolve(host: &Host, port: u16, wait: Duration) -> Result<Vec<SocketAddr>> {
    match host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => {
            let found = timeout(wait, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| {
                    Error::failure(format!("cannot resolve '{name}': no answer in {wait:?}"))
                })?
                .map_err(|e| Error::failure(format!("cannot resolve '{name}': {e}")))?;
            let addrs: Vec<SocketAddr> = found.collect();
            if addrs.is_empty() {
                return Err(Error::failure(format!(
                    "cannot resolve '{name}': no addresses"
                )));
            }
            Ok(addrs)
        }
    }
}

/// Connects to the first address that answers. A refusal is reported at
/// once; silence after `wait`.
pub(crate) async fn connect(addrs: &[SocketAddr], wait: Duration) -> Result<TcpStream> {
    let mut last = String::new();
    for addr in addrs {
        match timeout(wait, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => {
                last = format!(
                    "cannot connect to {addr}: no answer in {:.1}s",
                    wait.as_secs_f64()
                )
            }
        }
    }
    Err(Error::failure(last))
}

/// Reads one reply: waits up to `first` for it to start, then takes what
/// follows until a pause. `None` when the peer closed without a word.
async fn read_reply(stream: &mut TcpStream, first: Duration) -> io::Result<Option<Vec<u8>>> {
    let mut reply = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut wait = first;
    loop {
        match timeout(wait, stream.read(&mut chunk)).await {
            Err(_) if reply.is_empty() => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply"))
            }
            Err(_) => return Ok(Some(reply)),
            Ok(Ok(0)) => return Ok((!reply.is_empty()).then_some(reply)),
            Ok(Ok(n)) => {
                reply.extend_from_slice(&chunk[..n]);
                wait = REPLY_QUIET;
            }
            Ok(Err(e)) => return Err(e),
        }
    }
}

async fn talk_tcp(addrs: &[SocketAddr], args: &TalkArgs, output: Output) -> Result<Exit> {
    let mut stream = connect(addrs, args.timeout).await?;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut printer = Printer::new(output);
    match read_reply(&mut stream, GREETING_WAIT.min(args.timeout)).await {
        Ok(Some(greeting)) => printer.print("greeting", None, &greeting)?,
        Ok(None) => return Err(Error::failure(format!("{peer} closed the connection"))),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        Err(e) => return Err(Error::failure(format!("{peer}: {e}"))),
    }
    if args.messages.is_empty() {
        let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
        while let Some(mut line) = lines
            .next_segment()
            .await
            .map_err(|e| Error::failure(format!("cannot read stdin: {e}")))?
        {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let reply = exchange(&mut stream, &line, args.timeout, &peer).await?;
            printer.print("reply", Some(&line), &reply)?;
        }
    } else {
        for message in &args.messages {
            let reply = exchange(&mut stream, message.as_bytes(), args.timeout, &peer).await?;
            printer.print("reply", Some(message.as_bytes()), &reply)?;
        }
    }
    // Say goodbye the way the hello protocol expects, then close.
    let _ = stream.write_all(b"exit\n").await;
    let _ = stream.shutdown().await;
    printer.finish()?;
    Ok(Exit::Ok)
}

/// Sends one message as a line and reads its reply.
async fn exchange(
    stream: &mut TcpStream,
    message: &[u8],
    wait: Duration,
    peer: &str,
) -> Result<Vec<u8>> {
    let mut line = Vec::with_capacity(message.len() + 1);
    line.extend_from_slice(message);
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| Error::failure(format!("cannot send to {peer}: {e}")))?;
    match read_reply(stream, wait).await {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(Error::failure(format!("{peer} closed the connection"))),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(Error::failure(format!(
            "no reply from {peer} in {:.1}s",
            wait.as_secs_f64()
        ))),
        Err(e) => Err(Error::failure(format!("{peer}: {e}"))),
    }
}

async fn talk_udp(addrs: &[SocketAddr], args: &TalkArgs, output: Output) -> Result<Exit> {
    let addr = addrs[0];
    let local: SocketAddr = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|_| Error::failure("bad local address"))?;
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| Error::failure(format!("cannot bind UDP: {e}")))?;
    // Connected, so an ICMP refusal comes back as an error at once.
    socket
        .connect(addr)
        .await
        .map_err(|e| Error::failure(format!("cannot reach {addr}: {e}")))?;
    let mut printer = Printer::new(output);
    let mut messages: Vec<Vec<u8>> = args
        .messages
        .iter()
        .map(|m| m.as_bytes().to_vec())
        .collect();
    if messages.is_empty() {
        let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
        while let Some(line) = lines
            .next_segment()
            .await
            .map_err(|e| Error::failure(format!("cannot read stdin: {e}")))?
        {
            messages.push(line);
        }
    }
    let mut buffer = vec![0u8; 65_536];
    for message in messages {
        socket
            .send(&message)
            .await
            .map_err(|e| Error::failure(format!("cannot send to {addr}: {e}")))?;
        let len = match timeout(args.timeout, socket.recv(&mut buffer)).await {
            Ok(Ok(len)) => len,
            Ok(Err(e)) => return Err(Error::failure(format!("{addr}: {e}"))),
            Err(_) => {
                return Err(Error::failure(format!(
                    "no reply from {addr} in {:.1}s",
                    args.timeout.as_secs_f64()
                )))
            }
        };
        printer.print("reply", Some(&message), &buffer[..len])?;
    }
    printer.finish()?;
    Ok(Exit::Ok)
}
