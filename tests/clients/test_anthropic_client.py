"""The official `anthropic` Python package against the gateway, as Claude
Code's users configure it: base_url = http://HOST (the SDK adds /v1/messages)
and a client token as the API key (sent as `x-api-key`)."""
import base64

import anthropic
import pytest

from conftest import TOKEN, Stack

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

TOOLS = [{
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"type": "string", "pattern": "^[A-Z]"},
            "days": {"type": "integer", "exclusiveMinimum": 0},
        },
        "required": ["city"],
    },
}]


@pytest.fixture(scope="module")
def client(stack):
    return anthropic.Anthropic(base_url=stack.base, api_key=TOKEN, max_retries=0)


def test_messages_create(client):
    r = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=1024,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Hello gateway"}],
        metadata={"user_id": "u-1"},
    )
    assert r.type == "message"
    assert r.model == "claude-sonnet-4-6"
    assert r.content[0].type == "text"
    assert r.content[0].text == "Echo: Hello gateway"
    assert r.stop_reason == "end_turn"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


def test_messages_stream_text(client):
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=1024,
        messages=[{"role": "user", "content": "stream these words now please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream these words now please"
    assert final.content[-1].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_messages_stream_tool_use(client):
    with client.messages.stream(
        model="gemini-2.5-flash", max_tokens=1024, tools=TOOLS,
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    calls = [b for b in final.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert isinstance(calls[0].input["city"], str)
    assert final.stop_reason == "tool_use"


def test_tool_round_trip_with_thinking_across_turns(client):
    first = client.messages.create(
        model="gemini-2.5-flash", max_tokens=4096, tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    thinking = [b for b in first.content if b.type == "thinking"]
    assert thinking and all(b.signature for b in thinking)
    call = next(b for b in first.content if b.type == "tool_use")
    second = client.messages.create(
        model="gemini-2.5-flash", max_tokens=4096, tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}]},
        ],
    )
    text = "".join(b.text for b in second.content if b.type == "text")
    assert "Tool get_weather returned" in text and "sunny" in text
    assert second.stop_reason == "end_turn"


def test_stop_sequences(client):
    # The fake streams "Echo: alpha beta gamma " then "delta epsilon zeta":
    # the sequence straddles two deltas; Gemini is never told about it.
    msgs = [{"role": "user", "content": "alpha beta gamma delta epsilon zeta"}]
    r = client.messages.create(model="gemini-2.5-flash", max_tokens=256,
                               stop_sequences=["gamma delta"], messages=msgs)
    assert r.stop_reason == "stop_sequence"
    assert r.stop_sequence == "gamma delta"
    assert r.content[0].text == "Echo: alpha beta "
    with client.messages.stream(model="gemini-2.5-flash", max_tokens=256,
                                stop_sequences=["nope", "gamma delta"], messages=msgs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: alpha beta "
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == "gamma delta"
    r = client.messages.create(model="gemini-2.5-flash", max_tokens=256,
                               stop_sequences=["nowhere"], messages=msgs)
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    assert r.content[0].text == "Echo: alpha beta gamma delta epsilon zeta"


def test_image(client):
    r = client.messages.create(
        model="gemini-2.5-flash", max_tokens=256,
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "what is this"},
        ]}],
    )
    assert "image/png" in r.content[0].text
    assert base64.b64decode(PNG)[:4] == b"\x89PNG"


def test_count_tokens(client):
    r = client.messages.count_tokens(
        model="claude-sonnet-4-6", system="Be brief.", tools=TOOLS,
        messages=[{"role": "user", "content": "count these words"}],
    )
    assert r.input_tokens > 0


@pytest.fixture(scope="module")
def own_stack():
    # Its own gateway: the 429 below cools a key down, which the shared one must not see.
    s = Stack({"MAX_RETRIES": "0"})
    yield s
    s.stop()


def test_error_classes(own_stack):
    client = anthropic.Anthropic(base_url=own_stack.base, api_key=TOKEN, max_retries=0)
    bad = anthropic.Anthropic(base_url=own_stack.base, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="gemini-2.5-flash", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="gemini-2.5-flash", max_tokens=10,
                               messages=[{"role": "user", "content": "x [[status=404]]"}])
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="gemini-2.5-flash", max_tokens=10,
                               messages=[{"role": "user", "content": "x [[status=429]]"}])
    assert e.value.response.headers.get("retry-after")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="gemini-2.5-flash", max_tokens=10,
                               messages=[{"role": "user", "content": [{"type": "mystery"}]}])
