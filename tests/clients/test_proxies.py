"""Outbound proxies (PROXIES) through real local proxies: pproxy serving an
HTTP CONNECT proxy (with user:password), the same behind TLS (an https://
proxy with a test CA made here) and a SOCKS5 proxy. What went through which
proxy is read from the proxies' own verbose logs (one line per tunnel, naming
its target: the fake upstream's port, different per stack)."""
import base64
import datetime
import http.server
import io
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import TOKEN, Stack, free_port, wait_http

PPROXY = os.path.join(os.path.dirname(sys.executable), "pproxy")
SECRET = "hunter2-proxy-pass"


class Proxy:
    """One pproxy process listening on `scheme://127.0.0.1:port`, logging every tunnel."""

    def __init__(self, scheme, auth=None, ssl=None, port=None, remote=None):
        self.port = port or free_port()
        listen = f"{scheme}://127.0.0.1:{self.port}" + (f"#{auth}" if auth else "")
        self.log_path = f"/tmp/pproxy-{self.port}.log"
        self.log = open(self.log_path, "w")
        # --auth 0: every connection must authenticate (pproxy otherwise
        # trusts an address that once did). --ssl cert,key: TLS on `+ssl`.
        args = [PPROXY, "-l", listen, "-v"] + (["--auth", "0"] if auth else [])
        args += ["--ssl", ",".join(ssl)] if ssl else []
        # -r tunnel://host:port: every tunnel goes there, whatever was asked.
        args += ["-r", remote] if remote else []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each log line as it happens
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 15
        while "Serving on" not in self.text():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"pproxy did not start: {self.text()}")
            time.sleep(0.05)

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def tunnels_to(self, port):
        """How many tunnels this proxy opened to 127.0.0.1:`port`."""
        return sum(1 for line in self.text().splitlines() if line.rstrip().endswith(f"-> 127.0.0.1:{port}"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def proxies():
    http = Proxy("http", auth=f"alice:{SECRET}")
    socks = Proxy("socks5")
    yield http, socks
    http.stop()
    socks.stop()


def make_test_ca(tmp):
    """A test CA (ca.pem) and a proxy certificate it signed for the name
    localhost only (cert.pem, key.pem), in `tmp`: paths (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))

    def cert(subject, issuer, pub, signer, ca):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            sans = x509.SubjectAlternativeName([x509.DNSName("localhost")])
            b = b.add_extension(sans, critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gemini-balance test proxy CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    ca = cert(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    leaf = cert(leaf_name, ca_name, key.public_key(), ca_key, False)
    paths = [os.path.join(tmp, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    for path, data in zip(paths, (
        ca.public_bytes(serialization.Encoding.PEM),
        leaf.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )):
        with open(path, "wb") as f:
            f.write(data)
    return paths


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory):
    """An HTTP CONNECT proxy behind TLS (pproxy `http+ssl`, user alice) with a
    certificate of a test CA; yields (proxy, ca_path)."""
    ca, cert, key = make_test_ca(str(tmp_path_factory.mktemp("proxy-ca")))
    p = Proxy("http+ssl", auth=f"alice:{SECRET}", ssl=(cert, key))
    yield p, ca
    p.stop()


def https_url(p, password=SECRET, host="localhost"):
    return f"https://alice:{password}@{host}:{p.port}"


def http_url(p, password=SECRET):
    return f"http://alice:{password}@127.0.0.1:{p.port}"


def socks_url(p):
    return f"socks5://127.0.0.1:{p.port}"


def get(stack, path):
    req = urllib.request.Request(stack.base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def chat(stack, content="hi"):
    """A chat call with one user message: (status, JSON answer)."""
    message = {"role": "user", "content": content}
    body = json.dumps({"model": "gemini-2.5-flash", "messages": [message]}).encode()
    req = urllib.request.Request(
        stack.base + "/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def mapping(stack):
    """key id → the proxy (masked) it goes through when none rests."""
    view = json.loads(get(stack, "/admin/proxies"))
    return {k["id"]: k["proxy"] for k in view["keys"]}, view


def keys(n, tag):
    return [f"key-{tag}-{i:04d}-padding-000000" for i in range(n)]


def key_id(key):
    """The key's id as /admin/keys shows it."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def test_each_key_goes_through_its_own_proxy(proxies):
    http, socks = proxies
    urls = [http_url(http), socks_url(socks)]
    pool = keys(24, "own")  # random ports, random homes: none empty but with odds 2^-23
    s = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps(pool)})
    try:
        m, view = mapping(s)
        shown = [p["proxy"] for p in view["proxies"]]
        assert shown == [f"http://alice:****@127.0.0.1:{http.port}", socks_url(socks)]
        assert set(m) == {key_id(k) for k in pool}
        assert sorted(p["keys"] for p in view["proxies"]) == sorted(list(m.values()).count(p) for p in shown)
    finally:
        s.stop()
    # One key of each proxy, alone in a gateway: its calls reach the fake
    # through its own proxy, and never through the other one.
    for home, other in ((shown[0], socks), (shown[1], http)):
        key = next(k for k in pool if m[key_id(k)] == home)
        st = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps([key])})
        try:
            for _ in range(3):
                status, body = chat(st)
                assert status == 200, body
            mine = http if other is socks else socks
            assert mine.tunnels_to(st.fake_port) >= 1, mine.text()[-2000:]
            assert other.tunnels_to(st.fake_port) == 0, other.text()[-2000:]
            assert len(st.fake_requests()) >= 3
        finally:
            st.stop()


def test_adding_a_proxy_moves_only_the_keys_it_wins(proxies):
    http, socks = proxies
    extra = Proxy("http")
    pool = keys(60, "stable")
    try:
        two = [http_url(http), socks_url(socks)]
        s = Stack({"PROXIES": json.dumps(two), "API_KEYS": json.dumps(pool)})
        try:
            before, _ = mapping(s)
        finally:
            s.stop()
        s = Stack({"PROXIES": json.dumps(two + [f"http://127.0.0.1:{extra.port}"]), "API_KEYS": json.dumps(pool)})
        try:
            after, _ = mapping(s)
            new = f"http://127.0.0.1:{extra.port}"
            moved = [k for k in before if after[k] != before[k]]
            assert all(after[k] == new for k in moved), (before, after)
            assert 8 <= len(moved) <= 32, len(moved)  # about a third of 60
            # Traffic follows the mapping: 60 calls over 60 keys reach every proxy.
            for _ in range(60):
                status, body = chat(s)
                assert status == 200, body
            for p in (http, socks, extra):
                assert p.tunnels_to(s.fake_port) >= 1, p.text()[-2000:]
        finally:
            s.stop()
    finally:
        extra.stop()


def test_a_dead_proxy_rests_and_no_key_is_blamed(proxies):
    http, socks = proxies
    dead = free_port()  # nothing listens there
    urls = [f"http://bob:{SECRET}@127.0.0.1:{dead}", http_url(http, password="wrong-" + SECRET), socks_url(socks)]
    # The proxies' ports are random, so are the keys' homes: with 30 keys each
    # of the 3 proxies is home to none with odds (2/3)^30 ≈ 5e-6, and 30 calls
    # in turn reach every key.
    s = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps(keys(30, "dead")), "MAX_RETRIES": "0"})
    try:
        for _ in range(30):
            status, body = chat(s)
            assert status == 200, body
        assert socks.tunnels_to(s.fake_port) >= 1
        assert http.tunnels_to(s.fake_port) == 0  # the wrong password never got a tunnel
        view = json.loads(get(s, "/admin/proxies"))
        states = {p["proxy"]: p for p in view["proxies"]}
        dead_p = states[f"http://bob:****@127.0.0.1:{dead}"]
        auth_p = states[f"http://alice:****@127.0.0.1:{http.port}"]
        for p in (dead_p, auth_p):
            assert p["keys"] >= 1, view  # the 30 keys' homes include both
            assert p["state"] == "resting" and p["failures"] >= 1 and p["last_error"], p
        assert "refused" in dead_p["last_error"] and "authorization" in auth_p["last_error"], view
        assert states[socks_url(socks)]["state"] == "ok"
        # No key cooled down, was disabled or counted a failure for it.
        for k in json.loads(get(s, "/admin/keys"))["keys"]:
            assert k["state"] == "active" and not k["cooling"], k
            assert k["usage_today"]["failures"] == 0, k
        logs = json.loads(get(s, "/admin/logs"))["entries"]
        assert logs and all(e["google_status"] == "PROXY_FAILED" and e["key_id"] == "" for e in logs), logs
        assert any(f"http://bob:****@127.0.0.1:{dead}" in e["message"] for e in logs), logs
        # On demand: the check reports each proxy, the live one passing.
        checked = json.loads(get(s, "/admin/proxies?check=true"))["check"]
        result = {c["proxy"]: c["ok"] for c in checked}
        assert result == {dead_p["proxy"]: False, auth_p["proxy"]: False, socks_url(socks): True}, checked
        # Credentials appear nowhere unmasked.
        seen = [get(s, p) for p in ("/admin/proxies", "/admin/logs", "/status", "/admin/config")]
        time.sleep(0.2)
        seen.append(s.logs())
        for text in seen:
            assert SECRET not in text
        assert "bob:****@" in seen[0] and "bob:****@" in seen[-1]
    finally:
        s.stop()


def test_every_proxy_down_is_a_503_never_a_direct_call():
    dead = free_port()
    s = Stack({"PROXIES": json.dumps([f"socks5://u:{SECRET}@127.0.0.1:{dead}"])})
    try:
        status, body = chat(s)
        assert status == 503, body
        assert body["error"]["code"] == "proxies_down", body
        assert "PROXIES" in body["error"]["message"]
        req = urllib.request.Request(
            s.base + "/v1beta/models/gemini-2.5-flash:generateContent",
            data=json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
            headers={"x-goog-api-key": TOKEN, "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 503
        err = json.load(e.value)["error"]
        assert err["code"] == 503 and "PROXIES" in err["message"], err
        assert s.fake_requests() == []  # never sent around the proxy
        for k in json.loads(get(s, "/admin/keys"))["keys"]:
            assert k["state"] == "active" and not k["cooling"], k
        assert SECRET not in s.logs()
    finally:
        s.stop()


def test_a_silent_proxy_is_the_proxys_failure_not_a_timeout_of_the_key(proxies):
    """A proxy that accepts the connection and never answers the CONNECT
    rests after the handshake timeout (15 s); the call goes on through the
    key's next proxy and no key is charged."""
    _, socks = proxies
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    urls = [f"http://127.0.0.1:{silent.getsockname()[1]}", socks_url(socks)]
    s = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps(keys(24, "silent")), "MAX_RETRIES": "0"})
    try:
        for _ in range(24):  # 24 keys in turn: some are homed on the silent proxy but with odds 2^-24
            status, body = chat(s)
            assert status == 200, body
        assert held, "the gateway never tried the silent proxy"
        view = json.loads(get(s, "/admin/proxies"))
        first = view["proxies"][0]
        assert first["state"] == "resting" and "no tunnel" in first["last_error"], first
        for k in json.loads(get(s, "/admin/keys"))["keys"]:
            assert k["state"] == "active" and not k["cooling"], k
            assert k["usage_today"]["failures"] == 0, k
    finally:
        s.stop()
        stop.set()
        t.join()
        for c in held:
            c.close()
        silent.close()


def test_an_https_proxy_carries_calls_inside_tls_to_the_proxy(tls_proxy):
    """TLS to the proxy (its name checked against PROXY_CA_FILE), CONNECT with
    the password inside it, TLS-or-not to the upstream inside the tunnel."""
    p, ca = tls_proxy
    s = Stack({"PROXIES": json.dumps([https_url(p)]), "PROXY_CA_FILE": ca, "MAX_RETRIES": "0"})
    try:
        for _ in range(3):
            status, body = chat(s)
            assert status == 200, body
        assert p.tunnels_to(s.fake_port) >= 1, p.text()[-2000:]
        assert len(s.fake_requests()) == 3
        view = json.loads(get(s, "/admin/proxies"))
        shown = f"https://alice:****@localhost:{p.port}"
        assert [x["proxy"] for x in view["proxies"]] == [shown], view
        assert view["proxies"][0]["state"] == "ok" and view["proxies"][0]["failures"] == 0, view
        checked = json.loads(get(s, "/admin/proxies?check=true"))["check"]
        assert checked == [{"proxy": shown, "ok": True, "ms": checked[0]["ms"]}], checked
        config = get(s, "/admin/config")
        assert shown in config and ca in config
        seen = [get(s, x) for x in ("/admin/proxies", "/admin/logs", "/status")] + [config]
        time.sleep(0.2)
        seen.append(s.logs())
        for text in seen:
            assert SECRET not in text
    finally:
        s.stop()


def test_an_https_proxy_failing_tls_or_auth_rests_and_no_key_is_blamed(tls_proxy, proxies):
    """A wrong password, and a certificate not trusted (no PROXY_CA_FILE) or
    not for the name asked (127.0.0.1: it names only localhost), are the proxy's failures: it rests,
    the call goes on through the socks proxy, no key is charged."""
    p, ca = tls_proxy
    _, socks = proxies
    cases = [
        ({"PROXY_CA_FILE": ca}, https_url(p, password="wrong-" + SECRET), "authorization"),
        ({}, https_url(p), "certificate"),
        ({"PROXY_CA_FILE": ca}, https_url(p, host="127.0.0.1"), "certificate"),
    ]
    for env, url, why in cases:
        s = Stack({**env, "PROXIES": json.dumps([url, socks_url(socks)]),
                   "API_KEYS": json.dumps(keys(24, "tlsfail")), "MAX_RETRIES": "0"})
        try:
            for _ in range(24):  # 24 keys in turn: some are homed on the https proxy
                status, body = chat(s)
                assert status == 200, body
            assert socks.tunnels_to(s.fake_port) >= 1
            assert p.tunnels_to(s.fake_port) == 0, p.text()[-2000:]
            view = json.loads(get(s, "/admin/proxies"))
            first = view["proxies"][0]
            assert first["proxy"].startswith("https://alice:****@"), first
            assert first["state"] == "resting" and first["failures"] >= 1, first
            assert why in first["last_error"].lower(), first
            for k in json.loads(get(s, "/admin/keys"))["keys"]:
                assert k["state"] == "active" and not k["cooling"], k
                assert k["usage_today"]["failures"] == 0, k
            logs = json.loads(get(s, "/admin/logs"))["entries"]
            assert logs and all(e["google_status"] == "PROXY_FAILED" and e["key_id"] == "" for e in logs), logs
            time.sleep(0.2)
            for text in (json.dumps(view), json.dumps(logs), s.logs()):
                assert SECRET not in text
        finally:
            s.stop()


# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class Served:
    """A local HTTP server answering every GET with the PNG, counting them."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_uploads_go_through_the_keys_proxy():
    """BASE_URL names a host that never resolves (gemini.invalid); only the
    proxy, sending every tunnel to the fake, reaches it. A google-genai upload
    (resumable, two chunks streamed), a multipart upload and generate with
    the file all succeed: every call of theirs went through the proxy."""
    from google import genai
    from google.genai import types

    port = free_port()
    s = Stack({
        "BASE_URL": "http://gemini.invalid/v1beta",
        "PROXIES": json.dumps([f"http://alice:{SECRET}@127.0.0.1:{port}"]),
        "MAX_RETRIES": "0",
    })
    p = Proxy("http", auth=f"alice:{SECRET}", port=port, remote=f"tunnel://127.0.0.1:{s.fake_port}")
    try:
        c = genai.Client(api_key=TOKEN, http_options={"base_url": f"{s.base}/gemini"})
        size = 8 * 1024 * 1024 + 4321  # two chunks
        f = c.files.upload(file=io.BytesIO(b"z" * size), config=types.UploadFileConfig(mime_type="text/plain"))
        assert f.size_bytes == size
        uploads = [r for r in s.fake_requests() if r["path"].startswith("/upload/")]
        assert len(uploads) == 3, [r["path"] for r in uploads]  # start and two chunks
        r = c.models.generate_content(model="gemini-2.5-flash", contents=[f, "what is in it?"])
        assert r.text
        body = "--b\r\nContent-Type: application/json\r\n\r\n{\"file\": {\"display_name\": \"m\"}}\r\n" \
               "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
        req = urllib.request.Request(s.base + "/upload/v1beta/files", data=body.encode(), headers={
            "x-goog-api-key": TOKEN, "x-goog-upload-protocol": "multipart",
            "content-type": "multipart/related; boundary=b"})
        with urllib.request.urlopen(req, timeout=30) as res:
            assert json.load(res)["file"]["name"].startswith("files/")
        assert p.text().count("-> gemini.invalid:80") >= 2, p.text()[-2000:]  # the start; the uploads' own
        assert SECRET not in s.logs()
    finally:
        s.stop()
        p.stop()


def image_chat(stack, url):
    return chat(stack, [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}])


def test_image_fetches_rotate_over_the_proxies(proxies):
    """image_url fetches go through the proxies in turn (whatever key the
    call has), a dead proxy rests and the fetch goes on through the next."""
    http, socks = proxies
    img = Served()
    dead = free_port()
    urls = [http_url(http), f"http://127.0.0.1:{dead}", socks_url(socks)]
    s = Stack({"PROXIES": json.dumps(urls), "ALLOW_PRIVATE_FETCH": "true"})
    try:
        for i in range(6):
            status, body = image_chat(s, f"http://127.0.0.1:{img.port}/cat-{i}.png")
            assert status == 200, body
        assert len(img.hits) == 6, img.hits
        for p in (http, socks):
            assert p.tunnels_to(img.port) >= 2, p.text()[-2000:]
        view = json.loads(get(s, "/admin/proxies"))
        assert view["proxies"][1]["state"] == "resting", view
    finally:
        s.stop()
        img.stop()


def test_the_keepalive_ping_goes_through_a_proxy(proxies):
    _, socks = proxies
    ping = Served()
    s = Stack({
        "PROXIES": json.dumps([socks_url(socks)]),
        "KEEPALIVE_URL": f"http://127.0.0.1:{ping.port}/health",
        "KEEPALIVE_MINUTES": "0.02",
    })
    try:
        deadline = time.time() + 20
        while not ping.hits and time.time() < deadline:
            time.sleep(0.1)
        assert ping.hits, "no keep-alive ping arrived"
        assert socks.tunnels_to(ping.port) >= 1, socks.text()[-2000:]
    finally:
        s.stop()
        ping.stop()


def test_an_upload_through_a_dead_proxy_is_the_proxys_failure(proxies):
    """A chunk whose key's proxy died since the start: 502 naming the proxy
    (masked), the proxy rests, the key is not charged; the client's retry of
    the chunk goes through the key's next proxy and finishes the upload."""
    _, socks = proxies
    mortal = Proxy("http", auth=f"bob:{SECRET}")
    urls = [f"http://bob:{SECRET}@127.0.0.1:{mortal.port}", socks_url(socks)]
    pool = keys(24, "upload")
    try:
        s = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps(pool)})
        try:
            m, _ = mapping(s)
        finally:
            s.stop()
        shown = f"http://bob:****@127.0.0.1:{mortal.port}"
        key = next(k for k in pool if m[key_id(k)] == shown)
        s = Stack({"PROXIES": json.dumps(urls), "API_KEYS": json.dumps([key])})
        try:
            data = b"chunk-data" * 1000
            start = urllib.request.Request(s.base + "/upload/v1beta/files", data=b'{"file": {"display_name": "d"}}', headers={
                "x-goog-api-key": TOKEN, "content-type": "application/json",
                "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": str(len(data)),
                "x-goog-upload-header-content-type": "text/plain"})
            with urllib.request.urlopen(start, timeout=30) as r:
                url = r.headers["x-goog-upload-url"]
            assert mortal.tunnels_to(s.fake_port) == 1, mortal.text()[-2000:]
            mortal.stop()

            def chunk():
                req = urllib.request.Request(url, data=data, headers={
                    "x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        return r.status, json.load(r)
                except urllib.error.HTTPError as e:
                    return e.code, json.load(e)

            status, body = chunk()
            assert status == 502, body
            assert shown in body["error"]["message"] and SECRET not in json.dumps(body), body
            view = json.loads(get(s, "/admin/proxies"))
            assert view["proxies"][0]["state"] == "resting", view
            status, body = chunk()
            assert status == 200 and body["file"]["sizeBytes"] in (len(data), str(len(data))), body
            assert socks.tunnels_to(s.fake_port) >= 1
            for k in json.loads(get(s, "/admin/keys"))["keys"]:
                assert k["state"] == "active" and not k["cooling"], k
                assert k["usage_today"]["failures"] == 0, k
        finally:
            s.stop()
    finally:
        if mortal.proc.poll() is None:
            mortal.stop()
