//! `serve metrics`: the machine's sockets at `GET /metrics` for
//! Prometheus. A scrape reads the table; at most one runs at a time, and
//! requests that arrive while one runs share its result, so the server
//! never holds more than one table.

use super::conn::{close_after, Stats};
use super::http::{read_request, refusal, response, Head};
use crate::output::prometheus::{self, CONTENT_TYPE};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
        let text = tokio::task::spawn_blocking(move || {
            crate::facts::scrape::scrape(&ports).map(|s| prometheus::exposition(&s))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
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
    let Some(head) = read_request(&stream, shutdown).await? else {
        return Ok(());
    };
    let (method, path) = match head {
        Head::Complete(request, _) => (request.method, request.path),
        other => {
            close_after(&mut stream, &refusal(&other).unwrap_or_default()).await;
            return Ok(());
        }
    };
    // A query string (a Prometheus job's `params:`) does not change the
    // answer.
    let path = path.split_once('?').map_or(path.as_str(), |(path, _)| path);
    // HEAD gets the very head GET would, with no body.
    let reply: fn(&str, &str, &[u8]) -> Vec<u8> = if method == "HEAD" {
        super::http::head
    } else {
        response
    };
    let answer = match (method.as_str(), path) {
        ("GET" | "HEAD", "/metrics") => match scraper.exposition(Instant::now()).await {
            Ok(text) => {
                stats.messages.fetch_add(1, Ordering::Relaxed);
                reply("200 OK", CONTENT_TYPE, text.as_bytes())
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
        _ => response("405 Method Not Allowed", "text/plain", b"GET /metrics\n"),
    };
    close_after(&mut stream, &answer).await;
    Ok(())
}
