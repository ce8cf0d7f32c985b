//! What every connection handler shares: the counters it bumps and the
//! one read buffer per runtime thread it reads through.

use std::io;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long a client gets to read a last reply before the close.
const LINGER: Duration = Duration::from_secs(2);

/// What a server counts, for the summary line.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub messages: AtomicU64,
}

thread_local! {
    /// One read buffer per runtime thread, shared by all its connections.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// Reads up to `max` bytes of what the socket holds right now into the
/// thread's buffer and hands them to `sink` (an empty slice when nothing
/// is waiting); `None` at end of stream. No connection owns a read buffer,
/// so an idle one costs only its socket and task.
pub fn read_available<T>(
    stream: &TcpStream,
    max: usize,
    sink: impl FnOnce(&[u8]) -> T,
) -> io::Result<Option<T>> {
    READ_BUFFER.with_borrow_mut(|buffer| {
        let len = buffer.len().min(max);
        match stream.try_read(&mut buffer[..len]) {
            Ok(0) if len > 0 => Ok(None),
            Ok(n) => Ok(Some(sink(&buffer[..n]))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(sink(&[]))),
            Err(e) => Err(e),
        }
    })
}

/// Ends a connection the polite way: sends `last`, then a FIN, and reads
/// and drops what the client still sends (for [`LINGER`] at most), so the
/// close does not turn into a reset that loses `last` on the way.
pub async fn close_after(stream: &mut TcpStream, last: &[u8]) {
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(last).await?;
        stream.shutdown().await?;
        loop {
            stream.readable().await?;
            if read_available(stream, usize::MAX, |_| ())?.is_none() {
                return io::Result::Ok(());
            }
        }
    })
    .await;
}
