#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by callgrind: the
# repeatable measure behind the "what each change bought" table in
# BENCHMARKS.md (wall-clock runs on a shared 2-vCPU machine vary by ±30 %;
# instruction counts vary by well under 1 %).
#
#   scripts/instructions.sh [N]        # N requests of each kind (default 2000; N/8 streams)
#   KEYS=10000 scripts/instructions.sh # the same with a pool of 10,000 keys (default 3)
#
# Builds the release binary with symbols, starts the fake upstream and the
# gateway under `valgrind --tool=callgrind` (instrumentation switched on only
# after 200 warm-up requests), sends N sequential requests of each kind over
# one keep-alive connection (native, OpenAI, and OpenAI streams of 64 events),
# and prints user-space instructions per request
# (the kernel's share is not counted). Needs valgrind and python3.
# Annotate a run with: callgrind_annotate --inclusive=yes target/callgrind/<kind>.out.1
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000}"
KEYS="${KEYS:-3}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
DIR="${BENCH_TARGET_DIR:-target}/callgrind"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-target}/instructions"
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/gemini-balance"
mkdir -p "$DIR"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FAKE_PORT=$(port)
GW_PORT=$(port)
"$BIN" fake --port "$FAKE_PORT" >/dev/null 2>&1 &
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true' EXIT

# The pool: KEYS keys as a JSON list (the three of earlier runs by default).
pool_keys() {
    if [ "$KEYS" = 3 ]; then echo '["k-one","k-two","k-three"]'; return; fi
    python3 -c 'import json, sys; print(json.dumps([f"k-{i:06d}" for i in range(int(sys.argv[1]))]))' "$KEYS"
}

# One keep-alive client sending `count` requests of `kind`.
drive() {
    python3 - "$GW_PORT" "$1" "$2" <<'EOF'
import http.client, sys
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
native = ("/v1beta/models/gemini-2.5-flash:generateContent",
          '{"contents":[{"role":"user","parts":[{"text":"Hello, how are you?"}]}]}',
          {"Content-Type": "application/json", "x-goog-api-key": "sk-instr"})
openai = ("/v1/chat/completions",
          '{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello, how are you?"}]}',
          {"Content-Type": "application/json", "Authorization": "Bearer sk-instr"})
stream = ("/v1/chat/completions",
          '{"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"[[events=64]] Hello"}]}',
          {"Content-Type": "application/json", "Authorization": "Bearer sk-instr"})
path, body, headers = {"native": native, "openai": openai, "stream": stream}[kind]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("POST", path, body, headers)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
EOF
}

for kind in native openai stream; do
    n=$N
    if [ "$kind" = stream ]; then n=$((N / 8 > 50 ? N / 8 : 50)); fi
    rm -f "$DIR/$kind.out"*
    env -i PATH="$PATH" PORT="$GW_PORT" API_KEYS="$(pool_keys)" \
        ALLOWED_TOKENS='["sk-instr"]' BASE_URL="http://127.0.0.1:$FAKE_PORT/v1beta" ENV_FILE=/nonexistent \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/$kind.out" \
        "$BIN" serve >/dev/null 2>&1 &
    GW=$!
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $GW_PORT), 0.2)" 2>/dev/null && break
        sleep 0.2
    done
    drive "$kind" 200
    callgrind_control -i on "$GW" >/dev/null 2>&1
    drive "$kind" "$n"
    callgrind_control -i off "$GW" >/dev/null 2>&1
    callgrind_control -d "$GW" >/dev/null 2>&1
    kill "$GW"
    wait "$GW" 2>/dev/null || true
    total=$(callgrind_annotate "$DIR/$kind.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    per=$((total / n))
    case $kind in
        stream) printf '%-7s %8d instructions per OpenAI stream of 64 events (%d per event)\n' "$kind" "$per" $((per / 64)) ;;
        *) printf '%-7s %8d instructions per request\n' "$kind" "$per" ;;
    esac
done
