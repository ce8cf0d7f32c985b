#!/usr/bin/env bash
# Regenerates link/symbol-order.txt: the functions and tables that portctl's
# everyday commands (whatis, list, check, free) touch, in the order they first
# touch them. build.rs hands the file to the linker (--symbol-ordering-file),
# which places them together at the start of .text and .rodata. The kernel
# maps a binary in 64 KiB windows around each page touched; packed together,
# `list` maps ~1 MiB less of the binary and `whatis` takes ~15% fewer page
# faults (BENCHMARKS.md).
#
# Rerun after changing code on those paths or upgrading Rust or a dependency:
# symbol names carry hashes, and the linker skips names it no longer finds,
# so a stale file costs speed, never correctness.
#
# Usage (as root, for a private network namespace): scripts/symbol-order.sh
# Needs: valgrind, python3, unshare (util-linux), ip (iproute2).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/symbol-order
if [ "${PORTCTL_ORDER_NETNS:-}" != 1 ]; then
    # A link map names the section of every symbol. The flag changes
    # nothing in the binary; its own target dir keeps the main build's cache.
    RUSTFLAGS="-C link-arg=-Wl,-Map=$PWD/$dir/portctl.map" \
        cargo build --release --quiet --target-dir "$dir"
    exec unshare -n env PORTCTL_ORDER_NETNS=1 "$0" "$@"
fi
ip link set lo up
bin=$dir/release/portctl
python3 benches/hold_sockets.py 1000 300 > "$dir/holder.out" &
holder=$!
trap 'kill $holder 2>/dev/null || true' EXIT
until grep -q ready "$dir/holder.out"; do sleep 0.1; done
held=$(awk '{print $2}' "$dir/holder.out")

# Each run's addresses (instructions and data), first touch first.
traces=()
i=0
for args in "whatis 443" "list --json" "list" "check 1" "check $held" "free" \
    "whatis ssh" "list -l" "check --json 1"; do
    i=$((i + 1))
    # `check` of a held port exits 1, as it should.
    # shellcheck disable=SC2086
    { valgrind --tool=lackey --trace-mem=yes --log-fd=3 "$bin" $args \
        3>&1 >/dev/null 2>/dev/null || true; } | awk '!seen[$2]++' > "$dir/$i.trace"
    traces+=("$dir/$i.trace")
done

python3 - "$dir/portctl.map" "${traces[@]}" > link/symbol-order.txt <<'PY'
import bisect, re, sys

# Valgrind loads a position-independent executable at this address (amd64).
BASE = 0x108000
# Input sections of the link map: address, size, and the symbol the
# section holds (.text.NAME, .text.unlikely.NAME, .rodata.NAME, ...).
SECTION = re.compile(
    r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*:\("
    r"\.(?:text|rodata|data\.rel\.ro)\.(?:(?:unlikely|hot|startup|exit)\.)?([^)]+)\)$"
)
sections = []
for line in open(sys.argv[1]):
    m = SECTION.match(line)
    # .L names are local labels, which the linker cannot order by name.
    if m and int(m.group(2), 16) and not m.group(3).startswith(".L"):
        start = int(m.group(1), 16)
        sections.append((start, start + int(m.group(2), 16), m.group(3)))
sections.sort()
starts = [s[0] for s in sections]

order, seen = [], set()
for trace in sys.argv[2:]:
    for line in open(trace):
        kind, _, rest = line.strip().partition(" ")
        if kind not in ("I", "L", "S", "M"):
            continue
        try:
            addr = int(rest.strip().split(",")[0], 16) - BASE
        except ValueError:
            continue
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < sections[i][1] and sections[i][2] not in seen:
            seen.add(sections[i][2])
            order.append(sections[i][2])
if "main" not in seen or len(order) < 100:
    sys.exit(f"only {len(order)} symbols found: did valgrind load the binary at {BASE:#x}?")
print("\n".join(order))
PY
echo "link/symbol-order.txt: $(wc -l < link/symbol-order.txt) symbols" >&2
