// Heartbeats (issue 17) through the official JS SDKs, as
// tests/clients/test_heartbeats.py does for the Python ones: while a stream
// is silent for HEARTBEAT_SECONDS the gateway sends `: keep-alive` comments
// on OpenAI routes and empty lines on native SSE; `openai` and
// `@google/genai` must ignore them and read the same answer. With
// NONSTREAM_KEEPALIVE a slow non-streamed answer starts with spaces; both
// SDKs must parse it. Each test also reads the raw bytes to prove the
// heartbeats were really there. The real gateway binary runs against its
// fake Gemini upstream (a second process of the same binary), on loopback;
// the fake's clock is scaled so a 30 s silence takes 0.9 s.
//
//   cd tests/jsclients && npm ci && GEMINI_BALANCE_BIN=../../target/debug/gemini-balance node --test
//
// scripts/test.sh runs it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { GoogleGenAI } from "@google/genai";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const bin = path.resolve(
  process.env.GEMINI_BALANCE_BIN || path.join(repo, "target", "debug", "gemini-balance"),
);
const TOKEN = "sk-jsclients-test-token-42";
const MODEL = "gemini-2.5-flash";
const KEEP_ALIVE = ": keep-alive\n\n";
// 30 s of silence before the first event, scaled by the fake's clock (0.03).
const SILENT = "[[first=30000]] hi";
// Three one-word events 400 ms apart (gaps are not scaled).
const GAPS = "[[events=3 gap=400]] hi";

let fake;
let gateway;
let origin;
let log = "";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitUp(url) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up:\n${log}`);
}

before(async () => {
  const fakePort = await freePort();
  // Two separate picks can return the same port: pick again until they differ.
  let port = await freePort();
  while (port === fakePort) port = await freePort();
  fake = spawn(bin, ["fake", "--port", String(fakePort)], { stdio: "ignore" });
  gateway = spawn(bin, [], {
    env: {
      ...process.env,
      API_KEYS: JSON.stringify(["key-one-000000001", "key-two-000000002"]),
      ALLOWED_TOKENS: JSON.stringify([TOKEN]),
      BASE_URL: `http://127.0.0.1:${fakePort}/v1beta`,
      HOST: "127.0.0.1",
      PORT: String(port),
      CHECK_INTERVAL_HOURS: "0",
      KEEPALIVE_MINUTES: "0",
      HEARTBEAT_SECONDS: "0.1",
      NONSTREAM_KEEPALIVE: "true",
      ENV_FILE: "/nonexistent",
    },
  });
  gateway.stdout.on("data", (d) => (log += d));
  gateway.stderr.on("data", (d) => (log += d));
  const fakeUrl = `http://127.0.0.1:${fakePort}`;
  await waitUp(`${fakeUrl}/__fake/requests`);
  await waitUp(`http://127.0.0.1:${port}/health`);
  const scaled = await fetch(`${fakeUrl}/__fake/time_scale`, {
    method: "POST",
    body: JSON.stringify({ scale: 0.03 }),
  });
  assert.equal(scaled.status, 200);
  origin = `http://127.0.0.1:${port}`;
});

after(() => {
  for (const p of [gateway, fake]) p?.kill();
});

// Node's fetch (under both SDKs) asks for gzip by default; the gateway sends a
// stream with heartbeats plain all the same (a heartbeat cannot pass a gzip
// stream), so the SDKs run with their default headers. The raw reads below
// ask for identity only to look at the bytes as sent.
const PLAIN = { "accept-encoding": "identity" };
const openai = (prefix = "/v1") => new OpenAI({ apiKey: TOKEN, baseURL: `${origin}${prefix}` });
const genai = () =>
  new GoogleGenAI({
    apiKey: TOKEN,
    httpOptions: { baseUrl: `${origin}/gemini`, apiVersion: "v1beta" },
  });

/// The raw body of a POST, as the SDKs receive it (unencoded).
async function raw(p, body, headers) {
  const r = await fetch(`${origin}${p}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...PLAIN, ...headers },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200);
  return r.text();
}

const bearer = { authorization: `Bearer ${TOKEN}` };
const googKey = { "x-goog-api-key": TOKEN };
const chatBody = (text, stream) => ({ model: MODEL, stream, messages: [{ role: "user", content: text }] });
const nativeBody = (text) => ({ contents: [{ role: "user", parts: [{ text }] }] });

/// The text an OpenAI chat stream carries, read by the `openai` SDK.
async function openaiStreamText(client, text) {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: text }],
    stream: true,
  });
  let got = "";
  let finish = null;
  for await (const c of stream) {
    if (c.choices?.length) {
      got += c.choices[0].delta?.content ?? "";
      finish = c.choices[0].finish_reason ?? finish;
    }
  }
  assert.equal(finish, "stop");
  return got;
}

test("openai SDK: a silent chat stream with heartbeats completes with the right text", async () => {
  const body = await raw("/v1/chat/completions", chatBody(SILENT, true), bearer);
  assert.ok(body.startsWith(KEEP_ALIVE), body);
  assert.ok(body.split(KEEP_ALIVE).length - 1 >= 2, body);
  assert.equal(await openaiStreamText(openai(), SILENT), "Echo: hi");
});

test("openai SDK: heartbeats between chunks, on /v1 and /openai/v1", async () => {
  for (const prefix of ["/v1", "/openai/v1"]) {
    const body = await raw(`${prefix}/chat/completions`, chatBody(GAPS, true), bearer);
    assert.ok(body.split(KEEP_ALIVE).length - 1 >= 2, `${prefix}: ${body}`);
    const got = await openaiStreamText(openai(prefix), GAPS);
    assert.equal(got.trim().split(/\s+/).length, 3, `${prefix}: ${got}`);
    assert.ok(!got.includes("keep-alive"), got);
  }
});

test("@google/genai SDK: a silent native stream with heartbeats completes with the right text", async () => {
  const p = `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`;
  const body = await raw(p, nativeBody(SILENT), googKey);
  assert.ok(body.startsWith("\n\n\n"), JSON.stringify(body));
  const chunks = [];
  for await (const c of await genai().models.generateContentStream({ model: MODEL, contents: SILENT })) {
    chunks.push(c);
  }
  const got = chunks.map((c) => c.text ?? "").join("");
  assert.equal(got, "Echo: hi");
  assert.equal(chunks.at(-1).candidates[0].finishReason, "STOP");
});

test("@google/genai SDK: empty-line heartbeats between events", async () => {
  const p = `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`;
  const body = await raw(p, nativeBody(GAPS), googKey);
  assert.ok(body.split("\r\n\r\n\n").length - 1 >= 2, JSON.stringify(body));
  const chunks = [];
  for await (const c of await genai().models.generateContentStream({ model: MODEL, contents: GAPS })) {
    chunks.push(c);
  }
  const got = chunks.map((c) => c.text ?? "").join("");
  assert.equal(chunks.length, 3, got);
  assert.equal(got.trim().split(/\s+/).length, 3, got);
});

test("both SDKs parse a NONSTREAM_KEEPALIVE answer after its leading spaces", async () => {
  const body = await raw("/v1/chat/completions", chatBody(SILENT, false), bearer);
  assert.ok(body.startsWith("   "), JSON.stringify(body.slice(0, 40)));
  const r = await openai().chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: SILENT }],
  });
  assert.equal(r.choices[0].message.content, "Echo: hi");
  const native = await raw(`/v1beta/models/${MODEL}:generateContent`, nativeBody(SILENT), googKey);
  assert.ok(native.startsWith("   "), JSON.stringify(native.slice(0, 40)));
  const g = await genai().models.generateContent({ model: MODEL, contents: SILENT });
  assert.equal(g.text, "Echo: hi");
});
