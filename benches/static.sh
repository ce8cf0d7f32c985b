#!/usr/bin/env bash
# The static (musl) binary against the glibc build, side by side with the
# tool a user would run instead, in one run: `whatis` vs getent, `check`
# of a held port vs ss, `list --json` vs ss at each size, and the peak RSS
# of each. Sockets are held in a private network namespace, so the
# machine's others do not leak in. Every holder stops by itself.
#
# Usage (as root): benches/static.sh [N ...]      default: 10000 30000
# Needs: unshare and ip, hyperfine, python3, GNU time, the musl target.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PORTCTL_BENCH_NETNS:-}" != 1 ]; then
    cargo build --release --quiet
    cargo build --release --quiet --target x86_64-unknown-linux-musl
    exec unshare -n env PORTCTL_BENCH_NETNS=1 "$0" "$@"
fi
ip link set lo up
static=target/x86_64-unknown-linux-musl/release/portctl
glibc=target/release/portctl
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 30000)
runs=${RUNS:-30}
md=$(mktemp)
trap 'rm -f "$md"' EXIT

peak_kb() {
    for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p
}

echo "## whatis"
hyperfine -N --warmup 20 --runs 300 --export-markdown "$md" --style none \
    "$static whatis 443" "$glibc whatis 443" "getent services 443" >/dev/null
cat "$md"
echo "peak RSS (KB): static $(peak_kb $static whatis 443), glibc $(peak_kb $glibc whatis 443)"
echo

for n in "${sizes[@]}"; do
    per=$(( $(ulimit -n) - 200 )); k=$(( (n + per - 1) / per )); holders=()
    for i in $(seq "$k"); do
        python3 benches/hold_sockets.py $((n / k)) 900 > "/tmp/portctl-static.$i" &
        holders+=($!)
    done
    for i in $(seq "$k"); do
        until grep -q ready "/tmp/portctl-static.$i"; do sleep 0.1; done
    done
    held=$(awk '{print $2}' /tmp/portctl-static.1)
    echo "## $n sockets (ss counts $(ss -tunaH | wc -l)); held port $held"
    hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$md" --style none \
        "$static list --json" "$glibc list --json" "ss -tunap" >/dev/null
    cat "$md"
    hyperfine -N -i --warmup 5 --runs "$((runs * 3))" --export-markdown "$md" --style none \
        "$static check --tcp $held" "$glibc check --tcp $held" "ss -Htanp 'sport = :$held'" >/dev/null
    cat "$md"
    echo "peak RSS (KB), list --json: static $(peak_kb $static list --json)," \
         "glibc $(peak_kb $glibc list --json), ss -tunap $(peak_kb ss -tunap)"
    echo
    kill "${holders[@]}"; wait 2>/dev/null || true
done
