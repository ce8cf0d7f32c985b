#!/usr/bin/env bash
# `portctl trace` against bpftrace's one-liner on the same tracepoint
# (sock:inet_sock_set_state), side by side in one run: each follows the
# same bounded load (benches/connect_load.py: RATE connections a second
# for SECONDS on loopback, each closed at once), one tool at a time,
# ROUNDS times in turn. Reported: each tool's CPU (utime + stime from
# /proc/PID/stat over the load) as a share of one core, and the share of
# the client's connections it printed.
#
# Usage (as root): benches/trace.sh      RATE=2000 SECONDS=10 ROUNDS=3
# Needs: python3, bpftrace, tracefs mounted.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/release/portctl ] || cargo build --release --quiet
bin=$PWD/target/release/portctl
rate=${RATE:-2000} seconds=${SECONDS_EACH:-10} rounds=${ROUNDS:-3}
work=$(mktemp -d /tmp/portctl-bench-trace.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One tool under the load: prints "caught connects cpu_share".
measure() {
    local tool=$1 out=$work/$1.out pid port before after done made took
    coproc LOAD { python3 benches/connect_load.py "$rate" "$seconds"; }
    local load_pid=$LOAD_PID load_out=${LOAD[0]} load_in=${LOAD[1]}
    read -r _ port <&"$load_out"
    case $tool in
        portctl)
            "$bin" trace --json --port "$port" >"$out" 2>"$work/err" &
            pid=$! ;;
        bpftrace)
            # One line per connect, as tcpconnect prints: the first state
            # change of a connecting socket, in its process's context.
            bpftrace -e "tracepoint:sock:inet_sock_set_state
                /args->protocol == 6 && args->oldstate == 7 && args->newstate == 2/
                { printf(\"%d %s\\n\", pid, comm); }" >"$out" 2>"$work/err" &
            pid=$! ;;
    esac
    # Ready when a test connection shows up.
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()"
        sleep 0.2
        [ -s "$out" ] && grep -q . "$out" && break
    done
    [ "$tool" = bpftrace ] && pid=$(pgrep -n -x bpftrace)
    before=$(cpu_ticks "$pid")
    echo go >&"$load_in"
    read -r done made took client <&"$load_out"
    sleep 0.5 # let the tool print what is buffered
    after=$(cpu_ticks "$pid")
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    case $tool in
        portctl) caught=$(grep -c "\"event\":\"connect\".*\"pid\":$client," "$out" || true) ;;
        bpftrace) caught=$(grep -c "^$client " "$out" || true) ;;
    esac
    wait "$load_pid" 2>/dev/null || true
    awk -v c="$caught" -v m="$made" -v t="$took" -v a="$after" -v b="$before" -v k="$tick" \
        'BEGIN { printf "%d %d %.1f\n", c, m, 100 * (a - b) / k / (t + 0.5) }'
}

echo "## trace at $rate connections/s for ${seconds}s, $rounds rounds (kernel $(uname -r))"
echo
echo "| round | tool | caught / made | CPU of one core |"
echo "| ---: | --- | ---: | ---: |"
for round in $(seq "$rounds"); do
    for tool in portctl bpftrace; do
        read -r caught made share < <(measure "$tool")
        printf '| %d | %s | %d / %d (%.2f %%) | %.1f %% |\n' "$round" "$tool" "$caught" "$made" \
            "$(awk -v c="$caught" -v m="$made" 'BEGIN { print 100 * c / m }')" "$share"
    done
done
