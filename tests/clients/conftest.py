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


def free_ports(n):
    """`n` distinct free ports: every socket stays bound until all are
    chosen, so the fake and the gateway never get the same port."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port():
    return free_ports(1)[0]


class Exited(RuntimeError):
    """The process being waited for exited before it answered."""


def wait_http(url, timeout=20, proc=None):
    """Wait until `url` answers 2xx/3xx; raise `Exited` at once if `proc`
    ends first (say, its port was taken between choosing and binding)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Exited(f"{url}: the process exited ({proc.returncode}) before it answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Stack:
    """The gateway and its fake upstream on fresh ports. A start whose
    process exits before it answers (a port taken between choosing and
    binding) is tried again on new ports, at most three times in all; a
    gateway that never answers fails with its log."""

    def __init__(self, extra_env=None):
        for attempt in range(3):
            try:
                self._start(extra_env)
                return
            except Exited:
                log = self.logs()
                self.stop()
                if attempt == 2:
                    raise RuntimeError(f"the gateway did not start; its log:\n{log}")
            except RuntimeError:
                log = self.logs()
                self.stop()
                raise RuntimeError(f"the gateway did not come up on {self.port}; its log:\n{log}")

    def _start(self, extra_env):
        self.fake_port, self.port = free_ports(2)
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
        wait_http(f"http://127.0.0.1:{self.fake_port}/__fake/requests", proc=self.fake)
        # 60 s: a cold first start on a busy CI machine; a healthy start takes well under 1 s.
        wait_http(f"http://127.0.0.1:{self.port}/health", timeout=60, proc=self.gw)
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
