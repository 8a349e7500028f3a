"""The official `openai` package through the gateway to the fake Gemini, for
the translation features (docs/wire-formats.md Part C): a tool-call round trip, streamed tool
calls reassembled by the SDK, `chat.completions.parse` with a Pydantic
model, an image message, reasoning_content, -search links and code
execution output. Each test also looks at the Gemini request that reached
the fake."""
import base64
import json
from typing import Optional

import openai
import pytest
from pydantic import BaseModel

from conftest import TOKEN, Stack

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
THOUGHT = "**Thinking**\n\nConsidering the question."
MODEL = "gemini-2.5-flash"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def sig(name):
    return base64.b64encode(f"sig:{name}".encode()).decode()


def last_gemini_body(stack):
    reqs = [r for r in stack.fake_requests() if "enerateContent" in r["path"]]
    assert reqs, "a generate call reached the fake"
    return json.loads(reqs[-1]["body"])


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=TOKEN, max_retries=0)


@pytest.fixture(scope="module")
def code_stack():
    s = Stack({"TOOLS_CODE_EXECUTION_ENABLED": "true", "SHOW_THINKING_PROCESS": "false"})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def code_client(code_stack):
    return openai.OpenAI(base_url=f"{code_stack.base}/hf/v1", api_key=TOKEN, max_retries=0)


def test_tool_call_round_trip(stack, client):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    sent = last_gemini_body(stack)
    assert sent["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"], "nullable": True}},
        "required": ["city"],
    }

    # The SDK's own message object goes back, then the tool's result.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"tempC": 4})})
    r2 = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content == 'Tool get_weather returned: {"tempC":4}'
    sent = last_gemini_body(stack)
    assert sent["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": sig("get_weather")},
    ]}
    assert sent["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"tempC": 4}}},
    ]}


class GetWeather(BaseModel):
    city: str


def test_streamed_tool_calls_reassembled_by_the_sdk(client):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    with client.chat.completions.stream(
        model=MODEL, messages=messages, tools=[openai.pydantic_function_tool(GetWeather)],
        stream_options={"include_usage": True},
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris")
    assert final.usage.total_tokens > 0

    # By hand, the way many clients accumulate deltas.
    calls, finish = {}, None
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


class Day(BaseModel):
    name: str
    rain: bool


class Forecast(BaseModel):
    city: str
    temp_c: float
    days: list[Day]
    note: Optional[str]


def test_parse_with_a_pydantic_model(stack, client):
    r = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Forecast for Oslo as JSON"}], response_format=Forecast)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Forecast)
    assert parsed.city and isinstance(parsed.temp_c, float)
    assert isinstance(parsed.days[0], Day)
    gc = last_gemini_body(stack)["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    schema = gc["responseJsonSchema"]
    assert set(schema["properties"]) == {"city", "temp_c", "days", "note"}
    assert "$defs" in schema and "Day" in schema["$defs"]


def test_image_message(stack, client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"}},
    ]}])
    assert r.choices[0].message.content == "Echo: What is this? (received 1 image/png part)"
    parts = last_gemini_body(stack)["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_1X1}}

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]},
        ])
    assert e.value.param == "messages[1].content[0].image_url"
    assert "message 1" in e.value.message


def test_reasoning_content(stack, client):
    r = client.chat.completions.create(model=f"{MODEL}-thinking", messages=[{"role": "user", "content": "Think first"}])
    m = r.choices[0].message
    assert m.content == "Echo: Think first"
    assert m.reasoning_content == THOUGHT
    assert r.usage.completion_tokens_details.reasoning_tokens > 0
    assert r.model == f"{MODEL}-thinking"
    assert last_gemini_body(stack)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": -1, "includeThoughts": True}

    reasoning, content = "", ""
    for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Think first"}], reasoning_effort="low", stream=True):
        for c in chunk.choices:
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
            content += c.delta.content or ""
    assert reasoning == THOUGHT
    assert content == "Echo: Think first"
    assert last_gemini_body(stack)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}

    # extra_body reaches Gemini's own fields.
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"google": {
        "thinking_config": {"thinking_budget": 256, "include_thoughts": False},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    }})
    sent = last_gemini_body(stack)
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 256, "includeThoughts": False}
    assert sent["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]


SOURCES = "\n\nSources:\n1. [Example A](https://example.com/a)\n2. [Example B](https://example.com/b)"


def test_search_links(stack, client):
    assert f"{MODEL}-search" in [m.id for m in client.models.list()]
    r = client.chat.completions.create(model=f"{MODEL}-search", messages=[{"role": "user", "content": "Oslo weather"}])
    m = r.choices[0].message
    assert m.content == "Echo: Oslo weather" + SOURCES
    assert m.annotations[0].url_citation.url == "https://example.com/a"
    sent = last_gemini_body(stack)
    assert sent["tools"] == [{"googleSearch": {}}]
    assert [r["path"] for r in stack.fake_requests()][-1] == f"/v1beta/models/{MODEL}:generateContent"

    text = ""
    for chunk in client.chat.completions.create(
            model=f"{MODEL}-search", messages=[{"role": "user", "content": "Oslo weather"}], stream=True):
        for c in chunk.choices:
            text += c.delta.content or ""
    assert text == "Echo: Oslo weather" + SOURCES


CODE = "Let me compute it.\n```python\nprint(2 + 2)\n\n```\n\n```output\n4\n\n```\nThe answer is 4."


def test_code_execution_output(code_stack, code_client):
    r = code_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}])
    assert r.choices[0].message.content == "Echo: What is 2+2?" + CODE
    assert last_gemini_body(code_stack)["tools"] == [{"codeExecution": {}}]

    text = ""
    with code_client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}]) as s:
        for e in s:
            if e.type == "content.delta":
                text += e.delta
    assert text == "Echo: What is 2+2?" + CODE

    # The client's own functions turn the built-in tool off.
    r = code_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    assert r.choices[0].finish_reason == "tool_calls"
    assert last_gemini_body(code_stack)["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"], "nullable": True}}, "required": ["city"]},
    }]}]


def test_blocked_prompt_is_content_filter(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bad [[block]]"}])
    assert r.choices[0].finish_reason == "content_filter"
    assert r.choices[0].message.refusal == "Prompt blocked by Gemini: SAFETY"
    assert r.usage.prompt_tokens > 0
