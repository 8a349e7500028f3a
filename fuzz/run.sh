#!/usr/bin/env bash
# Run every fuzz target (or those named) for SECONDS each (default 60).
#
#   fuzz/run.sh                 # all seven targets, 60 s each
#   SECONDS_EACH=300 fuzz/run.sh sse_parser config
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer wants a nightly
# compiler; on stable, RUSTC_BOOTSTRAP=1 unlocks the flags it needs. The
# seeds in fuzz/corpus/<target>/ are copied to a scratch corpus so a run
# never grows the committed seeds; crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${SECONDS_EACH:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(chat_request gemini_response stream_translator sse_parser config anthropic responses)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp corpus/"$t"/* "$work/$t"/
  echo "== $t: ${secs}s"
  cargo fuzz run --sanitizer none "$t" "$work/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 2>&1 \
    | grep -E "^(#[0-9]+ +(DONE|INITED)|Done|==|SUMMARY|artifact_prefix|Test unit written|thread '.*' panicked)" || true
  if [ -n "$(ls -A artifacts/"$t" 2>/dev/null)" ]; then
    echo "!! $t: crash artifacts in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
