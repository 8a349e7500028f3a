"""The official `google-genai` package against the gateway's native routes, as
users configure it: base_url = http://HOST/gemini, /hf/gemini, or the bare root
(with the SDK's default API version v1, and with api_version="v1beta"), the
token as the API key. Also the `openai` package against Gemini's own
OpenAI-compatible endpoint at /openai/v1, and callers' own keys."""
import json
import urllib.request

import openai
import pytest
from google import genai
from google.genai import errors, types

from conftest import KEYS, TOKEN, Stack

MODEL = "gemini-2.5-flash"

# (id, base path, api_version or None for the SDK's default, upstream version)
VARIANTS = [
    ("gemini-default", "/gemini", None, "v1"),
    ("gemini-v1beta", "/gemini", "v1beta", "v1beta"),
    ("hf-gemini", "/hf/gemini", None, "v1"),
    ("root-default", "", None, "v1"),
    ("root-v1beta", "", "v1beta", "v1beta"),
]


def make_client(stack, path, api_version, api_key=TOKEN):
    opts = {"base_url": f"{stack.base}{path}"}
    if api_version:
        opts["api_version"] = api_version
    return genai.Client(api_key=api_key, http_options=opts)


@pytest.fixture(params=VARIANTS, ids=[v[0] for v in VARIANTS])
def variant(request, stack):
    _, path, api_version, upstream = request.param
    return make_client(stack, path, api_version), upstream


def upstream_calls(stack, suffix):
    return [r for r in stack.fake_requests() if r["path"].endswith(suffix)]


def test_generate_content(stack, variant):
    client, version = variant
    stack.clear()
    r = client.models.generate_content(model=MODEL, contents="Hello genai")
    assert r.text == "Echo: Hello genai"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.total_token_count > 0
    (call,) = upstream_calls(stack, ":generateContent")
    assert call["path"] == f"/{version}/models/{MODEL}:generateContent"
    assert call["api_key"] in KEYS
    assert TOKEN not in json.dumps(call)


def test_generate_content_with_config_reaches_upstream_unchanged(stack, variant):
    client, _ = variant
    stack.clear()
    r = client.models.generate_content(
        model=MODEL,
        contents="config please",
        config=types.GenerateContentConfig(
            system_instruction="be brief", candidate_count=2, temperature=0.5,
            safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE")],
        ),
    )
    assert len(r.candidates) == 2
    assert r.candidates[1].content.parts[0].text == "[1] Echo: config please"
    (call,) = upstream_calls(stack, ":generateContent")
    body = json.loads(call["body"])
    assert body["generationConfig"]["candidateCount"] == 2
    assert body["systemInstruction"]["parts"][0]["text"] == "be brief"
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_generate_content_stream(stack, variant):
    client, version = variant
    stack.clear()
    chunks = list(client.models.generate_content_stream(
        model=MODEL, contents="stream these seven words right now please"))
    assert len(chunks) == 2  # the fake sends four words per event
    assert "".join(c.text or "" for c in chunks) == "Echo: stream these seven words right now please"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    (call,) = upstream_calls(stack, ":streamGenerateContent")
    assert call["path"] == f"/{version}/models/{MODEL}:streamGenerateContent"
    assert call["query"] == "alt=sse"


def test_count_tokens(variant):
    client, _ = variant
    r = client.models.count_tokens(model=MODEL, contents="one two three four")
    assert r.total_tokens == 5  # the fake counts max(words, ceil(chars / 4))


def test_embed_content(stack, variant):
    client, version = variant
    stack.clear()
    r = client.models.embed_content(
        model="gemini-embedding-001", contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=16))
    assert len(r.embeddings) == 2
    assert all(len(e.values) == 16 for e in r.embeddings)
    assert r.embeddings[0].values != r.embeddings[1].values
    assert stack.fake_requests()[-1]["path"].startswith(f"/{version}/models/gemini-embedding-001:")


def test_models_list_pages_through_everything(stack, variant):
    client, version = variant
    stack.clear()
    names = [m.name for m in client.models.list(config={"page_size": 2})]
    pages = [r for r in stack.fake_requests() if r["path"] == f"/{version}/models"]
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{stack.fake_port}/v1beta/models?pageSize=1000",
            headers={"x-goog-api-key": KEYS[0]})) as f:
        want = [m["name"] for m in json.load(f)["models"]]
    assert names == want
    assert len(pages) == (len(want) + 1) // 2
    assert all("pageSize=2" in (r["query"] or "") for r in pages)
    assert not any(n.endswith("-search") for n in names), "no derived models unless NATIVE_DERIVED_MODELS"
    m = client.models.get(model=MODEL)
    assert m.name == f"models/{MODEL}"
    assert m.input_token_limit > 0


def test_function_calling(variant):
    client, _ = variant
    weather = types.FunctionDeclaration(
        name="get_weather", description="Weather for a city",
        parameters=types.Schema(type="OBJECT", properties={
            "city": types.Schema(type="STRING"),
            "unit": types.Schema(type="STRING", enum=["celsius", "fahrenheit"])},
            required=["city"]))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[weather])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    r = client.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)
    (call,) = r.function_calls
    assert call.name == "get_weather"
    assert isinstance(call.args["city"], str)
    assert call.args.get("unit", "celsius") in ("celsius", "fahrenheit")
    history = [
        types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
        r.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(
            name="get_weather", response={"temp_c": 21})]),
    ]
    r2 = client.models.generate_content(model=MODEL, contents=history, config=config)
    assert r2.text == 'Tool get_weather returned: {"temp_c":21}'


def test_errors_come_back_as_google_errors(stack):
    client = make_client(stack, "/gemini", None)
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="gemini-9-ultra-unknown", contents="x")
    assert e.value.code == 404
    assert e.value.status == "NOT_FOUND"
    assert "gemini-9-ultra-unknown" in e.value.message
    with pytest.raises(errors.ClientError) as e:
        list(client.models.generate_content_stream(model="gemini-9-ultra-unknown", contents="x"))
    assert e.value.code == 404
    bad = make_client(stack, "/gemini", "v1beta", api_key="sk-not-a-token")
    with pytest.raises(errors.ClientError) as e:
        bad.models.generate_content(model=MODEL, contents="x")
    assert e.value.code == 403
    assert e.value.status == "PERMISSION_DENIED"


def test_gzip_from_upstream_reaches_the_sdk_intact(stack):
    """The SDK accepts gzip, the fake then gzips, the gateway passes it through."""
    client = make_client(stack, "/gemini", None)
    stack.clear()
    assert client.models.generate_content(model=MODEL, contents="zipped").text == "Echo: zipped"
    (call,) = upstream_calls(stack, ":generateContent")
    accept = dict((k, v) for k, v in call["headers"]).get("accept-encoding", "")
    assert "gzip" in accept


def test_keys_never_in_logs(stack):
    client = make_client(stack, "", None)
    client.models.generate_content(model=MODEL, contents="log check")
    logs = stack.logs()
    assert "POST /v1/models/gemini-2.5-flash:generateContent 200" in logs
    for k in KEYS + [TOKEN]:
        assert k not in logs


# --- Gemini's own OpenAI-compatible endpoint, through the gateway ----------

@pytest.fixture(scope="module")
def compat(stack):
    return openai.OpenAI(base_url=f"{stack.base}/openai/v1", api_key=TOKEN, max_retries=0)


def test_openai_compat_chat(stack, compat):
    stack.clear()
    r = compat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi compat"}])
    assert r.choices[0].message.content == "Echo: Hi compat"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens > 0
    (call,) = stack.fake_requests()
    assert call["path"] == "/v1beta/openai/chat/completions"
    assert call["authorization"] in [f"Bearer {k}" for k in KEYS]


def test_openai_compat_stream(compat):
    stream = compat.chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream these five words please"}])
    text, usage, n = "", None, 0
    for chunk in stream:
        n += 1
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.delta.content or ""
    assert text == "Echo: stream these five words please"
    assert n >= 3
    assert usage is not None and usage.total_tokens > 0


def test_openai_compat_models_and_embeddings(compat):
    ids = [m.id for m in compat.models.list()]
    assert "models/gemini-2.5-flash" in ids
    # The SDK asks for base64 by default and decodes it itself.
    r = compat.embeddings.create(model="gemini-embedding-001", input=["a", "b"], dimensions=8)
    assert [len(d.embedding) for d in r.data] == [8, 8]
    norm = sum(x * x for x in r.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3


def test_openai_compat_tool_call(compat):
    r = compat.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert r.choices[0].finish_reason == "tool_calls"


def test_openai_compat_needs_a_token(stack):
    bad = openai.OpenAI(base_url=f"{stack.base}/openai/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


# --- Callers' own keys (CLIENT_KEYS_ENABLED) -------------------------------

@pytest.fixture(scope="module")
def own_keys_stack():
    s = Stack({"CLIENT_KEYS_ENABLED": "true"})
    yield s
    s.stop()


def test_callers_own_key_with_the_sdk(own_keys_stack):
    s = own_keys_stack
    mine = "client-own-key-000001"
    client = make_client(s, "", None, api_key=mine)
    assert client.models.generate_content(model=MODEL, contents="own key").text == "Echo: own key"
    assert [r["api_key"] for r in s.fake_requests()] == [mine]
    # The token still means the server's pool.
    s.clear()
    with_token = make_client(s, "/gemini", "v1beta")
    with_token.models.count_tokens(model=MODEL, contents="x")
    assert s.fake_requests()[-1]["api_key"] in KEYS
    # A bad own key gets Google's own answer.
    bad = make_client(s, "", None, api_key="bad-own-key-0000001")
    with pytest.raises(errors.ClientError) as e:
        bad.models.generate_content(model=MODEL, contents="x")
    assert e.value.code == 400
    assert "API key not valid" in e.value.message
    assert mine not in s.logs()
