#!/usr/bin/env bash
# Times `portctl whatis` as a whole process against `getent services`, side
# by side in one run, and prints each mean in microseconds with its ratio to
# getent for the same query. Needs hyperfine (apt-get install hyperfine) and
# python3.
# Usage: benches/whatis.sh [path/to/portctl]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/portctl}
[ -x "$bin" ] || cargo build --release --quiet
json=$(mktemp)
trap 'rm -f "$json"' EXIT
hyperfine --shell=none --warmup 30 --runs 500 --style none --export-json "$json" \
    "$bin whatis 443" \
    "getent services 443" \
    "$bin whatis ssh" \
    "getent services ssh" \
    "$bin whatis 6000-6100" >/dev/null
python3 - "$json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
getent = {r["command"].split()[-1]: r["mean"] for r in results if r["command"].startswith("getent")}
print("| command | mean (µs) | ratio to getent, same query |")
print("| --- | ---: | ---: |")
for r in results:
    query = r["command"].split()[-1]
    ratio = f"{r['mean'] / getent[query]:.2f}" if query in getent else "—"
    print(f"| `{r['command']}` | {r['mean'] * 1e6:.0f} ± {r['stddev'] * 1e6:.0f} | {ratio} |")
PY
