"""The official `openai` package's Responses API (`client.responses`) through
the gateway to the fake Gemini: a plain answer, a stream (the SDK's own event
accumulation and `get_final_response`), a function tool round trip,
`responses.parse` with a Pydantic model (json_schema), a reasoning summary,
and `previous_response_id` across two calls. Each test also looks at what
reached the fake where it matters."""
import json

import openai
import pytest
from pydantic import BaseModel

from conftest import TOKEN

MODEL = "gemini-2.5-flash"

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture
def client(stack):
    return openai.OpenAI(base_url=stack.base + "/v1", api_key=TOKEN, max_retries=0)


def last_generate(stack):
    reqs = [r for r in stack.fake_requests() if ":" in r["path"]]
    return json.loads(reqs[-1]["body"]) if isinstance(reqs[-1]["body"], str) else reqs[-1]["body"]


def test_plain(client):
    r = client.responses.create(model=MODEL, instructions="Be brief.", input="hello there")
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.output_text
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens_details.reasoning_tokens >= 0


def test_stream(client):
    seen = []
    with client.responses.stream(model=MODEL, input="go [[events=4]]") as s:
        for ev in s:
            seen.append(ev.type)
        final = s.get_final_response()
    assert seen[0] == "response.created"
    assert seen[-1] == "response.completed"
    assert seen.count("response.output_text.delta") >= 2
    assert final.output_text
    assert final.usage.output_tokens > 0


def test_stream_create(client):
    events = list(client.responses.create(model=MODEL, input="hi", stream=True))
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    assert events[-1].type == "response.completed"


def test_function_tool_round_trip(client):
    first = client.responses.create(model=MODEL, input="Weather in Oslo?", tools=[WEATHER], tool_choice="required")
    calls = [i for i in first.output if i.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert isinstance(args.get("city"), str)
    history = [{"role": "user", "content": "Weather in Oslo?"}] + [i.model_dump(exclude_none=True) for i in first.output]
    history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": json.dumps({"tempC": 4})})
    second = client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    assert "tempC" in second.output_text


class Person(BaseModel):
    name: str
    age: int


def test_parse_pydantic(client):
    r = client.responses.parse(model=MODEL, input="Invent a person.", text_format=Person)
    assert isinstance(r.output_parsed, Person)
    assert isinstance(r.output_parsed.age, int)


def test_reasoning_summary(client):
    r = client.responses.create(model=MODEL, input="think about it", reasoning={"effort": "low", "summary": "auto"})
    reasoning = [i for i in r.output if i.type == "reasoning"]
    assert reasoning and reasoning[0].summary and reasoning[0].summary[0].text


def test_previous_response_id(client, stack):
    first = client.responses.create(model=MODEL, input="my name is Ada")
    second = client.responses.create(model=MODEL, previous_response_id=first.id, input="what is my name?")
    assert second.previous_response_id == first.id
    body = last_generate(stack)
    texts = [p.get("text", "") for c in body["contents"] for p in c["parts"]]
    assert "my name is Ada" in texts
    got = client.responses.retrieve(first.id)
    assert got.id == first.id
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_unknown_previous_response_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, previous_response_id="resp_unknown", input="hi")


def test_background_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="hi", background=True)
    assert "background" in str(e.value)
