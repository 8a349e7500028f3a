"""Heartbeats (issue 17) through the official SDKs: while a stream is silent
for HEARTBEAT_SECONDS the gateway sends `: keep-alive` comments on OpenAI
routes and empty lines on native SSE; the `openai` and `google-genai` SDKs
must ignore them and read the same answer. Each test also reads the raw bytes
to prove the heartbeats were really there. With NONSTREAM_KEEPALIVE a slow
non-streamed answer starts with spaces; both SDKs must parse it."""
import json
import urllib.request

import openai
import pytest
from google import genai

from conftest import TOKEN, Stack

MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def beating():
    s = Stack({"HEARTBEAT_SECONDS": "0.1", "NONSTREAM_KEEPALIVE": "true"})
    yield s
    s.stop()


def raw(stack, path, body, headers):
    req = urllib.request.Request(stack.base + path, data=json.dumps(body).encode(), method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def chat_body(text):
    return {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}


def test_openai_sdk_ignores_keep_alive_before_and_between_chunks(beating):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{beating.base}/v1")
    for text, path in [("[[first=800]] hi", "/v1/chat/completions"), ("[[events=3 gap=400]] hi", "/v1/chat/completions")]:
        body = raw(beating, path, chat_body(text), auth)
        assert body.count(": keep-alive\n\n") >= 2, body
        stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], stream=True)
        got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert got.strip(), got
        assert "keep-alive" not in got


def test_openai_sdk_ignores_keep_alive_on_openai_v1(beating):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    text = "[[events=3 gap=400]] hi"
    body = raw(beating, "/openai/v1/chat/completions", chat_body(text), auth)
    assert body.count(": keep-alive\n\n") >= 2, body
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{beating.base}/openai/v1")
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], stream=True)
    got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(got.split()) == 3, got


def test_google_genai_sdk_ignores_empty_line_heartbeats(beating):
    text = "[[events=3 gap=400]] hi"
    body = raw(
        beating,
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": text}]}]},
        {"x-goog-api-key": TOKEN, "Content-Type": "application/json"},
    )
    assert body.count("\r\n\r\n\n") >= 2, repr(body)
    client = genai.Client(api_key=TOKEN, http_options={"base_url": f"{beating.base}/gemini", "api_version": "v1beta"})
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=text))
    got = "".join(c.text or "" for c in chunks)
    assert len(chunks) == 3 and len(got.split()) == 3, got


def test_google_genai_sdk_reads_a_stream_committed_before_its_first_event(beating):
    text = "[[first=800]] hi"
    body = raw(
        beating,
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": text}]}]},
        {"x-goog-api-key": TOKEN, "Content-Type": "application/json"},
    )
    assert body.startswith("\n\n\n"), repr(body)
    client = genai.Client(api_key=TOKEN, http_options={"base_url": f"{beating.base}/gemini", "api_version": "v1beta"})
    got = "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents=text))
    assert "hi" in got, got


def test_sdks_parse_a_nonstreamed_answer_after_keepalive_spaces(beating):
    text = "[[first=800]] hi"
    body = raw(beating, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": text}]},
               {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert body.startswith("   "), repr(body[:40])
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{beating.base}/v1")
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
    assert r.choices[0].message.content == "Echo: hi"
    body = raw(beating, f"/v1beta/models/{MODEL}:generateContent", {"contents": [{"role": "user", "parts": [{"text": text}]}]},
               {"x-goog-api-key": TOKEN, "Content-Type": "application/json"})
    assert body.startswith("   "), repr(body[:40])
    gclient = genai.Client(api_key=TOKEN, http_options={"base_url": f"{beating.base}/gemini", "api_version": "v1beta"})
    g = gclient.models.generate_content(model=MODEL, contents=text)
    assert "hi" in g.text, g.text
