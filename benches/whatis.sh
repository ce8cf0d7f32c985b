#!/usr/bin/env bash
# Times `portctl whatis` as a whole process against `getent services`, side
# by side in one run. Needs hyperfine (apt-get install hyperfine).
# Usage: benches/whatis.sh [path/to/portctl]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/portctl}
[ -x "$bin" ] || cargo build --release --quiet
hyperfine --shell=none --warmup 20 --runs 300 --export-markdown /dev/stdout \
    "$bin whatis 443" \
    "getent services 443" \
    "$bin whatis ssh" \
    "getent services ssh" \
    "$bin whatis 6000-6100"
