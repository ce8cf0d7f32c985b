//! `talk --http`: one raw HTTP/1.1 GET, as the tutorial does it by hand —
//! the status line and headers shown, the body written byte for byte as it
//! arrives (to a file with `-o`), and the response over when its length
//! says so, whether or not the server closes.

use super::connect;
use crate::cli::TalkArgs;
use crate::exit::{Error, Exit, Result};
use crate::facts::http::{read_response_head, BodyDecoder, ResponseHead};
use crate::output::{self, incomplete_utf8_tail, sanitize, sanitize_bytes_lines, Output};
use crate::parse::Host;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The most of a body `--json` carries in its `body` field.
const JSON_BODY: usize = 1024 * 1024;
/// Interim (1xx) heads skipped before the final one, at most.
const MAX_INTERIM: usize = 8;

/// The response as `talk --http --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body_bytes: u64,
    /// The body as text when it went nowhere else (no `-o`); at most
    /// 1 MiB of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body was longer than `body` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

pub async fn run(
    host: &Host,
    port: u16,
    addrs: &[SocketAddr],
    path: &str,
    args: &TalkArgs,
    output: Output,
) -> Result<Exit> {
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(Error::usage(format!(
            "invalid path '{}': a path starts with / and has no spaces or control characters",
            sanitize(path)
        )));
    }
    let mut stream = connect(addrs, args.timeout).await?;
    send_request(&mut stream, host, port, path).await?;
    let mut chunk = vec![0u8; 64 * 1024];
    let (head, rest) = read_head(&mut stream, &mut chunk, args).await?;
    let mut decoder = BodyDecoder::new(head.framing().map_err(|e| Error::failure(e.0))?);
    let mut body = Body::open(args, output, &head)?;
    decoder
        .feed(&rest, &mut |bytes| body.write(bytes))
        .map_err(|e| Error::failure(e.0))?;
    drop(rest);
    let answer = if head.status >= 400 {
        Exit::Negative
    } else {
        Exit::Ok
    };
    while !decoder.is_done() {
        match timeout(args.timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                decoder.finish().map_err(|e| Error::failure(e.0))?;
                break;
            }
            Ok(Ok(n)) => decoder
                .feed(&chunk[..n], &mut |bytes| body.write(bytes))
                .map_err(|e| Error::failure(e.0))?,
            Ok(Err(e)) => return Err(Error::failure(format!("reading the response: {e}"))),
            Err(_) => {
                return Err(Error::failure(format!(
                    "the response stalled: nothing for {:.1}s",
                    args.timeout.as_secs_f64()
                )))
            }
        }
        if let Some(e) = body.error.take() {
            // A full disk stops the download; a closed stdout ends it quietly.
            return output::deliver(answer, Err(e));
        }
    }
    output::deliver(answer, body.finish(&head))
}

async fn send_request(stream: &mut TcpStream, host: &Host, port: u16, path: &str) -> Result<()> {
    let host_header = match (host, port) {
        (_, 80) => host.to_string(),
        _ => format!("{host}:{port}"),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: portctl/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| Error::failure(format!("cannot send the request: {e}")))
}

/// Reads up to the final response head (interim 1xx heads skipped); returns
/// it and the bytes read past it.
async fn read_head(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    args: &TalkArgs,
) -> Result<(ResponseHead, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut interim = 0;
    // The whole head within --timeout: a server that trickles headers
    // cannot hold the client for hours.
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        if let Some(head) = read_response_head(&buffer).map_err(|e| Error::failure(e.0))? {
            let rest = buffer.split_off(head.len);
            match head.status {
                101 => {
                    return Err(Error::failure(
                        "the server switched protocols (101); talk --http speaks HTTP/1.1 only",
                    ))
                }
                100..=199 if interim < MAX_INTERIM => {
                    interim += 1;
                    buffer = rest;
                    continue;
                }
                100..=199 => {
                    return Err(Error::failure(format!(
                        "no final response after {MAX_INTERIM} interim (1xx) responses"
                    )))
                }
                _ => return Ok((head, rest)),
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(chunk)).await {
            Ok(Ok(0)) => {
                return Err(Error::failure(
                    "the server closed before a full response head",
                ))
            }
            Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(Error::failure(format!("reading the response: {e}"))),
            Err(_) => {
                return Err(Error::failure(format!(
                    "no complete response head in {:.1}s",
                    args.timeout.as_secs_f64()
                )))
            }
        }
    }
}

/// The status line and headers as text, each field escaped.
fn head_text(head: &ResponseHead) -> String {
    let mut text = format!("HTTP/1.1 {} {}\n", head.status, sanitize(&head.reason));
    for (name, value) in &head.headers {
        text.push_str(&format!("{}: {}\n", sanitize(name), sanitize(value)));
    }
    text
}

/// Where the body goes, written as it is decoded.
struct Body {
    sink: Sink,
    json: bool,
    bytes: u64,
    /// The first write error; reported after the decoder returns.
    error: Option<io::Error>,
}

enum Sink {
    File(BufWriter<File>),
    /// Raw bytes to a pipe, or escaped text to a terminal (holding back
    /// half a character until the rest arrives).
    Stdout {
        terminal: bool,
        held: Vec<u8>,
    },
    /// Kept for the JSON object, up to [`JSON_BODY`].
    Json {
        kept: Vec<u8>,
    },
}

impl Body {
    /// Opens the destination and, in text mode, prints the head: on stdout
    /// when the body goes to a file, else on stderr so the body stays
    /// byte-exact for a pipe.
    fn open(args: &TalkArgs, output: Output, head: &ResponseHead) -> Result<Body> {
        let sink =
            match &args.output_file {
                Some(file) => Sink::File(BufWriter::new(File::create(file).map_err(|e| {
                    Error::failure(format!("cannot write {}: {e}", file.display()))
                })?)),
                None if output.is_json() => Sink::Json { kept: Vec::new() },
                None => Sink::Stdout {
                    terminal: io::stdout().is_terminal(),
                    held: Vec::new(),
                },
            };
        if !output.is_json() {
            let text = head_text(head);
            if matches!(sink, Sink::File(_)) {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(Error::Output)?;
            } else {
                let _ = io::stderr().write_all(text.as_bytes());
            }
        }
        Ok(Body {
            sink,
            json: output.is_json(),
            bytes: 0,
            error: None,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        if self.error.is_some() {
            return;
        }
        let written = match &mut self.sink {
            Sink::File(file) => file.write_all(bytes),
            Sink::Stdout {
                terminal: false, ..
            } => io::stdout().lock().write_all(bytes),
            Sink::Stdout {
                terminal: true,
                held,
            } => {
                held.extend_from_slice(bytes);
                let show = held.len() - incomplete_utf8_tail(held);
                let text = sanitize_bytes_lines(&held[..show]);
                held.drain(..show);
                io::stdout().lock().write_all(text.as_bytes())
            }
            Sink::Json { kept } => {
                let room = JSON_BODY.saturating_sub(kept.len());
                let mut take = bytes.len().min(room);
                if take > 0 && take < bytes.len() {
                    // Cut at a character, not inside one.
                    take -= incomplete_utf8_tail(&bytes[..take]);
                }
                kept.extend_from_slice(&bytes[..take]);
                Ok(())
            }
        };
        self.error = written.err();
    }

    fn finish(mut self, head: &ResponseHead) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut out = io::stdout().lock();
        let kept = match self.sink {
            Sink::File(mut file) => {
                file.flush()?;
                None
            }
            Sink::Stdout { held, .. } => {
                out.write_all(sanitize_bytes_lines(&held).as_bytes())?;
                None
            }
            Sink::Json { kept } => Some(kept),
        };
        if !self.json {
            return out.flush();
        }
        let record = HttpResponse {
            status: head.status,
            reason: head.reason.clone(),
            headers: head.headers.clone(),
            body_bytes: self.bytes,
            body_truncated: kept.as_ref().is_some_and(|k| self.bytes > k.len() as u64),
            body: kept.map(|k| String::from_utf8_lossy(&k).into_owned()),
        };
        output::write_line(out, &record)
    }
}
