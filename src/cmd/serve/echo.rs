//! The echo protocol (RFC 862): every byte back, in order. What one read
//! brings is written back before the next read, so a client that never
//! reads costs at most one read buffer.

use super::conn::{read_available, Stats};
use std::io;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub async fn serve(
    mut stream: TcpStream,
    shutdown: &CancellationToken,
    stats: &Stats,
) -> io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => return Ok(()),
            ready = stream.readable() => ready?,
        }
        let read = read_available(&stream, usize::MAX, |bytes| {
            pending.extend_from_slice(bytes)
        })?;
        if !pending.is_empty() {
            stats.messages.fetch_add(1, Ordering::Relaxed);
            stream.write_all(&pending).await?;
            // Back to no buffer at all while the client is idle.
            pending = Vec::new();
        }
        if read.is_none() {
            return Ok(());
        }
    }
}
