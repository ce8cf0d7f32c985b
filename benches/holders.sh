# Sourced by the socket benches: a private network namespace, holding N
# loopback sockets and measuring peak memory, the same way in each.

# Runs the calling script again inside a private network namespace
# (unshare -n) with loopback up, so the machine's other sockets stay out;
# builds the release binary first. Call as `in_own_netns "$@"`.
in_own_netns() {
    if [ "${PORTCTL_BENCH_NETNS:-}" != 1 ]; then
        [ -x target/release/portctl ] || cargo build --release --quiet
        exec unshare -n env PORTCTL_BENCH_NETNS=1 "$0" "$@"
    fi
    ip link set lo up
}

# The median of five runs' peak RSS in KB.
peak_kb() {
    for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p
}

# Starts benches/hold_sockets.py processes holding N sockets in all (one
# process may hold at most `ulimit -n` descriptors: they are spread), each
# stopping by itself after 15 minutes; waits until all are open. Sets
# `holders` (their PIDs) and `held` (a port one of them listens on).
hold_sockets() {
    local n=$1 per k i
    per=$(( $(ulimit -n) - 200 )); k=$(( (n + per - 1) / per )); holders=()
    for i in $(seq "$k"); do
        python3 benches/hold_sockets.py $((n / k)) 900 > "/tmp/portctl-holder.$i" &
        holders+=($!)
    done
    for i in $(seq "$k"); do
        until grep -q ready "/tmp/portctl-holder.$i"; do sleep 0.1; done
    done
    held=$(awk '{print $2}' /tmp/portctl-holder.1)
}
