#!/usr/bin/env bash
# Re-make vendor/hyper: crates.io's hyper of the version Cargo.lock pins (or
# VERSION), unchanged, plus vendor/hyper.patch. Run it to move to a new hyper
# release (a security fix, say): bump VERSION, run, rebuild, run scripts/test.sh.
#
#   scripts/vendor-hyper.sh [VERSION]
#
# Why the patch (Cargo.toml's [patch.crates-io] says the same): hyper gives
# every HTTP/1 connection an 8 KiB read buffer and an 8 KiB head buffer up
# front, whatever its settings; every client connection a request queue whose
# first block holds 32 requests inline (~9 KB); and its HTTP/2 client spawns
# two tasks per request, each boxed at the size of its 3.5 KB connection task.
# With many long, quiet streams open (thinking models) that was most of the
# gateway's memory. The patch starts reads at 1 KiB (growing as before), grows
# the head buffer on first use, boxes queued requests and the connection task:
# four small changes in three files, no change in behaviour. Remove the
# [patch.crates-io] lines to use crates.io's hyper as it is.
#
# Needs the crates.io registry (cargo fetches the crate) and `patch`.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(awk '/^name = "hyper"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)}
[ -n "$version" ] || { echo "vendor-hyper: no hyper version in Cargo.lock; name one" >&2; exit 2; }
command -v patch >/dev/null || { echo "vendor-hyper: needs patch (apt-get install patch)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A throw-away package that depends on exactly that hyper; `cargo vendor`
# copies the crate as published (checksummed against the registry).
mkdir -p "$tmp/p/src"
cat > "$tmp/p/Cargo.toml" <<EOF
[package]
name = "fetch-hyper"
version = "0.0.0"
edition = "2021"

[dependencies]
hyper = "=$version"
EOF
: > "$tmp/p/src/lib.rs"
echo "vendor-hyper: fetching hyper $version from crates.io" >&2
(cd "$tmp/p" && cargo vendor --quiet --versioned-dirs "$tmp/v" >/dev/null)
src="$tmp/v/hyper-$version"
[ -d "$src" ] || { echo "vendor-hyper: cargo vendor gave no hyper-$version" >&2; exit 1; }
rm -f "$src/.cargo-checksum.json"

patch --quiet -d "$src" -p1 < vendor/hyper.patch
rm -rf vendor/hyper
cp -r "$src" vendor/hyper
echo "vendor-hyper: vendor/hyper is hyper $version with vendor/hyper.patch" >&2
