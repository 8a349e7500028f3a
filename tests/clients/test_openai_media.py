"""The official `openai` package through the gateway to the fake Gemini for
image generation and speech: `images.generate` answered as `b64_json` and as
a `url` on the gateway (fetched without a token), and
`audio.speech.create` answered as a valid WAV; each also looks at the Gemini
request that reached the fake."""
import base64
import json
import struct
import urllib.request

import openai
import pytest

from conftest import TOKEN

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def client(stack):
    stack.clear()
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=TOKEN, max_retries=0)


def gemini_calls(stack, action):
    out = []
    for r in stack.fake_requests():
        if r["path"].endswith(action):
            out.append((r["path"], json.loads(r["body"])))
    return out


def test_images_generate_b64(stack, client):
    res = client.images.generate(prompt="a red fox in snow", size="1792x1024", n=2)
    assert len(res.data) == 2
    for d in res.data:
        assert base64.b64decode(d.b64_json).startswith(PNG_MAGIC)
    calls = gemini_calls(stack, ":generateContent")
    assert len(calls) == 2
    assert calls[0][0].endswith("/models/gemini-2.5-flash-image:generateContent")
    assert calls[0][1]["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"


def test_images_generate_url_is_fetchable_without_a_token(stack, client):
    res = client.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="url")
    url = res.data[0].url
    assert url.startswith(f"{stack.base}/images/") and url.endswith(".png"), url
    with urllib.request.urlopen(url) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "image/png"
        assert r.read().startswith(PNG_MAGIC)


def test_audio_speech_create_is_a_wav(stack, client):
    res = client.audio.speech.create(model="tts-1", voice="coral", input="Have a wonderful day!")
    wav = res.content
    riff, size, wave, fmt, fmt_len, pcm, channels, rate, byte_rate, align, bits, data, n = struct.unpack(
        "<4sI4s4sIHHIIHH4sI", wav[:44]
    )
    assert (riff, wave, fmt, data) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert (fmt_len, pcm, channels, rate, byte_rate, align, bits) == (16, 1, 1, 24000, 48000, 2, 16)
    assert n == len(wav) - 44 > 0
    assert size == 36 + n
    calls = gemini_calls(stack, ":generateContent")
    assert calls[-1][0].endswith("/models/gemini-2.5-flash-preview-tts:generateContent")
    config = calls[-1][1]["generationConfig"]
    assert config["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Aoede"


def test_audio_speech_mp3_is_refused_naming_the_formats(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="mp3")
    assert "wav" in str(e.value) and "pcm" in str(e.value)
