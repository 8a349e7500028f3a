"""The official `openai` Python package against the gateway, exactly as users
call it: base_url = http://HOST/hf/v1 and a bearer token."""
import base64
import json

import openai
import pytest
from pydantic import BaseModel

from conftest import TOKEN, KEYS


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=f"{stack.base}/hf/v1", api_key=TOKEN, max_retries=0)


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "gemini-2.5-flash" in ids
    assert "gemini-embedding-001" in ids
    assert "gemini-2.5-flash-search" in ids
    assert not any(i.startswith("models/") for i in ids)


def test_chat_plain(client):
    r = client.chat.completions.create(model="gemini-2.5-flash", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello gateway"},
    ])
    assert r.choices[0].message.content == "Echo: Hello gateway"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens > 0
    assert r.model == "gemini-2.5-flash"


def test_chat_stream(client):
    stream = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "stream these seven words right now please"}],
        stream=True, stream_options={"include_usage": True})
    text, finish, usage, n = "", None, None, 0
    for chunk in stream:
        n += 1
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "Echo: stream these seven words right now please"
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0
    assert n >= 4


def test_embeddings(client):
    # The SDK asks for base64 by default and decodes it itself.
    r = client.embeddings.create(model="gemini-embedding-001", input=["first text", "second text"], dimensions=16)
    assert len(r.data) == 2
    assert len(r.data[0].embedding) == 16
    assert all(isinstance(x, float) for x in r.data[0].embedding)
    assert r.data[0].embedding != r.data[1].embedding
    norm = sum(x * x for x in r.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    f = client.embeddings.create(model="gemini-embedding-001", input="first text", dimensions=16, encoding_format="float")
    assert [round(x, 5) for x in f.data[0].embedding] == [round(x, 5) for x in r.data[0].embedding]


def test_wrong_token_is_authentication_error(stack):
    bad = openai.OpenAI(base_url=f"{stack.base}/hf/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gemini-9-ultra-unknown-zz", messages=[{"role": "user", "content": "x"}])


def test_keys_never_in_logs(stack, client):
    client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])
    logs = stack.logs()
    assert "POST /hf/v1/chat/completions 200" in logs
    for k in KEYS + [TOKEN]:
        assert k not in logs
