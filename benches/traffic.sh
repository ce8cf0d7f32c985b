#!/usr/bin/env bash
# Traffic without capture, side by side in one run:
#  1. the cost of tcp_info: `list --info --json` against `list --json`,
#     `ss -tunapi` and `ss -tunap`, with N loopback sockets held in a
#     private network namespace (as benches/sockets.sh);
#  2. rate accuracy against a known load: benches/paced_sender.py sends
#     RATE bytes a second over loopback; portctl's rate (two `list -i`
#     readings, the difference `top` shows as TX/s) and nethogs' (packet
#     capture, root) against what the sender counted.
#
# Usage (as root): benches/traffic.sh     N=10000 RATE=2097152
# Needs: unshare, ip, hyperfine, python3, ss, nethogs.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/holders.sh
in_own_netns "$@"
bin=target/release/portctl
n=${N:-10000} rate=${RATE:-2097152} runs=${RUNS:-20}
work=$(mktemp -d /tmp/portctl-bench-traffic.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

hold_sockets "$n"
echo "## tcp_info at $n sockets (ss counts $(ss -tunaH | wc -l))"
echo
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/cost.md" --style none \
    "$bin list --json" "$bin list --info --json" "ss -tunapi" "ss -tunap" >/dev/null
cat "$work/cost.md"
kill "${holders[@]}"; wait 2>/dev/null || true
holders=()

echo
echo "## rate of one sender at $rate B/s over loopback"
echo
python3 benches/paced_sender.py "$rate" 24 >"$work/sender" &
sender=$!
until grep -q sending "$work/sender"; do sleep 0.1; done
read -r _ port pid <"$work/sender"
sleep 2
# portctl: the sender's socket (local end not the listener's port) read
# twice, 16 s apart; rate = difference / time between the readings.
sent_bytes() {
    "$bin" list -i --json --pid "$pid" --state established |
        python3 -c "import json,sys; print(sum(r['bytes_sent'] for r in json.load(sys.stdin) if r['remote_port'] == $port))"
}
timeout 16 nethogs -a -t -d 1 lo >"$work/nethogs" 2>/dev/null &
t0=$(date +%s.%N); b0=$(sent_bytes)
sleep 16
t1=$(date +%s.%N); b1=$(sent_bytes)
wait %2 2>/dev/null || true
wait "$sender"
read -r _ total took < <(grep sent "$work/sender")
truth=$(awk -v b="$total" -v t="$took" 'BEGIN { print b / t }')
ours=$(awk -v a="$b0" -v b="$b1" -v s="$t0" -v e="$t1" 'BEGIN { print (b - a) / (e - s) }')
# nethogs prints KB/s (1024 bytes) per process and refresh; the first
# refresh has no rate yet: the mean of the rest.
theirs=$(awk -F'\t' -v p="/$pid/" 'index($1, p) && $2 > 0 { s += $2; k++ } END { if (k) print s * 1024 / k; else print 0 }' "$work/nethogs")
echo "| tool | measured B/s | of the sender's own count |"
echo "| --- | ---: | ---: |"
awk -v t="$truth" 'BEGIN { printf "| the sender (truth) | %.0f | 100.0 %% |\n", t }'
awk -v o="$ours" -v t="$truth" 'BEGIN { printf "| portctl (tcp_info, no root) | %.0f | %.1f %% |\n", o, 100 * o / t }'
awk -v o="$theirs" -v t="$truth" 'BEGIN { printf "| nethogs -a lo (capture, root) | %.0f | %.1f %% |\n", o, 100 * o / t }'
