#!/usr/bin/env bash
# Times `portctl list` and `portctl check` against ss, netstat and lsof,
# side by side in one run, with N loopback sockets held inside a private
# network namespace so the machine's other sockets do not leak in.
#
# Usage (as root): benches/sockets.sh [N ...]      default: 1000 10000 30000
# Needs: unshare and ip (util-linux, iproute2), hyperfine, python3, and for
# the comparison ss, netstat (net-tools) and lsof; GNU time for peak memory.
# Every holder process stops by itself after a time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/holders.sh
in_own_netns "$@"
bin=target/release/portctl
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 30000)
runs=${RUNS:-20}

for n in "${sizes[@]}"; do
    hold_sockets "$n"
    free=$($bin free)
    echo "## $n sockets (ss counts $(ss -tunaH | wc -l)); held port $held, free port $free"
    hyperfine -N --warmup 3 --runs "$runs" --export-markdown /tmp/portctl-bench.md --style none \
        "$bin list --json" "ss -tunap" "netstat -tunap" "lsof -nP -i" >/dev/null
    cat /tmp/portctl-bench.md
    hyperfine -N -i --warmup 5 --runs "$((runs * 5))" --export-markdown /tmp/portctl-bench.md --style none \
        "$bin check --tcp $free" "$bin check --tcp $held" \
        "ss -Htanp 'sport = :$held'" "lsof -i :$held" >/dev/null
    cat /tmp/portctl-bench.md
    echo "peak RSS (KB): portctl list --json $(peak_kb $bin list --json), ss -tunap $(peak_kb ss -tunap)," \
         "netstat -tunap $(peak_kb netstat -tunap), lsof -nP -i $(peak_kb lsof -nP -i)"
    echo
    kill "${holders[@]}"; wait 2>/dev/null || true
done
