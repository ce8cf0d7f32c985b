//! `serve http`: a tiny HTTP/1.1 responder whose reply describes the
//! request — for testing proxies, firewalls and port mappings.

use super::conn::{close_after, read_available, Stats};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The largest request head read; anything longer gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header lines a request may carry; more gets 431.
const MAX_HEADERS: usize = 64;
/// A client that sends no complete head in this time is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reply says about the request (its JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDescription {
    pub method: String,
    pub path: String,
    pub version: String,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub headers: Vec<(String, String)>,
}

impl RequestDescription {
    fn new(request: Request, client: SocketAddr, server: SocketAddr) -> Self {
        RequestDescription {
            method: request.method,
            path: request.path,
            version: request.version,
            client,
            server,
            headers: request.headers,
        }
    }

    fn text(&self) -> String {
        let mut text = format!(
            "method: {}\npath: {}\nversion: {}\nclient: {}\nserver: {}\nheaders:\n",
            self.method, self.path, self.version, self.client, self.server
        );
        for (name, value) in &self.headers {
            text.push_str(&format!("  {name}: {value}\n"));
        }
        text
    }
}

/// What a request head read so far amounts to.
#[derive(Debug)]
pub enum Head {
    /// More bytes are needed.
    Partial,
    /// A whole head: the request, and whether the client asked for JSON.
    Complete(Request, bool),
    /// Over the limits (too long, or too many header lines): 431.
    TooLarge,
    /// Not HTTP/1.x: 400.
    Malformed,
}

/// The parts of a request the reply describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

/// Reads a request head from the bytes received so far. A pure function,
/// fuzzed: any bytes give one of the four answers.
pub fn read_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(bytes);
    if bytes.len() > MAX_HEAD
        && !matches!(parsed, Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD)
    {
        return Head::TooLarge;
    }
    match parsed {
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(_)) => {
            let headers = crate::facts::http::header_pairs(request.headers);
            let json = headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("accept") && v.contains("application/json"));
            Head::Complete(
                Request {
                    method: request.method.unwrap_or("").to_string(),
                    path: request.path.unwrap_or("").to_string(),
                    version: format!("HTTP/1.{}", request.version.unwrap_or(1)),
                    headers,
                },
                json,
            )
        }
        Err(httparse::Error::TooManyHeaders) => Head::TooLarge,
        Err(_) => Head::Malformed,
    }
}

/// A whole response with `Connection: close`.
pub fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head(status, content_type, body);
    out.extend_from_slice(body);
    out
}

/// The head `response` would send for `body`, without the body: what
/// `HEAD` answers (RFC 9110 §9.3.2: the same headers as `GET`).
pub fn head(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nServer: portctl/{}\r\n\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Reads a request head within [`HEAD_TIMEOUT`], never more than
/// [`MAX_HEAD`] and a byte; `None` when the client left, went silent or the
/// server is stopping.
pub async fn read_request(
    stream: &TcpStream,
    shutdown: &CancellationToken,
) -> io::Result<Option<Head>> {
    let mut head: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
            ready = stream.readable() => ready?,
        }
        // One byte past the limit is enough to know the head is too long.
        let room = (MAX_HEAD + 1).saturating_sub(head.len());
        let read = read_available(stream, room, |bytes| head.extend_from_slice(bytes))?;
        match read_head(&head) {
            Head::Partial if read.is_none() => return Ok(None),
            Head::Partial => continue,
            done => return Ok(Some(done)),
        }
    }
}

/// The answer to a head over the limits or not HTTP at all.
pub fn refusal(head: &Head) -> Option<Vec<u8>> {
    match head {
        Head::TooLarge => Some(response(
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request head too large\n",
        )),
        Head::Malformed => Some(response(
            "400 Bad Request",
            "text/plain",
            b"not an HTTP/1.x request\n",
        )),
        Head::Partial | Head::Complete(..) => None,
    }
}

pub async fn serve(
    mut stream: TcpStream,
    client: SocketAddr,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    let server = stream.local_addr()?;
    let Some(head) = read_request(&stream, shutdown).await? else {
        return Ok(());
    };
    let reply = match head {
        Head::Complete(request, json) => {
            let description = RequestDescription::new(request, client, server);
            if json {
                let body = serde_json::to_vec_pretty(&description).map_err(io::Error::other)?;
                response("200 OK", "application/json", &body)
            } else {
                response(
                    "200 OK",
                    "text/plain; charset=utf-8",
                    description.text().as_bytes(),
                )
            }
        }
        other => refusal(&other).unwrap_or_default(),
    };
    stats.messages.fetch_add(1, Ordering::Relaxed);
    close_after(&mut stream, &reply).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_requests_and_rejects_garbage() {
        assert!(matches!(
            read_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Head::Partial
        ));
        assert!(matches!(
            read_head(b"\x16\x03\x01 TLS hello"),
            Head::Malformed
        ));
        let Head::Complete(request, json) =
            read_head(b"POST /a?b HTTP/1.0\r\nAccept: application/json\r\nX-Test: 1\r\n\r\n")
        else {
            panic!("complete request not parsed");
        };
        assert!(json);
        let d = RequestDescription::new(
            request,
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        );
        assert_eq!(
            (d.method.as_str(), d.path.as_str(), d.version.as_str()),
            ("POST", "/a?b", "HTTP/1.0")
        );
        assert!(d.text().contains("  X-Test: 1\n"));
    }

    #[test]
    fn heads_over_the_limits_are_too_large() {
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(read_head(head.as_bytes()), Head::TooLarge));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(read_head(long.as_bytes()), Head::TooLarge));
        let fits: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{fits}\r\n");
        assert!(matches!(read_head(head.as_bytes()), Head::Complete(..)));
    }
}
