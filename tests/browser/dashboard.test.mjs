// Browser test of /dashboard: the real binary in front of its fake upstream
// (a second process of the same binary), driven through Debian's Chromium by
// playwright-core. Run from scripts/test.sh, or: cd tests/browser && npm ci && npm test
//
// Env: GEMINI_BALANCE_BIN (default ../../target/debug/gemini-balance),
//      CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ../../target).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = process.env.GEMINI_BALANCE_BIN || path.join(root, 'target', 'debug', 'gemini-balance');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.SCREENSHOT_DIR || path.join(root, 'target');
const TOKEN = 'sk-browser-test-admin-token-7f3a9c';
const GOOD = 'good-browser-key-000000001';
const QUOTA = 'quota-browser-key-00000002';
const BAD = 'bad-browser-key-0000000003';
const KEYS = [GOOD, QUOTA, BAD];

let fake;
let gw;
let browser;
let fakeBase;
let base;
let logPath;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch (_) { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(url + ' did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setBehavior(key, behavior) {
  const r = await fetch(`${fakeBase}/__fake/keys/${encodeURIComponent(key)}`, {
    method: 'POST', body: JSON.stringify(behavior),
  });
  assert.equal(r.status, 200, await r.text());
}

async function chat(model) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }] }),
  });
  await r.arrayBuffer();
  return r.status;
}

async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stop(p) {
  if (!p || p.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { p.kill('SIGKILL'); }, 10000);
    p.once('exit', () => { clearTimeout(t); resolve(); });
    p.kill('SIGTERM');
  });
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const fakePort = await freePort();
  const port = await freePort();
  fakeBase = `http://127.0.0.1:${fakePort}`;
  base = `http://127.0.0.1:${port}`;
  fake = spawn(BIN, ['fake', '--port', String(fakePort)], { stdio: 'ignore' });
  await waitHttp(`${fakeBase}/__fake/requests`);
  // The quota key cools for two minutes: long enough to see it in the page.
  await setBehavior(QUOTA, { behavior: 'quota', retry_secs: 120 });

  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('API_KEYS') || k.startsWith('ALLOWED_TOKENS') || k === 'AUTH_TOKEN') delete env[k];
  Object.assign(env, {
    API_KEYS: JSON.stringify(KEYS),
    ALLOWED_TOKENS: JSON.stringify([TOKEN]),
    BASE_URL: `${fakeBase}/v1beta`,
    PORT: String(port),
    HOST: '127.0.0.1',
    CHECK_INTERVAL_HOURS: '0',
    KEEPALIVE_MINUTES: '0',
    KEY_SELECTION: 'round_robin',
    MAX_RETRIES: '3',
    ENV_FILE: '/nonexistent',
  });
  logPath = path.join(OUT, 'dashboard-test-gateway.log');
  const log = createWriteStream(logPath);
  gw = spawn(BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  gw.stdout.pipe(log);
  gw.stderr.pipe(log);
  await waitHttp(`${base}/health`);

  // Traffic: every key gets used (the bad one is disabled, the quota one
  // cools down, retries land on the good one), two models, and one error.
  for (let i = 0; i < 6; i++) assert.equal(await chat('gemini-2.5-flash'), 200);
  for (let i = 0; i < 3; i++) assert.equal(await chat('gemini-2.0-flash'), 200);
  assert.equal(await chat('gemini-9-unknown'), 404);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  await stop(gw);
  await stop(fake);
});

// Open the page in a fresh context, recording every request and console error.
async function open(url, viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: viewport.width < 500 ? 2 : 1 });
  const page = await context.newPage();
  const requests = [];
  const problems = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  const res = await page.goto(url);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /default-src 'none'/);
  return { context, page, requests, problems };
}

async function signIn(page) {
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#board').isVisible(), false);
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.locator('#board').waitFor({ state: 'visible' });
  await page.locator('#keys tbody tr').first().waitFor();
}

function row(page, i) {
  return page.locator(`#keys tbody tr[data-index="${i}"]`);
}

function assertSameOrigin(requests, origin) {
  assert.ok(requests.length > 0);
  for (const u of requests) {
    if (u.startsWith('data:')) continue;
    assert.equal(new URL(u).origin, origin, `request to another origin: ${u}`);
    assert.ok(!u.includes(TOKEN), 'token in a URL');
  }
}

test('dashboard shows keys, traffic and errors, and its admin actions work', { timeout: 120000 }, async () => {
  const { context, page, requests, problems } = await open(`${base}/dashboard`, { width: 1280, height: 900 });
  await signIn(page);

  // Every key, masked, with its state.
  assert.equal(await page.locator('#keys tbody tr').count(), 3);
  assert.equal(await row(page, 0).locator('td.key').textContent(), 'good…0001');
  assert.equal(await row(page, 0).locator('.state').first().textContent(), 'active');
  const cooling = row(page, 1).locator('.state').first();
  assert.match(await cooling.textContent(), /^cooling \d+:\d\d$/);
  const t1 = await cooling.textContent();
  await until('the countdown to tick', async () => (await cooling.textContent()) !== t1, 5000);
  const coolingCell = await row(page, 1).locator('td.state-cell').textContent();
  assert.match(coolingCell, /gemini-2\.5-flash · \d+:\d\d/);
  assert.match(coolingCell, /gemini-2\.0-flash · \d+:\d\d/);
  assert.equal(await row(page, 2).locator('.state').first().textContent(), 'disabled');
  assert.match(await row(page, 2).locator('.detail.bad').textContent(), /API key not valid|HTTP 400/i);
  assert.notEqual(await row(page, 0).locator('td.when').textContent(), 'never');
  const successes = await row(page, 0).locator('td.successes').textContent();
  assert.ok(Number(successes.replace(/\D/g, '')) >= 9, `successes: ${successes}`);
  assert.equal(await row(page, 2).locator('td.failures').textContent(), '1');
  assert.equal(await page.locator('#t-total').textContent(), '3');

  // The charts have bars, split by status class and by model.
  assert.ok(await page.locator('#chart-status rect.bar.s2xx').count() > 0);
  assert.ok(await page.locator('#chart-status rect.bar.s4xx').count() > 0);
  assert.ok(await page.locator('#chart-model rect.bar').count() > 0);
  const legend = await page.locator('#legend-model').textContent();
  assert.match(legend, /gemini-2\.5-flash/);
  assert.match(legend, /gemini-2\.0-flash/);

  // Recent errors: the 404 for an unknown model, with Google's message.
  const errors = page.locator('#errors tbody tr');
  assert.ok(await errors.count() > 0);
  const errText = await errors.first().textContent();
  assert.match(errText, /gemini-9-unknown/);
  assert.match(errText, /404/);

  await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });

  // Re-verify: the bad key works again at the fake, so it comes back.
  await setBehavior(BAD, { behavior: 'ok' });
  await page.click('#verify');
  await until('the bad key to become active', async () => (await row(page, 2).getAttribute('data-state')) === 'active');
  assert.equal(await row(page, 2).locator('.state').first().textContent(), 'active');
  assert.match(await page.locator('#toast').textContent(), /Verification finished: 2 good, 1 bad/);
  // The quota key is still cooling (a 429 on verification changes nothing)...
  assert.equal(await row(page, 1).getAttribute('data-state'), 'cooling');
  // ...until it is reset by hand.
  await row(page, 1).locator('button').click();
  await until('the reset key to become active', async () => (await row(page, 1).getAttribute('data-state')) === 'active');
  assert.match(await page.locator('#toast').textContent(), /reset/);

  // The page refreshes itself: new traffic shows up without a reload.
  const before = await page.locator('#t-requests').textContent();
  assert.equal(await chat('gemini-2.5-flash'), 200);
  await until('the request count to change', async () => (await page.locator('#t-requests').textContent()) !== before, 12000);

  // The token lives in sessionStorage only; no cookie, nothing in a URL.
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('gemini-balance.admin-token')), TOKEN);
  assertSameOrigin(requests, base);
  assert.ok(requests.some((u) => new URL(u).pathname === '/status'));
  assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  const html = await page.content();
  for (const k of KEYS) assert.ok(!html.includes(k), 'full key in the page');
  assert.ok(!html.includes(TOKEN), 'token in the page');

  // Signing out forgets the token.
  await page.click('#signout');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await context.close();
});

test('a wrong token is refused and nothing is shown', { timeout: 60000 }, async () => {
  const { context, page } = await open(`${base}/dashboard`, { width: 800, height: 600 });
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', 'sk-wrong');
  await page.click('#login-form button[type=submit]');
  await until('the refusal', async () => (await page.locator('#login-error').textContent()).includes('not accepted'));
  assert.equal(await page.locator('#board').isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.screenshot({ path: path.join(OUT, 'dashboard-login.png') });
  await context.close();
});

test('under /hf on a phone-sized screen', { timeout: 60000 }, async () => {
  const { context, page, requests, problems } = await open(`${base}/hf/dashboard`, { width: 390, height: 844 });
  await signIn(page);
  assert.ok(requests.some((u) => new URL(u).pathname === '/hf/status'), 'reads /hf/status');
  assert.ok(requests.some((u) => new URL(u).pathname === '/hf/dashboard.js'));
  assertSameOrigin(requests, base);
  assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  assert.ok(await page.locator('#chart-status rect.bar').count() > 0);
  // Nothing wider than the screen.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `page is ${width}px wide`);
  await page.screenshot({ path: path.join(OUT, 'dashboard-phone.png'), fullPage: true });
  await context.close();
  // The gateway's own log never has the token or a full key either.
  const log = readFileSync(logPath, 'utf8');
  assert.ok(!log.includes(TOKEN));
  for (const k of KEYS) assert.ok(!log.includes(k), 'full key in the log');
});
