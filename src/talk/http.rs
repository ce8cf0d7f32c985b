//! `talk --http`: one raw HTTP/1.1 GET, as the tutorial does it by hand —
//! the status line and headers shown, the body written byte for byte.

use super::connect;
use crate::cli::TalkArgs;
use crate::exit::{Error, Exit, Result};
use crate::output::{sanitize, sanitize_bytes, Output};
use crate::parse::Host;
use serde::{Deserialize, Serialize};
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// The response as `talk --http --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
    /// The body as text when it went nowhere else (no `-o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A parsed response head, and where its body starts.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body_at: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the head; `Ok(None)` while it is incomplete.
fn parse_head(bytes: &[u8]) -> std::result::Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(body_at)) => Ok(Some(Head {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_string(),
            headers: response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body_at,
        })),
        Err(e) => Err(format!("not an HTTP response: {e}")),
    }
}

/// Decodes a complete `Transfer-Encoding: chunked` body.
fn decode_chunked(mut data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body ends inside a chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size '{size_text}'"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            return Err("chunked body ends inside a chunk".into());
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The body out of everything read until the server closed.
fn body_of(head: &Head, rest: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return decode_chunked(rest);
    }
    match head.header("content-length") {
        Some(len) => {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length '{len}'"))?;
            if rest.len() < len {
                return Err(format!("body cut short: {} of {len} bytes", rest.len()));
            }
            Ok(rest[..len].to_vec())
        }
        None => Ok(rest.to_vec()),
    }
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
        .map_err(|e| Error::failure(format!("cannot send the request: {e}")))?;
    // Connection: close — the response ends when the server closes.
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match timeout(args.timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => response.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(Error::failure(format!("reading the response: {e}"))),
            Err(_) => {
                return Err(Error::failure(format!(
                    "no complete response in {:.1}s",
                    args.timeout.as_secs_f64()
                )))
            }
        }
    }
    let head = parse_head(&response)
        .map_err(Error::failure)?
        .ok_or_else(|| Error::failure("the server closed before a full response head"))?;
    let body = body_of(&head, &response[head.body_at..]).map_err(Error::failure)?;
    let exit = if head.status >= 400 {
        Exit::Negative
    } else {
        Exit::Ok
    };

    if let Some(file) = &args.output_file {
        std::fs::write(file, &body)
            .map_err(|e| Error::failure(format!("cannot write {}: {e}", file.display())))?;
    }
    if output.is_json() {
        let record = HttpResponse {
            status: head.status,
            reason: head.reason.clone(),
            headers: head.headers.clone(),
            body_bytes: body.len(),
            body: args
                .output_file
                .is_none()
                .then(|| String::from_utf8_lossy(&body).into_owned()),
        };
        crate::output::write_line(io::stdout().lock(), &record)?;
        return Ok(exit);
    }
    // With the body on stdout, the head goes to stderr so the body stays
    // byte-exact for a pipe.
    let mut head_text = format!("HTTP/1.1 {} {}\n", head.status, head.reason);
    for (name, value) in &head.headers {
        head_text.push_str(&format!("{name}: {value}\n"));
    }
    let head_text = sanitize(&head_text).replace("\\n", "\n");
    if args.output_file.is_some() {
        let mut out = io::stdout().lock();
        out.write_all(head_text.as_bytes())?;
        out.flush()?;
    } else {
        let _ = io::stderr().write_all(head_text.as_bytes());
        let mut out = io::stdout().lock();
        if out.is_terminal() {
            out.write_all(sanitize_bytes(&body).replace("\\n", "\n").as_bytes())?;
        } else {
            out.write_all(&body)?;
        }
        out.flush()?;
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_wait_for_more() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len"), Ok(None));
        let head = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert_eq!(head.header("content-length"), Some("3"));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let head = |h: &str| {
            parse_head(format!("HTTP/1.1 200 OK\r\n{h}\r\n").as_bytes())
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            body_of(&head("Content-Length: 3\r\n"), b"abcdef").unwrap(),
            b"abc"
        );
        assert!(body_of(&head("Content-Length: 9\r\n"), b"abc").is_err());
        assert_eq!(
            body_of(
                &head("Transfer-Encoding: chunked\r\n"),
                b"3\r\nabc\r\n2;x=y\r\n\x00\xff\r\n0\r\n\r\n"
            )
            .unwrap(),
            b"abc\x00\xff"
        );
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"5\r\nab").is_err());
        assert_eq!(body_of(&head(""), b"until close").unwrap(), b"until close");
    }
}
