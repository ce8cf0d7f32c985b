//! `serve metrics`: the machine's sockets at `GET /metrics` for
//! Prometheus. A scrape reads the table; at most one runs at a time, and
//! requests that arrive while one runs share its result, so the server
//! never holds more than one table.

use super::conn::{close_after, read_available, Stats};
use super::http::{read_head, Head, MAX_HEAD};
use crate::output::prometheus::CONTENT_TYPE;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A client that sends no complete head in this time is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of one `serve metrics` shares.
#[derive(Debug, Default)]
pub struct Scraper {
    /// Ports reported in `portctl_port_free`.
    pub ports: Vec<u16>,
    /// The last scrape and when it began; the lock makes scrapes one at
    /// a time.
    last: Mutex<Option<(Instant, Arc<String>)>>,
}

impl Scraper {
    pub fn new(ports: Vec<u16>) -> Self {
        Scraper {
            ports,
            last: Mutex::new(None),
        }
    }

    /// The exposition for a request that arrived at `asked`: a scrape
    /// begun after it (by a request that waited with it) is shared.
    async fn exposition(&self, asked: Instant) -> Result<Arc<String>, String> {
        let mut last = self.last.lock().await;
        if let Some((began, text)) = last.as_ref() {
            if *began >= asked {
                return Ok(text.clone());
            }
        }
        *last = None; // one table at a time: let go of the old one first
        let began = Instant::now();
        let ports = self.ports.clone();
        let text = tokio::task::spawn_blocking(move || crate::scrape::scrape(&ports))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.message)?;
        let text = Arc::new(text);
        *last = Some((began, text.clone()));
        Ok(text)
    }
}

pub async fn serve(
    mut stream: TcpStream,
    scraper: &Scraper,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    let mut head: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let path = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            ready = stream.readable() => ready?,
        }
        let room = (MAX_HEAD + 1).saturating_sub(head.len());
        let read = read_available(&stream, room, |bytes| head.extend_from_slice(bytes))?;
        match read_head(&head) {
            Head::Partial if read.is_none() => return Ok(()),
            Head::Partial => continue,
            Head::TooLarge => {
                close_after(
                    &mut stream,
                    &reply(
                        "431 Request Header Fields Too Large",
                        "text/plain",
                        b"request head too large\n",
                    ),
                )
                .await;
                return Ok(());
            }
            Head::Malformed => {
                close_after(
                    &mut stream,
                    &reply(
                        "400 Bad Request",
                        "text/plain",
                        b"not an HTTP/1.x request\n",
                    ),
                )
                .await;
                return Ok(());
            }
            Head::Complete(request, _) => break (request.method, request.path),
        }
    };
    let answer = match (path.0.as_str(), path.1.as_str()) {
        ("GET" | "HEAD", "/metrics") => match scraper.exposition(Instant::now()).await {
            Ok(text) => {
                stats.messages.fetch_add(1, Ordering::Relaxed);
                let body: &[u8] = if path.0 == "HEAD" {
                    b""
                } else {
                    text.as_bytes()
                };
                reply("200 OK", CONTENT_TYPE, body)
            }
            Err(e) => reply(
                "500 Internal Server Error",
                "text/plain",
                format!("cannot read the socket table: {e}\n").as_bytes(),
            ),
        },
        ("GET" | "HEAD", _) => reply(
            "404 Not Found",
            "text/plain",
            b"portctl serves its metrics at /metrics\n",
        ),
        _ => reply("405 Method Not Allowed", "text/plain", b"GET /metrics\n"),
    };
    close_after(&mut stream, &answer).await;
    Ok(())
}

fn reply(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nServer: portctl/{}\r\n\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
