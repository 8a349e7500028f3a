// The Vercel AI SDK's default `openai(model)` provider (which calls the
// Responses API, POST {base}/responses) and OpenAI's Codex CLI (`codex exec`
// with a provider whose base_url is the gateway, wire_api "responses")
// against the real gateway binary and its fake Gemini upstream (a second
// process of the same binary), both on loopback.
//
//   cd tests/codex && npm ci && GEMINI_BALANCE_BIN=../../target/debug/gemini-balance node --test
//
// scripts/test.sh runs it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateText, streamText, generateObject, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const bin = path.resolve(
  process.env.GEMINI_BALANCE_BIN || path.join(repo, "target", "debug", "gemini-balance"),
);
const TOKEN = "sk-codex-test-token-42";
const MODEL = "gemini-2.5-flash";

let fake;
let gateway;
let base;
let fakeUrl;
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
  const port = await freePort();
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
      ENV_FILE: "/nonexistent",
    },
  });
  gateway.stdout.on("data", (d) => (log += d));
  gateway.stderr.on("data", (d) => (log += d));
  await waitUp(`http://127.0.0.1:${fakePort}/__fake/requests`);
  await waitUp(`http://127.0.0.1:${port}/health`);
  base = `http://127.0.0.1:${port}/v1`;
  fakeUrl = `http://127.0.0.1:${fakePort}`;
});

after(() => {
  for (const p of [gateway, fake]) p?.kill();
});

const provider = () => createOpenAI({ baseURL: base, apiKey: TOKEN });

test("generateText with openai(model) (Responses API)", async () => {
  const r = await generateText({ model: provider()(MODEL), system: "Be brief.", prompt: "hello there" });
  assert.ok(r.text.length > 0);
  assert.equal(r.finishReason, "stop");
  assert.ok(r.usage.inputTokens > 0);
  // A second turn replays the first answer as an item_reference (store: true).
  const again = await generateText({
    model: provider()(MODEL),
    messages: [{ role: "user", content: "hello there" }, ...r.response.messages, { role: "user", content: "more" }],
  });
  assert.ok(again.text.length > 0);
});

test("streamText arrives in pieces with usage", async () => {
  const r = streamText({ model: provider()(MODEL), prompt: "go [[events=4]]" });
  const parts = [];
  for await (const t of r.textStream) parts.push(t);
  assert.ok(parts.length >= 2, `pieces: ${parts.length}`);
  assert.equal(await r.finishReason, "stop");
  assert.ok((await r.usage).outputTokens > 0);
});

test("tools: a call, its result, and the answer", async () => {
  const r = await generateText({
    model: provider()(MODEL),
    prompt: "Weather in Oslo?",
    tools: {
      get_weather: tool({
        description: "Weather by city",
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => ({ city, tempC: 4 }),
      }),
    },
    stopWhen: stepCountIs(3),
  });
  assert.ok(r.steps.length >= 2, `steps: ${r.steps.length}`);
  assert.equal(r.steps[0].toolCalls[0].toolName, "get_weather");
  assert.match(r.text, /tempC/);
});

test("generateObject with a zod schema", async () => {
  const r = await generateObject({
    model: provider()(MODEL),
    schema: z.object({ name: z.string(), age: z.number().int() }),
    prompt: "Invent a person.",
  });
  assert.equal(typeof r.object.name, "string");
  assert.equal(typeof r.object.age, "number");
});

test("codex exec completes a prompt through the gateway", async (t) => {
  const codex = path.join(here, "node_modules", ".bin", "codex");
  if (!fs.existsSync(codex)) {
    t.skip("@openai/codex is not installed (npm ci)");
    return;
  }
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "codex-home-"));
  fs.writeFileSync(
    path.join(home, "config.toml"),
    [
      `model = "${MODEL}"`,
      `model_provider = "gateway"`,
      `[model_providers.gateway]`,
      `name = "gemini-balance"`,
      `base_url = "${base}"`,
      `env_key = "GATEWAY_TOKEN"`,
      `wire_api = "responses"`,
      "",
    ].join("\n"),
  );
  const run = spawnSync(
    codex,
    ["exec", "--skip-git-repo-check", "--sandbox", "read-only", "Say hello."],
    {
      env: { ...process.env, CODEX_HOME: home, GATEWAY_TOKEN: TOKEN },
      cwd: home,
      encoding: "utf8",
      timeout: 120000,
      input: "",
    },
  );
  assert.equal(run.status, 0, `codex exec failed:\n${run.stdout}\n${run.stderr}\n${log}`);
  assert.ok(run.stdout.trim().length > 0, "codex printed the final answer");
  const seen = await (await fetch(`${fakeUrl}/__fake/requests`)).json();
  const streamed = seen.filter((r) => r.path.includes(":streamGenerateContent"));
  assert.ok(streamed.length > 0, "Codex's turn reached Gemini as a stream");
  const body = JSON.parse(streamed[streamed.length - 1].body);
  assert.ok(body.systemInstruction, "Codex's developer messages became the system instruction");
});
