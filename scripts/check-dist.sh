#!/usr/bin/env bash
# Checks what scripts/package.sh built, as a user would meet it:
# - the static binary runs where there is no libc at all (an empty root
#   holding only the binary and /proc): whatis, list, check, free; user
#   names degrade to uids without /etc/passwd;
# - the .deb installs (binary, man page, completions) and removes cleanly;
# - `cargo install --path .` into a temporary root gives a working portctl.
# Runs as root (chroot, dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
dist=target/dist
fail() { echo "check-dist: $*" >&2; exit 1; }

root=$(mktemp -d)
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
mkdir -p "$root/proc"
cp "$dist/portctl-x86_64-linux-static" "$root/portctl"
[ "$(find "$root" -type f | wc -l)" = 1 ] || fail "the empty root holds more than the binary"
unshare -m sh -ec '
    root=$1
    mount -t proc proc "$root/proc"
    chroot "$root" /portctl whatis 443 | grep -q https
    chroot "$root" /portctl list --json > "$root/list.json"
    port=$(chroot "$root" /portctl free)
    chroot "$root" /portctl check --tcp "$port"
' sh "$root" >/dev/null || fail "the static binary failed in an empty root"
python3 - "$root/list.json" <<'PY' || fail "user names did not degrade to uids"
import json, sys
rows = json.load(open(sys.argv[1]))
users = [r["user"] for r in rows if r["user"] is not None]
assert users and all(u.isdigit() for u in users), users[:5]
PY
echo "check-dist: static binary: whatis, list, check, free in an empty root; users as uids"

deb=$(ls "$dist"/portctl_*_amd64.deb)
dpkg -i "$deb" >/dev/null
[ "$(command -v portctl)" = /usr/bin/portctl ] || fail "portctl is not /usr/bin/portctl"
portctl --version | grep -q "^portctl " || fail "portctl --version"
man -w portctl | grep -q portctl.1 || fail "man -w portctl"
for f in /usr/share/bash-completion/completions/portctl \
         /usr/share/zsh/vendor-completions/_portctl \
         /usr/share/fish/vendor_completions.d/portctl.fish \
         /usr/share/doc/portctl/copyright \
         /usr/share/doc/portctl/DATA-NOTICES.md; do
    [ -s "$f" ] || fail "missing $f"
done
dpkg -r portctl >/dev/null
[ ! -e /usr/bin/portctl ] && [ ! -e /usr/share/man/man1/portctl.1.gz ] || fail "dpkg -r left files"
echo "check-dist: .deb installs binary, man page, completions, notices; removes cleanly"

prefix=$(mktemp -d)
cargo install --path . --root "$prefix" --locked --quiet
"$prefix/bin/portctl" --version | grep -q "^portctl " || fail "cargo install --path ."
rm -rf "$prefix"
echo "check-dist: cargo install --path . works"
