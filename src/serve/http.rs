//! `serve http`: a tiny HTTP/1.1 responder whose reply describes the
//! request — for testing proxies, firewalls and port mappings.

use super::{read_available, Stats};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The largest request head read; anything longer gets 431.
const MAX_HEAD: usize = 16 * 1024;
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

enum Parsed {
    Partial,
    Done(RequestDescription, bool),
    Bad,
}

fn parse(head: &[u8], client: SocketAddr, server: SocketAddr) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(_)) => {
            let headers: Vec<(String, String)> = request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let json = headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("accept") && v.contains("application/json"));
            Parsed::Done(
                RequestDescription {
                    method: request.method.unwrap_or("").to_string(),
                    path: request.path.unwrap_or("").to_string(),
                    version: format!("HTTP/1.{}", request.version.unwrap_or(1)),
                    client,
                    server,
                    headers,
                },
                json,
            )
        }
        Err(_) => Parsed::Bad,
    }
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nServer: portctl/{}\r\n\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

pub async fn serve(
    mut stream: TcpStream,
    client: SocketAddr,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    let server = stream.local_addr()?;
    let mut head: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let reply = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            ready = stream.readable() => ready?,
        }
        let read = read_available(&stream, |bytes| head.extend_from_slice(bytes))?;
        if head.len() > MAX_HEAD {
            break response(
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
            );
        }
        match parse(&head, client, server) {
            Parsed::Partial if read.is_none() => return Ok(()),
            Parsed::Partial => continue,
            Parsed::Bad => {
                break response(
                    "400 Bad Request",
                    "text/plain",
                    b"not an HTTP/1.x request\n",
                )
            }
            Parsed::Done(description, true) => {
                let body = serde_json::to_vec_pretty(&description).map_err(io::Error::other)?;
                break response("200 OK", "application/json", &body);
            }
            Parsed::Done(description, false) => {
                break response(
                    "200 OK",
                    "text/plain; charset=utf-8",
                    description.text().as_bytes(),
                )
            }
        }
    };
    stats.messages.fetch_add(1, Ordering::Relaxed);
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_requests_and_rejects_garbage() {
        let (c, s) = (
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", c, s),
            Parsed::Partial
        ));
        assert!(matches!(
            parse(b"\x16\x03\x01 TLS hello", c, s),
            Parsed::Bad
        ));
        let Parsed::Done(d, json) = parse(
            b"POST /a?b HTTP/1.0\r\nAccept: application/json\r\nX-Test: 1\r\n\r\n",
            c,
            s,
        ) else {
            panic!("complete request not parsed");
        };
        assert!(json);
        assert_eq!(
            (d.method.as_str(), d.path.as_str(), d.version.as_str()),
            ("POST", "/a?b", "HTTP/1.0")
        );
        assert!(d.text().contains("  X-Test: 1\n"));
    }
}
