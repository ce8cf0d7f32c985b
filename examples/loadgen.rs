//! Load generator for `portctl serve hello` (and the baseline server):
//! N connections doing line-mode hello exchanges for a fixed time, with M
//! extra idle connections held open. Prints exchanges/s, p50/p99 latency
//! and lost or mismatched replies. Loopback only; bounded in time.
//!
//!     cargo run --release --example loadgen -- 127.0.0.1:9999 --conns 1000 --secs 10 --idle 0

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    idle: usize,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .ok_or("usage: loadgen ADDR [--conns N] [--secs S] [--idle M]")?
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("loadgen only talks to loopback addresses".into());
    }
    let mut o = Options {
        addr,
        conns: 1000,
        secs: 10,
        idle: 0,
    };
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--conns" => o.conns = value.clamp(1, 20_000),
            "--secs" => o.secs = (value as u64).clamp(1, 120),
            "--idle" => o.idle = value.min(20_000),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

#[derive(Default)]
struct Counts {
    exchanges: AtomicU64,
    lost: AtomicU64,
    mismatched: AtomicU64,
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let setup = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut welcome = [0u8; 8];
        s.read_exact(&mut welcome).await?;
        Ok(s)
    };
    tokio::time::timeout(Duration::from_secs(10), setup)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Opens `n` connections, 64 at a time so the listen backlog never
/// overflows and the measurement starts with every client connected.
async fn connect_all(addr: SocketAddr, n: usize) -> std::io::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(n);
    while streams.len() < n {
        let batch: Vec<_> = (0..(n - streams.len()).min(64))
            .map(|_| tokio::spawn(connect(addr)))
            .collect();
        for t in batch {
            streams.push(t.await.map_err(std::io::Error::other)??);
        }
    }
    Ok(streams)
}

/// One client: exchanges until the deadline, returning its latencies (µs).
async fn client(id: usize, mut s: TcpStream, deadline: Instant, counts: Arc<Counts>) -> Vec<u32> {
    let mut latencies = Vec::new();
    let message = format!("client{id}\n");
    let expected = format!("hello,client{id}!\n");
    let mut reply = vec![0u8; expected.len()];
    while Instant::now() < deadline {
        let started = Instant::now();
        let exchange = async {
            s.write_all(message.as_bytes()).await?;
            s.read_exact(&mut reply).await
        };
        match tokio::time::timeout(Duration::from_secs(5), exchange).await {
            Ok(Ok(_)) if reply == expected.as_bytes() => {
                latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                counts.exchanges.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {
                counts.mismatched.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ => {
                counts.lost.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    latencies
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (idle, active) = match (connect_all(o.addr, o.idle).await, connect_all(o.addr, o.conns).await) {
            (Ok(idle), Ok(active)) => (idle, active),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: cannot open the connections: {e}");
                std::process::exit(3);
            }
        };
        let counts = Arc::new(Counts::default());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(o.secs);
        let tasks: Vec<_> = active
            .into_iter()
            .enumerate()
            .map(|(i, s)| tokio::spawn(client(i, s, deadline, counts.clone())))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
        println!(
            "conns={} idle={} secs={:.1} exchanges={} exchanges/s={:.0} p50_us={} p99_us={} lost={} mismatched={}",
            o.conns,
            idle.len(),
            elapsed,
            counts.exchanges.load(Ordering::Relaxed),
            counts.exchanges.load(Ordering::Relaxed) as f64 / elapsed,
            pct(0.50),
            pct(0.99),
            counts.lost.load(Ordering::Relaxed),
            counts.mismatched.load(Ordering::Relaxed),
        );
        drop(idle);
    });
}
