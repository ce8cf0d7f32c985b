//! The baseline for benches/serve.sh: the smallest tokio hello server in
//! line mode (`welcome!`, then `hello,LINE!` per line), with none of
//! portctl's limits, logs or shutdown handling.
//!
//!     cargo run --release --example baseline_hello -- 127.0.0.1:9998

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9998".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("baseline listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            write.write_all(b"welcome!").await?;
            let mut lines = BufReader::new(read).lines();
            while let Some(line) = lines.next_line().await? {
                write
                    .write_all(format!("hello,{line}!\n").as_bytes())
                    .await?;
            }
            Ok::<_, std::io::Error>(())
        });
    }
}
