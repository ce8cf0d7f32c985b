#!/usr/bin/env bash
# `portctl top`'s idle cost: a 100×30 tmux pane at the default 1 s
# interval, nothing pressed, SECONDS long, with N loopback sockets held in
# a private network namespace. CPU is utime + stime from /proc/PID/stat
# (its reader threads included), read before and after.
#
# Usage (as root): benches/top_idle.sh     N=1000 SECONDS_IDLE=30
# Needs: unshare, ip, tmux, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/holders.sh
in_own_netns "$@"
bin=$PWD/target/release/portctl
n=${N:-1000} seconds=${SECONDS_IDLE:-30}
session=portctl-bench-top-$$
trap 'tmux kill-session -t "$session" 2>/dev/null || true; kill "${holders[@]}" 2>/dev/null || true' EXIT

hold_sockets "$n"
tmux -L "$session" new-session -d -s "$session" -x 100 -y 30 "$bin top"
sleep 3
pid=$(pgrep -n -f "^$bin top")
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(ticks); sleep "$seconds"; after=$(ticks)
tmux -L "$session" kill-server
awk -v a="$after" -v b="$before" -v k="$(getconf CLK_TCK)" -v s="$seconds" -v n="$n" \
    'BEGIN { printf "top idle at %d sockets for %ds: %.2f %% of one core\n", n, s, 100 * (a - b) / k / s }'
