#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests, then the client tests
# with the official `openai` and `google-genai` Python packages against the
# real binary. Installs what it needs (a Python virtualenv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

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
GEMINI_BALANCE_BIN="$PWD/target/debug/gemini-balance" "$VENV/bin/python" -m pytest -q tests/clients
