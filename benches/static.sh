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
. benches/holders.sh
static=target/x86_64-unknown-linux-musl/release/portctl
glibc=target/release/portctl
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 30000)
runs=${RUNS:-30}
md=$(mktemp)
trap 'rm -f "$md"' EXIT

echo "## whatis"
hyperfine -N --warmup 20 --runs 300 --export-markdown "$md" --style none \
    "$static whatis 443" "$glibc whatis 443" "getent services 443" >/dev/null
cat "$md"
echo "peak RSS (KB): static $(peak_kb $static whatis 443), glibc $(peak_kb $glibc whatis 443)"
echo

for n in "${sizes[@]}"; do
    hold_sockets "$n"
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
