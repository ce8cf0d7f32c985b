#!/usr/bin/env bash
# Builds what portctl ships, into target/dist/:
#   portctl-x86_64-linux-static   one static (musl) binary for any x86-64 Linux
#   portctl_<version>_amd64.deb    the binary, man page, completions, notices
#   portctl-<version>.crate        the publishable crate (built from itself)
# Needs the musl target (rustup target add x86_64-unknown-linux-musl) and
# cargo-deb (cargo install cargo-deb); both are installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/dist target/assets

rustup target list --installed | grep -q x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
cargo build --release --locked --target x86_64-unknown-linux-musl
cp target/x86_64-unknown-linux-musl/release/portctl target/dist/portctl-x86_64-linux-static

# The man page and completions are generated from the binary being shipped.
cargo build --release --locked
bin=target/release/portctl
"$bin" man | gzip -9n > target/assets/portctl.1.gz
"$bin" completions bash > target/assets/portctl.bash
"$bin" completions zsh > target/assets/_portctl
"$bin" completions fish > target/assets/portctl.fish
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --no-build --output target/dist/

# `cargo package` builds the crate from its own tarball: nothing is read
# from outside it.
cargo package --locked --allow-dirty --quiet
cp target/package/portctl-*.crate target/dist/
ls -l target/dist
