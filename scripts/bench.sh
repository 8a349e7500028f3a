#!/usr/bin/env bash
# The overhead benchmark: builds release binaries (cargo's bench profile =
# release: LTO, one codegen unit, stripped), starts the fake upstream and the
# gateway as separate processes pinned to separate cores, and prints one table
# (also written to target/bench/overhead.json). See BENCHMARKS.md.
# BENCH_ONLY=keys10k,quota runs only the key scheduler's sections (10,000
# keys of which 99 % cool, against 3; per-minute limits offered twice over,
# QUOTA_AWARE on and off; BENCH_QUOTA_SECS sets that window, default 120).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-target}" cargo bench --bench overhead "$@"
