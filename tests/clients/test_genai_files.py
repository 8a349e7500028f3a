"""The Files API and cached contents through the gateway with the official
`google-genai` SDK, as users call it: `files.upload` of a file larger than the
SDK's 8 MiB chunk (so the resumable protocol sends several chunks, streamed),
`files.get`, `files.list`, `generate_content` naming the file 20 times in a row
on a pool of 3 keys (the fake answers 403 from any key but the owner, as Google
does), another client token that can neither see nor use it, and
`caches.create` + generate with the cache. Both API versions the SDK uses: its
default (v1) and v1beta."""
import io
import json

import pytest
from google import genai
from google.genai import errors, types

from conftest import KEYS, TOKEN, Stack

OTHER = "sk-other-client-token-77"
ADMIN = "sk-admin-token-for-files-1"
MODEL = "gemini-2.5-flash"
SIZE = 8 * 1024 * 1024 + 123_457  # two chunks: 8 MiB and the rest


@pytest.fixture(scope="module")
def fstack():
    # Both client tokens are plain clients: the admin token is the first.
    s = Stack({"ALLOWED_TOKENS": json.dumps([ADMIN, TOKEN, OTHER])})
    yield s
    s.stop()


def client(stack, api_version=None, token=TOKEN, path="/gemini"):
    opts = {"base_url": f"{stack.base}{path}"}
    if api_version:
        opts["api_version"] = api_version
    return genai.Client(api_key=token, http_options=opts)


def upload_big(c, name="big notes"):
    data = io.BytesIO(b"0123456789abcdef" * (SIZE // 16) + b"x" * (SIZE % 16))
    return c.files.upload(file=data, config=types.UploadFileConfig(mime_type="text/plain", display_name=name))


def keys_used(stack, needle):
    """The keys of the upstream calls whose path or body names `needle`."""
    return {
        r["api_key"]
        for r in stack.fake_requests()
        if needle in r["path"] or needle in (r.get("body") or "")
    }


@pytest.mark.parametrize("version,path", [(None, "/gemini"), ("v1beta", "/gemini"), (None, ""), ("v1beta", "/hf/gemini")])
def test_upload_get_list_generate_on_the_owning_key(fstack, version, path):
    c = client(fstack, version, path=path)
    fstack.clear()
    f = upload_big(c)
    assert f.name.startswith("files/")
    assert f.size_bytes == SIZE, "every byte reached the upstream"
    assert f.display_name == "big notes"
    uploads = [r for r in fstack.fake_requests() if r["path"].startswith("/upload/")]
    # start + 2 chunks, in the API version the SDK asked for.
    assert len(uploads) == 3, [r["path"] for r in uploads]
    want = version or "v1"
    assert all(r["path"] == f"/upload/{want}/files" for r in uploads), [r["path"] for r in uploads]
    assert all(TOKEN not in json.dumps(r) for r in uploads)

    g = c.files.get(name=f.name)
    assert g.name == f.name and g.uri == f.uri
    listed = [x.name for x in c.files.list()]
    assert f.name in listed

    for i in range(20):
        r = c.models.generate_content(
            model=MODEL,
            contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain"), "Summarize it."],
        )
        assert r.text, f"call {i}"
    # Streamed too.
    text = "".join(ch.text or "" for ch in c.models.generate_content_stream(
        model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain"), "Again."]))
    assert text

    used = keys_used(fstack, f.name)
    assert len(used) == 1 and used <= set(KEYS), used
    c.files.delete(name=f.name)


def test_another_token_cannot_see_or_use_it(fstack):
    mine = client(fstack)
    theirs = client(fstack, token=OTHER)
    f = upload_big(mine, "private")
    with pytest.raises(errors.ClientError) as e:
        theirs.files.get(name=f.name)
    assert e.value.code == 404
    assert f.name not in [x.name for x in theirs.files.list()]
    with pytest.raises(errors.ClientError) as e:
        theirs.models.generate_content(
            model=MODEL,
            contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain"), "Steal it."],
        )
    assert e.value.code == 404
    # Deleting it is refused too (403: only the owner or the admin deletes).
    with pytest.raises(errors.ClientError) as e:
        theirs.files.delete(name=f.name)
    assert e.value.code in (403, 404)
    # Still there for its owner, and the admin token sees everything.
    assert mine.files.get(name=f.name).name == f.name
    assert f.name in [x.name for x in mine.files.list()]
    admin = client(fstack, token=ADMIN)
    assert admin.files.get(name=f.name).name == f.name
    assert f.name in [x.name for x in admin.files.list()]
    mine.files.delete(name=f.name)
    with pytest.raises(errors.ClientError) as e:
        mine.files.get(name=f.name)
    assert e.value.code == 404


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_cache_create_and_generate_with_it(fstack, version):
    c = client(fstack, version)
    fstack.clear()
    f = upload_big(c, "cached")
    cache = c.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            display_name="ctx",
            contents=[types.Content(role="user", parts=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain")])],
            ttl="600s",
        ),
    )
    assert cache.name.startswith("cachedContents/")
    assert c.caches.get(name=cache.name).name == cache.name
    assert cache.name in [x.name for x in c.caches.list()]
    for i in range(10):
        r = c.models.generate_content(
            model=MODEL,
            contents="What is in the cache?",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
        assert r.text, f"call {i}"
    assert len(keys_used(fstack, cache.name) | keys_used(fstack, f.name)) == 1
    theirs = client(fstack, version, token=OTHER)
    with pytest.raises(errors.ClientError) as e:
        theirs.models.generate_content(
            model=MODEL, contents="peek", config=types.GenerateContentConfig(cached_content=cache.name))
    assert e.value.code == 404
    c.caches.delete(name=cache.name)


def test_async_client_upload_and_generate(fstack):
    import asyncio

    async def go():
        c = client(fstack).aio
        data = io.BytesIO(b"a" * SIZE)
        f = await c.files.upload(file=data, config=types.UploadFileConfig(mime_type="text/plain"))
        assert f.size_bytes == SIZE
        for _ in range(5):
            r = await c.models.generate_content(
                model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain"), "Hi"])
            assert r.text
        await c.files.delete(name=f.name)

    fstack.clear()
    asyncio.run(go())
    assert len(keys_used(fstack, "files/")) == 1


def test_list_pages_through_every_file_across_keys(fstack):
    c = client(fstack, token=OTHER)
    fstack.clear()
    made = []
    for i in range(7):  # uploads rotate over the 3 keys
        f = c.files.upload(file=io.BytesIO(b"page %d" % i), config=types.UploadFileConfig(mime_type="text/plain"))
        made.append(f.name)
    pager = c.files.list(config=types.ListFilesConfig(page_size=2))
    assert len(pager.page) <= 2
    seen = [f.name for f in pager]  # the SDK follows nextPageToken
    assert sorted(seen) == sorted(made)
    keys = {r["api_key"] for r in fstack.fake_requests() if r["path"].startswith("/upload/")}
    assert len(keys) == 3, keys
    for n in made:
        c.files.delete(name=n)
