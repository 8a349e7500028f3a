// Claude Code (`@anthropic-ai/claude-code`, `claude -p`) against the real
// gateway binary and its fake Gemini upstream (a second process of the same
// binary), both on loopback: ANTHROPIC_BASE_URL is the gateway and
// ANTHROPIC_API_KEY a client token (sent as x-api-key). Claude Code sends
// its real requests: /v1/messages?beta=true, stream, adaptive thinking and
// effort, system blocks with cache_control, a dozen tools whose schemas
// Gemini's `parameters` would refuse uncleaned.
//
//   cd tests/claude && npm ci && GEMINI_BALANCE_BIN=../../target/debug/gemini-balance node --test
//
// scripts/test.sh runs it. The fake answers `[[nocall]]` with text although
// tools are declared, and `[[call=Read]]` with a call of Claude Code's Read
// tool, whose result it then echoes.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const bin = path.resolve(
  process.env.GEMINI_BALANCE_BIN || path.join(repo, "target", "debug", "gemini-balance"),
);
const claudeBin = path.join(here, "node_modules", ".bin", "claude");
const TOKEN = "sk-claude-code-test-0001";

let fake;
let gateway;
let fakeUrl;
let gatewayUrl;
let gatewayLog = "";

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

async function waitUp(url, child) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}:\n${gatewayLog}`);
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up:\n${gatewayLog}`);
}

before(async () => {
  const fakePort = await freePort();
  // Two separate picks can return the same port: pick again until they differ.
  let port = await freePort();
  while (port === fakePort) port = await freePort();
  fakeUrl = `http://127.0.0.1:${fakePort}`;
  gatewayUrl = `http://127.0.0.1:${port}`;
  fake = spawn(bin, ["fake", "--port", String(fakePort)], { stdio: "ignore" });
  const env = {
    PATH: process.env.PATH,
    API_KEYS: JSON.stringify(["key-one-000000001", "key-two-000000002"]),
    ALLOWED_TOKENS: JSON.stringify([TOKEN]),
    BASE_URL: `${fakeUrl}/v1beta`,
    PORT: String(port),
    HOST: "127.0.0.1",
    CHECK_INTERVAL_HOURS: "0",
    KEEPALIVE_MINUTES: "0",
    ENV_FILE: "/nonexistent",
  };
  gateway = spawn(bin, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  gateway.stdout.on("data", (d) => (gatewayLog += d));
  gateway.stderr.on("data", (d) => (gatewayLog += d));
  await waitUp(`${fakeUrl}/__fake/requests`, fake);
  await waitUp(`${gatewayUrl}/health`, gateway);
});

after(() => {
  gateway?.kill();
  fake?.kill();
});

/** Run `claude -p prompt` in a fresh HOME and working directory. */
function claude(prompt) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "claude-home-"));
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    ANTHROPIC_BASE_URL: gatewayUrl,
    ANTHROPIC_API_KEY: TOKEN,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
  };
  return new Promise((resolve, reject) => {
    const child = spawn(claudeBin, ["-p", prompt], { env, cwd: home, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      fs.rmSync(home, { recursive: true, force: true });
      resolve({ code, out, err });
    });
  });
}

async function fakeRequests() {
  const r = await fetch(`${fakeUrl}/__fake/requests`);
  return (await r.json()).filter((q) => q.path.includes("GenerateContent"));
}

async function clearFake() {
  await fetch(`${fakeUrl}/__fake/clear`, { method: "POST" });
}

test("claude -p completes a prompt through the gateway", async () => {
  await clearFake();
  const r = await claude("Say hello to the gateway [[nocall]]");
  assert.equal(r.code, 0, `${r.out}\n${r.err}\n${gatewayLog}`);
  assert.match(r.out, /Echo: .*Say hello to the gateway/s);
  const reqs = await fakeRequests();
  assert.ok(reqs.length >= 1);
  // Claude's model name went through MODEL_ALIASES; the stream was asked for.
  assert.match(reqs[0].path, /\/models\/gemini-2\.5-(pro|flash):streamGenerateContent$/);
  const body = JSON.parse(reqs[0].body);
  const decls = body.tools.flatMap((t) => t.functionDeclarations || []);
  assert.ok(decls.length > 3, "Claude Code's tools were passed on");
  const params = JSON.stringify(decls.map((d) => d.parameters || {}));
  for (const gone of ["$schema", "propertyNames", "exclusiveMinimum", "additionalProperties"]) {
    assert.ok(!params.includes(gone), `${gone} left in the tool schemas`);
  }
  assert.match(gatewayLog, /POST \/v1\/messages 200/);
});

test("claude -p runs a task that uses its Read tool", async () => {
  await clearFake();
  const r = await claude("Read the notes file [[call=Read]]");
  assert.equal(r.code, 0, `${r.out}\n${r.err}\n${gatewayLog}`);
  // The fake echoes the tool result Claude Code sent back.
  assert.match(r.out, /Tool Read returned:/);
  const reqs = await fakeRequests();
  const last = JSON.parse(reqs[reqs.length - 1].body);
  const turns = last.contents;
  const call = turns.flatMap((c) => c.parts).find((p) => p.functionCall);
  const response = turns.flatMap((c) => c.parts).find((p) => p.functionResponse);
  assert.equal(call.functionCall.name, "Read");
  // Gemini's signature came back with the call, through a thinking block.
  assert.ok(call.thoughtSignature, "the call's thought signature was replayed");
  assert.equal(response.functionResponse.name, "Read");
});
