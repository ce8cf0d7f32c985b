#!/usr/bin/env bash
# portctl serve hello against a minimal tokio hello server, side by side in
# one run, driven by examples/loadgen.rs over loopback. Every run is bounded
# by --secs; the servers are stopped at the end.
#
# Usage: benches/serve.sh [SECONDS]     (default 10 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --quiet --bin portctl --example loadgen --example baseline_hello
bin=target/release/portctl
ex=target/release/examples
ulimit -n "$(ulimit -Hn)"

"$bin" serve hello --port 0 -q --max-conn 20000 > /tmp/portctl-serve.out &
p_pid=$!
"$ex/baseline_hello" 127.0.0.1:0 > /tmp/baseline.out &
b_pid=$!
trap 'kill $p_pid $b_pid 2>/dev/null || true' EXIT
sleep 0.5
p_port=$(grep -o '[0-9]*' /tmp/portctl-serve.out | tail -1)
b_port=$(grep -o '[0-9]*$' /tmp/baseline.out)
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

echo "## 1,000 concurrent connections, ${secs}s each, alternating"
for round in 1 2; do
    echo "baseline: $("$ex/loadgen" "127.0.0.1:$b_port" --conns 1000 --secs "$secs")"
    echo "portctl:  $("$ex/loadgen" "127.0.0.1:$p_port" --conns 1000 --secs "$secs")"
done

echo "## 100 active connections with 10,000 idle ones held"
echo "baseline: $("$ex/loadgen" "127.0.0.1:$b_port" --conns 100 --idle 10000 --secs "$secs")"
echo "portctl:  $("$ex/loadgen" "127.0.0.1:$p_port" --conns 100 --idle 10000 --secs "$secs")"
echo "peak RSS (KiB): portctl $(hwm $p_pid), baseline $(hwm $b_pid); now: portctl $(rss $p_pid), baseline $(rss $b_pid)"
