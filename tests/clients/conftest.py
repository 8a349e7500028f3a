"""Start the real gemini-balance binary and its fake Gemini upstream (the
`fake-gemini` binary of crates/fake-gemini, with every feature: files, images,
speech, Gemini's OpenAI-compatible layer) for the client tests."""
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

BIN = os.environ.get("GEMINI_BALANCE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "gemini-balance"))
# The gateway's own `fake` subcommand serves the lean demo fake (no files or
# media); the client tests need the whole one.
FAKE_BIN = os.environ.get("GEMINI_FAKE_BIN", os.path.join(os.path.dirname(BIN), "fake-gemini"))
TOKEN = "sk-client-test-token-42"
KEYS = ["key-one-000000001", "key-two-000000002", "key-three-00000003"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Stack:
    def __init__(self, extra_env=None):
        self.fake_port = free_port()
        self.port = free_port()
        self.fake = subprocess.Popen([FAKE_BIN, "--port", str(self.fake_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEYS", "ALLOWED_TOKENS"))}
        env.update({
            "API_KEYS": json.dumps(KEYS),
            "ALLOWED_TOKENS": json.dumps([TOKEN]),
            "BASE_URL": f"http://127.0.0.1:{self.fake_port}/v1beta",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "CHECK_INTERVAL_HOURS": "0",
            "KEEPALIVE_MINUTES": "0",
            "SEARCH_MODELS": '["gemini-2.5-flash"]',
            "ENV_FILE": "/nonexistent",
        })
        env.update(extra_env or {})
        self.log_path = f"/tmp/gemini-balance-client-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.gw = subprocess.Popen([BIN], env=env, stdout=self.log, stderr=self.log)
        wait_http(f"http://127.0.0.1:{self.fake_port}/__fake/requests")
        wait_http(f"http://127.0.0.1:{self.port}/health")
        self.base = f"http://127.0.0.1:{self.port}"

    def fake_requests(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.fake_port}/__fake/requests") as r:
            return json.load(r)

    def clear(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.fake_port}/__fake/clear", method="POST", data=b"")
        urllib.request.urlopen(req).read()

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        for p in (self.gw, self.fake):
            p.terminate()
        for p in (self.gw, self.fake):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    yield s
    s.stop()
