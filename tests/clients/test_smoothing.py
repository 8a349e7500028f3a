"""Stream smoothing (issue 17, STREAM_SMOOTHING) through the official SDKs:
the fake streams three events of 40 words 300 ms apart; the gateway re-cuts
each into small events. The `openai` and `google-genai` SDKs must read many
chunks whose text is exactly the answer's, with one finish reason and the
usage at the end."""
import openai
import pytest
from google import genai

from conftest import TOKEN, Stack

MODEL = "gemini-2.5-flash"
PROMPT = "[[words=120 per=40 gap=300]]"


@pytest.fixture(scope="module")
def smooth():
    s = Stack({"STREAM_SMOOTHING": "true", "STREAM_SMOOTHING_MAX_DELAY": "0.25"})
    yield s
    s.stop()


def test_openai_sdk_reads_a_smoothed_stream(smooth):
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{smooth.base}/v1")
    messages = [{"role": "user", "content": PROMPT}]
    whole = client.chat.completions.create(model=MODEL, messages=messages)
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == whole.choices[0].message.content
    assert len(deltas) >= 20, deltas
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_google_genai_sdk_reads_a_smoothed_stream(smooth):
    client = genai.Client(api_key=TOKEN, http_options={"base_url": f"{smooth.base}/gemini", "api_version": "v1beta"})
    whole = client.models.generate_content(model=MODEL, contents=PROMPT)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert "".join(c.text or "" for c in chunks) == whole.text
    assert len(chunks) >= 20, len(chunks)
    assert chunks[-1].candidates[0].finish_reason == "STOP"
    assert chunks[-1].usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count
    # Usage stays where Google put it (the last piece of each upstream event).
    assert sum(1 for c in chunks if c.usage_metadata) == 3
