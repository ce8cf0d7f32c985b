//! `portctl talk`: the client side — a line client for hello/echo-style
//! servers, datagrams with `--udp`, and a raw HTTP/1.1 GET with `--http`.
//! Replies are printed as they arrive: nothing a server sends is held
//! beyond a fixed amount, however long it keeps sending.

mod http;
mod print;

use crate::cli::TalkArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::hello_protocol::EXIT;
use crate::facts::resolve::resolve;
use crate::output::{self, Output};
use crate::parse::parse_host_port;
use print::{ExchangeKind, Printer};
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long to wait for a greeting the server may never send.
const GREETING_WAIT: Duration = Duration::from_millis(300);
/// Once a reply has started, the pause that ends it.
const REPLY_QUIET: Duration = Duration::from_millis(40);
/// The longest line read from stdin; a longer one is sent in pieces.
const MAX_INPUT_LINE: usize = 64 * 1024;

pub fn run(args: &TalkArgs, output: Output) -> Result<Exit> {
    let (host, port) = parse_host_port(&args.target).map_err(|e| Error::usage(e.to_string()))?;
    crate::runtime::build(false)
        .map_err(crate::exit::Error::runtime)?
        .block_on(async {
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

/// Connects to the first address that answers. A refusal is reported at
/// once; silence after `wait`.
async fn connect(addrs: &[SocketAddr], wait: Duration) -> Result<TcpStream> {
    let mut last = String::from("no address to connect to");
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

/// How a reply ended.
#[derive(Debug, PartialEq, Eq)]
enum ReplyEnd {
    /// The server paused after sending something.
    Quiet,
    /// Nothing came in time.
    Silent,
    /// The server closed (after `bytes` bytes of this reply).
    Closed { bytes: u64 },
}

/// Reads one reply: waits up to `first` for it to start, then takes what
/// follows until a pause — or until `limit` in all, so a server that never
/// pauses cannot hold the session — handing each read to `printer` as it
/// arrives. An error printing is the reader's (a closed stdout ends the
/// run quietly); an error reading is the peer's.
async fn read_reply(
    stream: &mut TcpStream,
    first: Duration,
    limit: Duration,
    peer: &str,
    printer: &mut Printer<io::Stdout>,
) -> Result<ReplyEnd> {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut wait = first;
    let mut bytes = 0u64;
    let deadline = tokio::time::Instant::now() + limit.max(first);
    loop {
        let wait_until = (tokio::time::Instant::now() + wait).min(deadline);
        match tokio::time::timeout_at(wait_until, stream.read(&mut chunk)).await {
            Err(_) if bytes == 0 => return Ok(ReplyEnd::Silent),
            Err(_) => return Ok(ReplyEnd::Quiet),
            Ok(Ok(0)) => return Ok(ReplyEnd::Closed { bytes }),
            Ok(Ok(n)) => {
                printer.piece(&chunk[..n]).map_err(Error::Output)?;
                bytes = bytes.saturating_add(n as u64);
                wait = REPLY_QUIET;
            }
            Ok(Err(e)) => return Err(Error::failure(format!("{peer}: {e}"))),
        }
    }
}

async fn talk_tcp(addrs: &[SocketAddr], args: &TalkArgs, output: Output) -> Result<Exit> {
    let mut stream = connect(addrs, args.timeout).await?;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut printer = Printer::new(io::stdout(), output, io::stdout().is_terminal());
    let result = session(&mut stream, &peer, args, &mut printer).await;
    // Say goodbye the way the hello protocol expects, then close.
    if matches!(result, Ok(Said::Messages)) {
        let _ = stream.write_all(&[EXIT, b"\n"].concat()).await;
    }
    let _ = stream.shutdown().await;
    // A JSON array is closed whatever happened, so what was printed parses.
    let finished = printer.finish();
    result?;
    output::deliver(Exit::Ok, finished)
}

/// How a session ended.
enum Said {
    /// Every message, and the server is still there.
    Messages,
    /// `exit` was among them: the server closes.
    Exit,
    /// The server closed after its greeting, with nothing to send.
    GreetingOnly,
}

async fn session(
    stream: &mut TcpStream,
    peer: &str,
    args: &TalkArgs,
    printer: &mut Printer<io::Stdout>,
) -> Result<Said> {
    printer.begin(ExchangeKind::Greeting, None);
    let greeting = read_reply(
        stream,
        GREETING_WAIT.min(args.timeout),
        args.timeout,
        peer,
        printer,
    )
    .await?;
    printer.end().map_err(Error::Output)?;
    if let ReplyEnd::Closed { bytes } = greeting {
        if bytes > 0 && args.messages.is_empty() {
            return Ok(Said::GreetingOnly);
        }
        return Err(Error::failure(format!("{peer} closed the connection")));
    }
    if args.messages.is_empty() {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        while read_line(&mut stdin, &mut line, MAX_INPUT_LINE).await? {
            if exchange(stream, &line, args.timeout, peer, printer).await? {
                return Ok(Said::Exit);
            }
        }
    } else {
        for message in &args.messages {
            if exchange(stream, message.as_bytes(), args.timeout, peer, printer).await? {
                return Ok(Said::Exit);
            }
        }
    }
    Ok(Said::Messages)
}

/// Reads one line of stdin into `line`, at most `max` bytes of it (a
/// longer line is sent in pieces); its line end is dropped, a piece's
/// bytes are kept as they are. False at the end of input.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> Result<bool> {
    line.clear();
    let mut limited = input.take(max as u64);
    let n = limited
        .read_until(b'\n', line)
        .await
        .map_err(|e| Error::failure(format!("cannot read stdin: {e}")))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(n > 0)
}

/// Sends one message as a line and prints its reply; true when the
/// message was `exit`, which the server answers by closing.
async fn exchange(
    stream: &mut TcpStream,
    message: &[u8],
    wait: Duration,
    peer: &str,
    printer: &mut Printer<io::Stdout>,
) -> Result<bool> {
    stream
        .write_all(&[message, b"\n"].concat())
        .await
        .map_err(|e| Error::failure(format!("cannot send to {peer}: {e}")))?;
    if message == EXIT {
        return Ok(true);
    }
    printer.begin(ExchangeKind::Reply, Some(message));
    let end = read_reply(stream, wait, wait, peer, printer).await?;
    printer.end().map_err(Error::Output)?;
    match end {
        ReplyEnd::Quiet | ReplyEnd::Closed { bytes: 1.. } => Ok(false),
        ReplyEnd::Closed { bytes: 0 } => {
            Err(Error::failure(format!("{peer} closed the connection")))
        }
        ReplyEnd::Silent => Err(Error::failure(format!(
            "no reply from {peer} in {:.1}s",
            wait.as_secs_f64()
        ))),
    }
}

/// Datagrams, one message at a time: each is sent as soon as it is read,
/// so `talk --udp` works interactively.
async fn talk_udp(addrs: &[SocketAddr], args: &TalkArgs, output: Output) -> Result<Exit> {
    let mut printer = Printer::new(io::stdout(), output, io::stdout().is_terminal());
    let result = datagrams(addrs, &args.messages, args.timeout, &mut printer).await;
    let finished = printer.finish();
    result?;
    output::deliver(Exit::Ok, finished)
}

/// A UDP socket connected to the next of `addrs` that takes one:
/// connected, so an ICMP refusal comes back as an error at once.
async fn next_peer(
    addrs: &mut std::slice::Iter<'_, SocketAddr>,
) -> Result<(SocketAddr, UdpSocket)> {
    let mut last = Error::failure("no address to send to");
    for &addr in addrs {
        let local: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(e) => {
                last = Error::failure(format!("cannot bind UDP for {addr}: {e}"));
                continue;
            }
        };
        match socket.connect(addr).await {
            Ok(()) => return Ok((addr, socket)),
            Err(e) => last = Error::failure(format!("cannot reach {addr}: {e}")),
        }
    }
    Err(last)
}

/// The largest UDP payload over IPv4: a longer stdin line goes in pieces.
const MAX_DATAGRAM: usize = 65_507;

/// Sends each message as a datagram as soon as it is read and prints
/// what comes back: the first reply, and any that follow it before a
/// pause, as replies to that message. A name's addresses are tried in
/// turn while each refuses the first message (`localhost` as ::1 with
/// the server on 127.0.0.1 only), as TCP's connect does; once one has
/// answered, talk stays with it.
async fn datagrams<W: io::Write>(
    addrs: &[SocketAddr],
    messages: &[String],
    wait: Duration,
    printer: &mut Printer<W>,
) -> Result<()> {
    let mut candidates = addrs.iter();
    let (mut addr, mut socket) = next_peer(&mut candidates).await?;
    let mut settled = false;
    let mut buffer = vec![0u8; 65_536];
    let mut given = messages.iter();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        let message: &[u8] = if messages.is_empty() {
            if !read_line(&mut stdin, &mut line, MAX_DATAGRAM).await? {
                return Ok(());
            }
            &line
        } else {
            match given.next() {
                Some(m) => m.as_bytes(),
                None => return Ok(()),
            }
        };
        loop {
            match datagram(&socket, addr, message, wait, &mut buffer, printer).await {
                Ok(()) => break,
                Err(Failed::Refused(refused)) if !settled => match next_peer(&mut candidates).await
                {
                    // The next address gets this same message.
                    Ok(next) => (addr, socket) = next,
                    Err(_) => return Err(refused),
                },
                Err(Failed::Refused(e) | Failed::Other(e)) => return Err(e),
            }
        }
        settled = true;
    }
}

/// Why one exchange failed: a refusal may send talk to the next address.
enum Failed {
    Refused(Error),
    Other(Error),
}

/// One datagram out, and its replies printed.
async fn datagram<W: io::Write>(
    socket: &UdpSocket,
    addr: SocketAddr,
    message: &[u8],
    first: Duration,
    buffer: &mut [u8],
    printer: &mut Printer<W>,
) -> std::result::Result<(), Failed> {
    let failed = |e: io::Error| {
        let error = Error::failure(format!("{addr}: {e}"));
        // Windows reports a UDP port unreachable as a reset.
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
        ) {
            Failed::Refused(error)
        } else {
            Failed::Other(error)
        }
    };
    socket.send(message).await.map_err(failed)?;
    let mut wait = first;
    let mut replies = 0;
    loop {
        let len = match timeout(wait, socket.recv(buffer)).await {
            Ok(Ok(len)) => len,
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) if replies > 0 => return Ok(()),
            Err(_) => {
                return Err(Failed::Other(Error::failure(format!(
                    "no reply from {addr} in {:.1}s",
                    first.as_secs_f64()
                ))))
            }
        };
        printer.begin(ExchangeKind::Reply, Some(message));
        printer
            .piece(&buffer[..len])
            .and_then(|()| printer.end())
            .map_err(|e| Failed::Other(Error::Output(e)))?;
        replies += 1;
        wait = REPLY_QUIET;
    }
}

// Wine never reports a UDP port unreachable (Windows reports it as a
// reset): these run where the refusal can be seen.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    /// One answer to one datagram, from a server on 127.0.0.1.
    fn udp_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let at = server.local_addr().unwrap();
        let answer = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            if let Ok((len, peer)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&[b"re:", &buf[..len]].concat(), peer);
            }
        });
        (at, answer)
    }

    /// A loopback port nothing listens on: ICMP refuses datagrams to it.
    fn refused() -> SocketAddr {
        let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.local_addr().unwrap()
    }

    fn talk(addrs: &[SocketAddr]) -> (Result<()>, String) {
        let mut out = Vec::new();
        let output = Output {
            format: Format::Plain,
            color: false,
        };
        let mut printer = Printer::new(&mut out, output, false);
        let runtime = crate::runtime::build(false).unwrap();
        let messages = ["hi".to_string()];
        let result = runtime.block_on(datagrams(
            addrs,
            &messages,
            Duration::from_secs(5),
            &mut printer,
        ));
        drop(printer);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    #[ignore = "needs a system that reports a UDP port unreachable to the sender (Linux does, Wine does not)"]
    fn a_refusing_address_hands_the_message_to_the_next() {
        let (at, answer) = udp_server();
        let (result, out) = talk(&[refused(), at]);
        answer.join().unwrap();
        assert!(result.is_ok(), "{:?}", result.err().map(|e| e.to_string()));
        assert_eq!(out, "re:hi\n");
    }

    #[test]
    #[ignore = "needs a system that reports a UDP port unreachable to the sender (Linux does, Wine does not)"]
    fn when_every_address_refuses_the_refusal_is_the_answer() {
        let (result, out) = talk(&[refused(), refused()]);
        let message = result.expect_err("refused").to_string();
        assert!(message.contains("refused"), "{message}");
        assert!(out.is_empty(), "{out}");
    }
}
