// deploy/cloudflare-worker.js in the real Workers runtime (workerd, run by
// Miniflare), in front of (1) the real gateway binary in demo mode and (2) a
// small recording server, both on loopback.
//
//   cd tests/worker && npm ci && GEMINI_BALANCE_BIN=../../target/debug/gemini-balance node --test
//
// scripts/test.sh runs it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const workerDir = path.join(repo, "deploy");
const bin = path.resolve(
  process.env.GEMINI_BALANCE_BIN || path.join(repo, "target", "debug", "gemini-balance"),
);
const TOKEN = "sk-demo";
const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

let gateway; // child process
let gatewayLog = "";
let gatewayUrl;
let mf; // Miniflare in front of the gateway
let recorder; // { server, port, seen, hooks }
let mfRecorder; // Miniflare in front of the recorder

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

function worker(bindings) {
  return new Miniflare({
    modules: true,
    modulesRoot: workerDir,
    scriptPath: path.join(workerDir, "cloudflare-worker.js"),
    compatibilityDate: "2024-09-23",
    bindings,
  });
}

async function waitHealthy(url, child) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with ${child.exitCode}:\n${gatewayLog}`);
    }
    try {
      const r = await fetch(`${url}/health`);
      if (r.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gateway did not become healthy:\n${gatewayLog}`);
}

/** A deferred: a promise with its resolve function. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Assert a status; read the body for the message only when it is wrong
 * (reading it otherwise would wait for a whole stream). */
async function expectStatus(r, status) {
  if (r.status !== status) {
    assert.fail(`expected ${status}, got ${r.status}: ${await r.text()}`);
  }
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** A server that records what reached it; some paths stream with handshakes. */
function startRecorder() {
  const rec = { seen: [], hooks: {} };
  rec.server = http.createServer((req, res) => {
    const entry = { method: req.method, url: req.url, headers: req.headers, chunks: [] };
    rec.seen.push(entry);
    if (req.url.startsWith("/hf/upload")) {
      // Request streaming: tell the test each chunk as it arrives.
      req.on("data", (c) => {
        entry.chunks.push(c.toString());
        rec.hooks.onChunk?.(c.toString());
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ received: entry.chunks.join("") }));
      });
      return;
    }
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      entry.body = body;
      if (req.url.startsWith("/hf/download")) {
        // Response streaming: the second half is written only once the test
        // has read the first half through the Worker.
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write("data: first\n\n");
        await rec.hooks.firstRead;
        res.end("data: second\n\n");
        return;
      }
      if (req.url.startsWith("/hf/teapot")) {
        res.writeHead(418, { "x-upstream": "yes", "content-type": "text/plain" });
        res.end("short and stout");
        return;
      }
      if (req.url.startsWith("/hf/moved")) {
        res.writeHead(302, { location: "https://elsewhere.example/" });
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  return new Promise((resolve) =>
    rec.server.listen(0, "127.0.0.1", () => {
      rec.port = rec.server.address().port;
      resolve(rec);
    }),
  );
}

before(async () => {
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  gateway = spawn(bin, ["--demo"], {
    env: { PATH: process.env.PATH, HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  gateway.on("error", (e) => {
    gatewayLog += `spawn ${bin}: ${e.message}\n`;
  });
  // Never outlive the test run, whatever happens to it.
  process.on("exit", () => gateway.kill("SIGKILL"));
  gateway.stdout.on("data", (d) => (gatewayLog += d));
  gateway.stderr.on("data", (d) => (gatewayLog += d));
  await waitHealthy(gatewayUrl, gateway);
  mf = worker({ SPACE_HOST: `127.0.0.1:${port}`, SPACE_PROTOCOL: "http" });
  recorder = await startRecorder();
  mfRecorder = worker({ SPACE_HOST: `http://127.0.0.1:${recorder.port}` });
});

after(async () => {
  await mf?.dispose();
  await mfRecorder?.dispose();
  recorder?.server.close();
  gateway?.kill("SIGTERM");
});

const W = "https://gateway.example.workers.dev";

test("models through the Worker", async () => {
  const r = await mf.dispatchFetch(`${W}/v1/models`, { headers: AUTH });
  await expectStatus(r, 200);
  const body = await r.json();
  assert.equal(body.object, "list");
  const ids = body.data.map((m) => m.id);
  assert.ok(ids.includes("gemini-2.5-flash"), `models: ${ids.join(", ")}`);
  // The same list as the gateway gives directly (under /hf, where the Worker sends it).
  const direct = await (await fetch(`${gatewayUrl}/hf/v1/models`, { headers: AUTH })).json();
  assert.deepEqual(ids, direct.data.map((m) => m.id));
});

test("a plain chat through the Worker", async () => {
  const req = {
    model: "gemini-2.5-flash",
    messages: [{ role: "user", content: "Hello through the worker [[words=7]]" }],
  };
  const r = await mf.dispatchFetch(`${W}/v1/chat/completions`, {
    method: "POST",
    headers: AUTH,
    body: JSON.stringify(req),
  });
  await expectStatus(r, 200);
  assert.match(r.headers.get("content-type"), /application\/json/);
  const body = await r.json();
  assert.equal(body.object, "chat.completion");
  const text = body.choices[0].message.content;
  assert.equal(typeof text, "string");
  assert.equal(text.trim().split(/\s+/).length, 7, `answer: ${text}`);
  assert.equal(body.choices[0].finish_reason, "stop");
  // The deterministic fake gives the gateway's own answer, byte for byte in content.
  const direct = await (
    await fetch(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: AUTH,
      body: JSON.stringify(req),
    })
  ).json();
  assert.equal(text, direct.choices[0].message.content);
});

test("a streamed chat through the Worker arrives event by event", async () => {
  const r = await mf.dispatchFetch(`${W}/v1/chat/completions`, {
    method: "POST",
    headers: AUTH,
    body: JSON.stringify({
      model: "gemini-2.5-flash",
      stream: true,
      messages: [{ role: "user", content: "Count [[events=5 gap=300]]" }],
    }),
  });
  await expectStatus(r, 200);
  assert.match(r.headers.get("content-type"), /text\/event-stream/);
  const decoder = new TextDecoder();
  let text = "";
  const contentTimes = [];
  let firstContentAt;
  for await (const chunk of r.body) {
    const s = decoder.decode(chunk, { stream: true });
    text += s;
    if (s.includes('"content"') && firstContentAt === undefined) firstContentAt = Date.now();
    contentTimes.push(Date.now());
  }
  const doneAt = Date.now();
  const events = text
    .split(/\r?\n\r?\n/)
    .map((e) => e.trim())
    .filter((e) => e.startsWith("data:"))
    .map((e) => e.slice(5).trim());
  assert.equal(events.at(-1), "[DONE]", text);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
  const words = chunks
    .map((c) => c.choices?.[0]?.delta?.content ?? "")
    .join("")
    .trim()
    .split(/\s+/);
  assert.equal(words.length, 5, `streamed text: ${JSON.stringify(words)}`);
  // Five events 300 ms apart: the first must reach the client long before the
  // last, which a buffering proxy would not allow.
  assert.ok(firstContentAt !== undefined, "no content event");
  assert.ok(
    doneAt - firstContentAt >= 900,
    `the stream was buffered: first content ${doneAt - firstContentAt} ms before the end`,
  );
});

test("uptime checks through the Worker: GET and HEAD / with no token", async () => {
  const g = await mf.dispatchFetch(`${W}/`);
  assert.equal(g.status, 200);
  assert.match(await g.text(), /gemini-balance is running/);
  const h = await mf.dispatchFetch(`${W}/`, { method: "HEAD" });
  assert.equal(h.status, 200);
  const health = await mf.dispatchFetch(`${W}/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, "ok");
});

test("the gateway's own errors pass through unchanged", async () => {
  const r = await mf.dispatchFetch(`${W}/v1/models`, { headers: { authorization: "Bearer wrong" } });
  assert.equal(r.status, 401);
  const body = await r.json();
  assert.equal(typeof body.error.message, "string");
});

test("path gets /hf once, query, method, headers and body pass through", async () => {
  recorder.seen.length = 0;
  const r = await mfRecorder.dispatchFetch(`${W}/v1/things/x?alt=sse&n=2`, {
    method: "PUT",
    headers: { authorization: "Bearer sk-abc", "x-custom": "kept", "content-type": "text/plain" },
    body: "the body",
  });
  assert.equal(r.status, 200);
  const seen = await r.json();
  assert.equal(seen.method, "PUT");
  assert.equal(seen.url, "/hf/v1/things/x?alt=sse&n=2");
  assert.equal(seen.headers.authorization, "Bearer sk-abc");
  assert.equal(seen.headers["x-custom"], "kept");
  assert.equal(seen.headers["content-type"], "text/plain");
  assert.equal(seen.headers.host, `127.0.0.1:${recorder.port}`);
  assert.equal(seen.body, "the body");

  const again = await (await mfRecorder.dispatchFetch(`${W}/hf/v1/models`)).json();
  assert.equal(again.url, "/hf/v1/models", "a path already under /hf is not prefixed twice");
  const del = await (await mfRecorder.dispatchFetch(`${W}/x`, { method: "DELETE" })).json();
  assert.equal(del.method, "DELETE");
});

test("status, headers and redirects come back as the Space sent them", async () => {
  const t = await mfRecorder.dispatchFetch(`${W}/teapot`);
  assert.equal(t.status, 418);
  assert.equal(t.headers.get("x-upstream"), "yes");
  assert.equal(await t.text(), "short and stout");
  const m = await mfRecorder.dispatchFetch(`${W}/moved`, { redirect: "manual" });
  assert.equal(m.status, 302);
  assert.equal(m.headers.get("location"), "https://elsewhere.example/");
});

test("the request body is streamed to the Space, not buffered", { timeout: 20000 }, async () => {
  const firstArrived = deferred();
  recorder.hooks.onChunk = (c) => {
    if (c.includes("part-1")) firstArrived.resolve();
  };
  const enc = new TextEncoder();
  const body = new ReadableStream({
    async start(controller) {
      controller.enqueue(enc.encode("part-1;"));
      // Only once the Space has the first part is the second one sent.
      await withTimeout(firstArrived.promise, 8000, "the first part of the upload to reach the Space");
      controller.enqueue(enc.encode("part-2"));
      controller.close();
    },
  });
  const r = await mfRecorder.dispatchFetch(`${W}/upload`, {
    method: "POST",
    body,
    duplex: "half",
    headers: { "content-type": "application/octet-stream" },
  });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).received, "part-1;part-2");
  recorder.hooks.onChunk = undefined;
});

test("the response body is streamed to the client, not buffered", { timeout: 20000 }, async () => {
  const firstRead = deferred();
  recorder.hooks.firstRead = firstRead.promise;
  const r = await mfRecorder.dispatchFetch(`${W}/download`);
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let got = "";
  while (!got.includes("first")) {
    const { value, done } = await withTimeout(reader.read(), 8000, "the first event through the Worker");
    assert.ok(!done, `stream ended early: ${got}`);
    got += dec.decode(value, { stream: true });
  }
  assert.ok(!got.includes("second"));
  firstRead.resolve(); // now the Space sends the rest
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    got += dec.decode(value, { stream: true });
  }
  assert.equal(got, "data: first\n\ndata: second\n\n");
});

// A Worker deployed before SPACE_HOST is set (or with the example value still in
// place) must say so, not answer 502 from a host that does not exist.
const UNSET_HOSTS = [
  ["no SPACE_HOST", {}],
  ["an empty SPACE_HOST", { SPACE_HOST: "  " }],
  ["the old wrangler.toml placeholder", { SPACE_HOST: "your-user-your-space.hf.space" }],
  ["the README's placeholder", { SPACE_HOST: "<user>-<space>.hf.space" }],
];

for (const [what, bindings] of UNSET_HOSTS) {
  test(`${what} is a clear 500 in the format of the API called`, async () => {
    const bare = worker(bindings);
    try {
      // OpenAI route: OpenAI's error object.
      const r = await bare.dispatchFetch(`${W}/v1/chat/completions`, {
        method: "POST",
        headers: AUTH,
        body: "{}",
      });
      assert.equal(r.status, 500);
      assert.match(r.headers.get("content-type"), /application\/json/);
      const body = await r.json();
      assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
      assert.match(body.error.message, /SPACE_HOST is not set/);
      assert.equal(body.error.type, "worker_configuration_error");
      // Native Gemini route: Google's error object.
      const n = await bare.dispatchFetch(`${W}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: "POST",
        headers: { "x-goog-api-key": TOKEN, "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(n.status, 500);
      const native = await n.json();
      assert.equal(native.error.code, 500);
      assert.equal(native.error.status, "INTERNAL");
      assert.match(native.error.message, /SPACE_HOST is not set/);
    } finally {
      await bare.dispose();
    }
  });
}

test("deploy/wrangler.toml ships no SPACE_HOST and keeps the dashboard's variables", async () => {
  const { readFile } = await import("node:fs/promises");
  const toml = await readFile(path.join(workerDir, "wrangler.toml"), "utf8");
  const settings = toml.split("\n").filter((l) => !l.trim().startsWith("#"));
  assert.ok(!settings.some((l) => /^\s*SPACE_HOST\s*=/.test(l)), "a SPACE_HOST value would be deployed");
  assert.ok(settings.some((l) => /^\s*keep_vars\s*=\s*true\s*$/.test(l)), "keep_vars = true is missing");
});
