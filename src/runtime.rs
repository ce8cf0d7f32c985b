//! The tokio runtime for the commands that do network I/O: all cores for
//! servers and probes, one thread for a single client.

use std::io;

pub(crate) fn build(multi_thread: bool) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}
