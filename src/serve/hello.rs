//! The hello protocol: `welcome!` on connect, `hello,M!` for each message,
//! `exit` to leave; over UDP, `Hello, M!` for each datagram.

use super::framing::{Framer, Message, TooLong};
use super::{read_available, Stats};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long a client must be quiet before bytes it sent without a newline
/// count as a message. Long enough that a line split across packets stays
/// one line, short enough that the classic client gets its reply at once.
pub const QUIET: Duration = Duration::from_millis(25);

pub async fn serve(
    mut stream: TcpStream,
    delay: Duration,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    stream.write_all(b"welcome!").await?;
    let mut framer = Framer::default();
    let mut messages: Vec<Message> = Vec::new();
    // Registered once: a fresh `cancelled()` per message would take the
    // token's lock on every exchange.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let readable = tokio::select! {
            biased;
            _ = &mut cancelled => return Ok(()),
            r = stream.readable() => Some(r),
            _ = tokio::time::sleep(QUIET), if framer.has_partial() => None,
        };
        match readable {
            Some(ready) => {
                ready?;
                let pushed = read_available(&stream, |bytes| framer.push(bytes, &mut messages))?;
                match pushed {
                    None => {
                        // The client closed its side: answer what it left
                        // without a newline, then close.
                        messages.extend(framer.flush());
                        reply_all(&mut stream, &mut messages, delay, stats).await?;
                        return Ok(());
                    }
                    Some(Err(TooLong)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "sent over 64 KiB without a newline; closing",
                        ))
                    }
                    Some(Ok(())) => {}
                }
            }
            None => messages.extend(framer.flush()),
        }
        if reply_all(&mut stream, &mut messages, delay, stats).await? {
            return Ok(());
        }
    }
}

/// Replies to each message in order; true when one was `exit`.
async fn reply_all(
    stream: &mut TcpStream,
    messages: &mut Vec<Message>,
    delay: Duration,
    stats: &Stats,
) -> io::Result<bool> {
    for message in messages.drain(..) {
        if message.is_exit() {
            return Ok(true);
        }
        stats.messages.fetch_add(1, Ordering::Relaxed);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        stream.write_all(&message.hello_reply()).await?;
    }
    Ok(false)
}

/// `Hello, M!` for a datagram M.
pub fn datagram_reply(body: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(body.len() + 8);
    reply.extend_from_slice(b"Hello, ");
    reply.extend_from_slice(body);
    reply.push(b'!');
    reply
}
