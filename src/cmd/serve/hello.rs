//! `serve hello` over TCP: answers each message as it is framed, with
//! backpressure. Input is read only while fewer than one message's worth
//! waits, and replies are written before more is read, so a client that
//! never reads its replies costs at most one message and one small write
//! buffer, however much it sends.

use super::conn::{close_after, read_available, Stats};
use crate::facts::hello_protocol::{self, Framer, Message, TooLong, QUIET, TOO_LONG, WELCOME};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Replies are gathered up to this many bytes per write; a longer reply is
/// written from where its message lies instead of being copied.
const WRITE_BATCH: usize = 8 * 1024;

/// Messages answered in one go before the task lets others run.
const YIELD_AFTER: usize = 256;

pub async fn serve(
    mut stream: TcpStream,
    delay: Duration,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    stream.write_all(WELCOME).await?;
    let mut framer = Framer::default();
    let mut replier = Replier {
        out: Vec::new(),
        delay,
        stats,
    };
    // Registered once: a fresh `cancelled()` per message would take the
    // token's lock on every exchange.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let mut answered = 0usize;
        loop {
            match framer.next_line() {
                Ok(Some(message)) => {
                    if replier.answer(&mut stream, &framer, message).await? {
                        return replier.flush(&mut stream).await;
                    }
                    answered += 1;
                }
                Ok(None) => break,
                Err(TooLong) => {
                    replier.flush(&mut stream).await?;
                    close_after(&mut stream, TOO_LONG).await;
                    return Ok(());
                }
            }
        }
        replier.flush(&mut stream).await?;
        framer.release();
        if answered >= YIELD_AFTER {
            // A flood of tiny messages is CPU work: let the other
            // connections (and the accept loop) run between bufferfuls.
            tokio::task::yield_now().await;
        }
        let readable = tokio::select! {
            biased;
            _ = &mut cancelled => return Ok(()),
            r = stream.readable() => Some(r),
            _ = tokio::time::sleep(QUIET), if framer.has_partial() => None,
        };
        let quiet = readable.is_none();
        let closed = match readable {
            Some(ready) => {
                ready?;
                read_available(&stream, framer.room(), |bytes| framer.push(bytes))?.is_none()
            }
            None => false,
        };
        // Quiet, or closed: what came without a newline is a message.
        if closed || quiet {
            if let Some(message) = framer.flush() {
                if replier.answer(&mut stream, &framer, message).await? || closed {
                    return replier.flush(&mut stream).await;
                }
            } else if closed {
                return replier.flush(&mut stream).await;
            }
        }
    }
}

/// Writes replies, gathering small ones.
struct Replier<'a> {
    out: Vec<u8>,
    delay: Duration,
    stats: &'a Stats,
}

impl Replier<'_> {
    /// Answers one message; true when it was `exit`.
    async fn answer(
        &mut self,
        stream: &mut TcpStream,
        framer: &Framer,
        message: Message,
    ) -> io::Result<bool> {
        let body = framer.body(message);
        if hello_protocol::is_exit(body) {
            return Ok(true);
        }
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            self.flush(stream).await?;
            tokio::time::sleep(self.delay).await;
        }
        let parts = hello_protocol::reply_parts(body, message.line);
        if body.len() > WRITE_BATCH {
            self.flush(stream).await?;
            for part in parts {
                stream.write_all(part).await?;
            }
        } else {
            for part in parts {
                self.out.extend_from_slice(part);
            }
            if self.out.len() >= WRITE_BATCH || !self.delay.is_zero() {
                self.flush(stream).await?;
            }
        }
        Ok(false)
    }

    /// Writes what is gathered; a large buffer is given back.
    async fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
        }
        if self.out.capacity() > WRITE_BATCH * 2 {
            self.out = Vec::new();
        }
        Ok(())
    }
}
