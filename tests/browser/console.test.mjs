// Browser test of the admin console at /dashboard: the real binary in front of
// its fake upstream (a second process of the same binary), driven through
// Debian's Chromium by playwright-core, each flow end to end (issue 14, "How
// it is proven"). Run from scripts/test.sh, or:
//   cd tests/browser && npm ci && npm test
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
const TOKEN = 'sk-console-test-admin-token-51c2e8';
// Env keys: the fake answers "good…" normally; the quota key gets a long 429.
const ENV_GOOD = 'good-console-key-00000001';
const ENV_QUOTA = 'quota-console-key-0000002';
// Keys pasted in the page look like Google's (AIza + 35); built here, at run
// time, never written out as literals.
const gkey = (tag, end) => 'AIza' + (tag + '_'.repeat(35)).slice(0, 31) + end;
const PASTE_A = gkey('ConsolePastedKeyA', 'pa01');
const PASTE_B = gkey('ConsolePastedKeyB', 'pb02');
const PASTE_BAD = gkey('ConsolePastedBadKey', 'bd03');
const mask = (k) => k.slice(0, 4) + '…' + k.slice(-4);
const FULL_KEYS = [ENV_GOOD, ENV_QUOTA, PASTE_A, PASTE_B, PASTE_BAD];

let fake;
let gw;
let browser;
let fakeBase;
let base;
let logPath;
// The main page, signed in once, and what it saw.
let ctx;
let page;
const requests = [];
const problems = [];
const consoleText = [];
const bodies = [];

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
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello from the console test' }] }),
  });
  await r.arrayBuffer();
  return r.status;
}

async function admin(method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => null) };
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
  // Two separate picks can return the same port: pick again until they differ.
  let port = await freePort();
  while (port === fakePort) port = await freePort();
  fakeBase = `http://127.0.0.1:${fakePort}`;
  base = `http://127.0.0.1:${port}`;
  fake = spawn(BIN, ['fake', '--port', String(fakePort)], { stdio: 'ignore' });
  await waitHttp(`${fakeBase}/__fake/requests`);
  await setBehavior(ENV_QUOTA, { behavior: 'quota', retry_secs: 300 });
  await setBehavior(PASTE_BAD, { behavior: 'invalid' });

  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(API_KEYS|ALLOWED_TOKENS|AUTH_TOKEN|DATA_DIR|REDIS_URL|ERROR_LOG_)/.test(k)) delete env[k];
  }
  Object.assign(env, {
    API_KEYS: JSON.stringify([ENV_GOOD, ENV_QUOTA]),
    ALLOWED_TOKENS: JSON.stringify([TOKEN]),
    BASE_URL: `${fakeBase}/v1beta`,
    PORT: String(port),
    HOST: '127.0.0.1',
    CHECK_INTERVAL_HOURS: '0',
    KEEPALIVE_MINUTES: '0',
    KEY_SELECTION: 'round_robin',
    MAX_RETRIES: '3',
    ERROR_LOG_RECORD_BODY: 'true',
    ENV_FILE: '/nonexistent',
  });
  logPath = path.join(OUT, 'console-test-gateway.log');
  const log = createWriteStream(logPath);
  gw = spawn(BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  gw.stdout.pipe(log);
  gw.stderr.pipe(log);
  await waitHttp(`${base}/health`);
  // Some traffic before the page opens: the quota key cools, retries land on the good one.
  for (let i = 0; i < 4; i++) assert.equal(await chat('gemini-2.5-flash'), 200);

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

/** A fresh context on `url`, recording requests, responses and console output. */
async function open(url, viewport, locale) {
  const context = await browser.newContext({
    viewport, locale: locale || 'en-US', acceptDownloads: true,
    deviceScaleFactor: viewport.width < 500 ? 2 : 1,
  });
  const p = await context.newPage();
  p.on('request', (r) => requests.push(r.url()));
  p.on('console', (m) => { consoleText.push(m.text()); if (m.type() === 'error') problems.push(m.text()); });
  p.on('pageerror', (e) => problems.push(String(e)));
  p.on('response', async (r) => {
    if (new URL(r.url()).pathname.endsWith('/admin/keys/export')) return;
    try { bodies.push({ url: r.url(), text: await r.text() }); } catch (_) { /* navigated away */ }
  });
  const res = await p.goto(url);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /default-src 'none'/);
  return { context, page: p };
}

async function signIn(p) {
  await p.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await p.locator('#console').isVisible(), false);
  await p.fill('#token', TOKEN);
  await p.click('#login-form button[type=submit]');
  await p.locator('#console').waitFor({ state: 'visible' });
}

function keyRow(p, k) {
  return p.locator('#keys-table tbody tr', { has: p.locator('span.mask', { hasText: mask(k) }) });
}

async function tab(p, name) {
  await p.click('#tabbtn-' + name);
  await p.locator('#tab-' + name).waitFor({ state: 'visible' });
}

const shot = (p, name, full = true) => p.screenshot({ path: path.join(OUT, `console-${name}.png`), fullPage: full });

test('a wrong token is refused with a clear message and nothing is shown', { timeout: 60000 }, async () => {
  const { context, page: p } = await open(`${base}/dashboard`, { width: 900, height: 700 });
  await p.locator('#login').waitFor({ state: 'visible' });
  await p.fill('#token', 'sk-wrong-token');
  await p.click('#login-form button[type=submit]');
  await until('the refusal', async () => (await p.locator('#login-error').textContent()).includes('not accepted'));
  assert.equal(await p.locator('#console').isVisible(), false);
  assert.equal(await p.evaluate(() => sessionStorage.length), 0);
  await shot(p, 'login', false);
  await context.close();
});

test('log in; the keys table shows every key masked with its state', { timeout: 60000 }, async () => {
  ({ context: ctx, page } = await open(`${base}/dashboard`, { width: 1280, height: 900 }));
  await signIn(page);
  await keyRow(page, ENV_GOOD).waitFor();
  assert.equal(await page.locator('#keys-table tbody tr').count(), 2);
  assert.equal(await keyRow(page, ENV_GOOD).getAttribute('data-state'), 'active');
  const cooling = keyRow(page, ENV_QUOTA);
  assert.equal(await cooling.getAttribute('data-state'), 'cooling');
  const badge = cooling.locator('.state').first();
  assert.match(await badge.textContent(), /^cooling \d+:\d\d$/);
  const t1 = await badge.textContent();
  await until('the countdown to tick', async () => (await badge.textContent()) !== t1, 5000);
  assert.match(await cooling.locator('td.state-cell').textContent(), /gemini-2\.5-flash · \d+:\d\d/);
  assert.ok(Number((await keyRow(page, ENV_GOOD).locator('td.requests').textContent()).replace(/\D/g, '')) >= 4);
  // Tokens today come from the usage counters (the fake reports usageMetadata).
  assert.ok(Number((await keyRow(page, ENV_GOOD).locator('td.tokens').textContent()).replace(/\D/g, '')) > 0);
  assert.equal(await page.locator('#kt-all').textContent(), '2');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('gemini-balance.admin-token')), TOKEN);
});

test('add keys by pasting text with noise around them', { timeout: 60000 }, async () => {
  const text = `Here are my keys:\n  - ${PASTE_A}, (work)\nold=${PASTE_B};\n` +
    `and this one "${PASTE_BAD}" too. Also ${PASTE_A} again, and AIza-too-short.`;
  await page.fill('#paste-text', text);
  await page.click('#paste-add');
  await until('the add result', async () => /Added/.test(await page.locator('#paste-result').textContent()));
  // The second copy of A counts as a duplicate; "AIza-too-short" is not a key at all.
  assert.equal(await page.locator('#paste-result').textContent(), 'Added 3 · duplicates 1 · rejected 0');
  // The pasted text leaves the page once the gateway has it.
  assert.equal(await page.inputValue('#paste-text'), '');
  await keyRow(page, PASTE_BAD).waitFor();
  assert.equal(await page.locator('#keys-table tbody tr').count(), 5);
  for (const k of [PASTE_A, PASTE_B]) {
    assert.match(await keyRow(page, k).locator('td.key').textContent(), /added/);
  }
  // The same paste again: all duplicates.
  await page.fill('#paste-text', `${PASTE_A}\n${PASTE_B}`);
  await page.click('#paste-add');
  await until('the duplicate result', async () => /duplicates 2/.test(await page.locator('#paste-result').textContent()));
  assert.equal(await page.locator('#paste-result').textContent(), 'Added 0 · duplicates 2 · rejected 0');
});

test('a bad key turns disabled after traffic; verify it, then delete it', { timeout: 90000 }, async () => {
  const bad = keyRow(page, PASTE_BAD);
  // Round robin over five keys: a handful of calls reaches the bad one.
  for (let i = 0; i < 6; i++) assert.equal(await chat('gemini-2.5-flash'), 200);
  // No reload: the live refresh shows it.
  await until('the bad key to be disabled', async () => (await bad.getAttribute('data-state')) === 'disabled', 12000);
  assert.equal(await bad.locator('.state').first().textContent(), 'disabled');
  assert.match(await bad.locator('td.msg').textContent(), /API key not valid|API_KEY_INVALID|400/i);
  await shot(page, 'keys-en');

  // Filter by state, sort, select it, verify: still bad.
  await page.selectOption('#keys-state', 'disabled');
  await until('the filter', async () => (await page.locator('#keys-table tbody tr').count()) === 1);
  await bad.locator('input.pick').check();
  assert.equal(await page.locator('#keys-selected').textContent(), '1 selected');
  await page.click('#bulk-verify');
  await until('the verification', async () => /Verification finished: 0 good, 1 bad/.test(await page.locator('#toast').textContent()));
  assert.equal(await bad.getAttribute('data-state'), 'disabled');

  // Delete asks first, then removes the key.
  await page.click('#bulk-delete');
  assert.match(await page.locator('#bulk-delete').textContent(), /Delete 1 selected\? Press again/);
  await page.click('#bulk-delete');
  await until('the key to go', async () => (await bad.count()) === 0);
  assert.match(await page.locator('#toast').textContent(), /Keys deleted: 1\./);
  await page.selectOption('#keys-state', 'all');
  await until('four keys', async () => (await page.locator('#keys-table tbody tr').count()) === 4);
  const listed = await admin('GET', '/admin/keys');
  assert.ok(!listed.json.keys.some((k) => k.masked === mask(PASTE_BAD)));

  // Reset brings the cooling key back.
  const quota = keyRow(page, ENV_QUOTA);
  assert.equal(await quota.getAttribute('data-state'), 'cooling');
  await quota.locator('input.pick').check();
  await page.click('#bulk-reset');
  await until('the reset', async () => (await quota.getAttribute('data-state')) === 'active');
  await quota.locator('input.pick').uncheck();
});

test('export downloads the full keys as a file', { timeout: 30000 }, async () => {
  await page.selectOption('#export-state', 'all');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const file = await download.path();
  const lines = readFileSync(file, 'utf8').trim().split('\n').sort();
  assert.deepEqual(lines, [ENV_GOOD, ENV_QUOTA, PASTE_A, PASTE_B].sort());
  assert.match(download.suggestedFilename(), /^gemini-keys-all\.txt$/);
});

test('settings: MAX_RETRIES edited in place, a bad value refused with the parser\'s message, reverted', { timeout: 60000 }, async () => {
  await tab(page, 'settings');
  const row = page.locator('.setting[data-name="MAX_RETRIES"]');
  await row.waitFor();
  assert.equal(await page.inputValue('#set-MAX_RETRIES'), '3');
  assert.equal(await row.getAttribute('data-source'), 'env');
  // An invalid value: the start-up parser's one-line error, under the field, nothing applied.
  await page.fill('#set-MAX_RETRIES', 'lots');
  await page.press('#set-MAX_RETRIES', 'Enter');
  const error = row.locator('.set-error');
  await until('the inline error', async () => (await error.textContent()) !== '');
  const direct = await admin('PATCH', '/admin/config', { MAX_RETRIES: 'lots' });
  assert.equal(direct.status, 400);
  assert.equal(await error.textContent(), direct.json.error.message);
  assert.match(await error.textContent(), /MAX_RETRIES/);
  assert.equal(await page.getAttribute('#set-MAX_RETRIES', 'aria-invalid'), 'true');
  // A live refresh does not overwrite the edit in progress.
  await page.waitForTimeout(6000);
  assert.equal(await page.inputValue('#set-MAX_RETRIES'), 'lots');
  let cfg = await admin('GET', '/admin/config');
  assert.equal(cfg.json.settings.find((s) => s.name === 'MAX_RETRIES').value, '3');
  await shot(page, 'settings-en');

  // A good value is saved, stored, and applies.
  await page.fill('#set-MAX_RETRIES', '1');
  await page.click('.setting[data-name="MAX_RETRIES"] button[type=submit]');
  await until('the stored source', async () => (await row.getAttribute('data-source')) === 'stored');
  assert.equal(await error.textContent(), '');
  cfg = await admin('GET', '/admin/config');
  assert.equal(String(cfg.json.settings.find((s) => s.name === 'MAX_RETRIES').value), '1');

  // Revert (asks first) goes back to the environment's value.
  const revert = row.locator('button', { hasText: 'Revert' });
  await revert.click();
  await row.locator('button.armed').click();
  await until('the env source', async () => (await row.getAttribute('data-source')) === 'env');
  assert.equal(await page.inputValue('#set-MAX_RETRIES'), '3');

  // Restart-only settings are read-only with the reason; secrets are masked.
  const port = page.locator('.setting[data-name="PORT"]');
  assert.equal(await port.locator('input').count(), 0);
  assert.match(await port.textContent(), /Needs a restart/);
  const tokens = page.locator('.setting[data-name="ALLOWED_TOKENS"]');
  assert.ok(!(await tokens.textContent()).includes(TOKEN));
  assert.equal(await tokens.locator('button', { hasText: 'Replace' }).count(), 1);
});

test('error log: a 429 found by filter, its detail opened', { timeout: 60000 }, async () => {
  // A fresh 429 (the quota key was reset): two rounds cover every key.
  await setBehavior(ENV_QUOTA, { behavior: 'quota', retry_secs: 300 });
  for (let i = 0; i < 4; i++) assert.equal(await chat('gemini-2.0-flash'), 200);
  await tab(page, 'logs');
  await page.fill('#logs-status', '429');
  await page.fill('#logs-key', mask(ENV_QUOTA));
  await page.click('#logs-apply');
  const rows = page.locator('#logs-table tbody tr');
  await until('429 rows', async () => (await rows.count()) > 0);
  for (const text of await rows.allTextContents()) {
    assert.match(text, /429/);
    assert.ok(text.includes(mask(ENV_QUOTA)), text);
  }
  await rows.first().locator('button').click();
  const detail = page.locator('#logs-detail');
  await detail.waitFor({ state: 'visible' });
  const d = await detail.textContent();
  assert.match(d, /RESOURCE_EXHAUSTED/);
  assert.ok(d.includes(mask(ENV_QUOTA)));
  assert.match(d, /Hello from the console test/, 'the recorded request body');
  await shot(page, 'logs-en');
  await page.keyboard.press('Escape');
  await detail.waitFor({ state: 'hidden' });
  // A status filter that matches nothing.
  await page.fill('#logs-status', '418');
  await page.click('#logs-apply');
  await until('no rows', async () => (await rows.count()) === 0);
  assert.equal(await page.locator('#logs-empty').isVisible(), true);
  await page.click('#logs-clear');
  await until('rows again', async () => (await rows.count()) > 0);
});

test('usage: charts and token totals move after traffic', { timeout: 60000 }, async () => {
  await tab(page, 'usage');
  const tile = (f) => page.locator(`#usage-totals .tile[data-field="${f}"] .value`);
  await tile('client_requests').waitFor();
  const value = async (f) => Number((await tile(f).textContent()).replace(/\D/g, ''));
  assert.ok(await page.locator('#chart-status rect.bar').count() > 0);
  assert.ok(await page.locator('#chart-tokens rect.bar').count() > 0);
  assert.match(await page.locator('#legend-by').textContent(), /gemini-2\.5-flash/);
  assert.match(await page.locator('#usage-top429').textContent(), new RegExp(mask(ENV_QUOTA)));
  const before1 = await value('client_requests');
  const prompt1 = await value('prompt_tokens');
  const output1 = await value('output_tokens');
  assert.ok(prompt1 > 0 && output1 > 0, `tokens ${prompt1} ${output1}`);
  for (let i = 0; i < 3; i++) assert.equal(await chat('gemini-2.5-pro'), 200);
  // No click: the live refresh moves them.
  await until('the totals to move', async () => (await value('client_requests')) >= before1 + 3 && (await value('prompt_tokens')) > prompt1, 15000);
  await until('the new model in the chart', async () => /gemini-2\.5-pro/.test(await page.locator('#legend-by').textContent()), 10000);
  // By key: the legend names keys by their masks.
  await page.selectOption('#usage-by', 'key');
  await until('keys in the legend', async () => (await page.locator('#legend-by').textContent()).includes(mask(ENV_GOOD)));
  await page.click('#usage-window button[data-window="24h"]');
  await until('the 24 h window', async () => (await page.getAttribute('#usage-window button[data-window="24h"]', 'aria-pressed')) === 'true');
  await page.click('#usage-window button[data-window="1h"]');
  await page.selectOption('#usage-by', 'model');
  await until('models in the legend', async () => /gemini-2\.5-pro/.test(await page.locator('#legend-by').textContent()));
  await shot(page, 'usage-en');
});

/** Every English word of the en dictionary still visible on the page (not data). */
async function englishLeft(p) {
  return p.evaluate(async () => {
    const { DICTS } = await import('./dashboard-i18n.js');
    // Identifiers are not prose: setting names (TIME_OUT), values (round_robin, OFF),
    // paths and code (.env, models.get, POST /verify, -search) stay as they are.
    const code = (s) => s.replace(/[A-Za-z0-9]*[_.\/-][A-Za-z0-9_.\/-]*/g, ' ').replace(/\b[A-Z]{2,}\b/g, ' ');
    const words = (s) => (code(s).match(/[A-Za-z][A-Za-z']{2,}/g) || []).map((w) => w.toLowerCase());
    const zhWords = new Set(Object.values(DICTS['zh-CN']).flatMap(words));
    const enWords = new Set(Object.values(DICTS.en).flatMap(words).filter((w) => !zhWords.has(w)));
    const left = [];
    const visible = (e) => e && e.checkVisibility && e.checkVisibility();
    const isRaw = (e) => !!(e && e.closest('[data-raw]'));
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const e = n.parentElement;
      if (!visible(e) || isRaw(e) || e.closest('noscript, script, style')) continue;
      for (const w of words(n.textContent)) if (enWords.has(w)) left.push(w + ' in "' + n.textContent.trim().slice(0, 60) + '"');
    }
    for (const e of document.querySelectorAll('[placeholder], [aria-label], [data-label], [title]')) {
      if (!visible(e) || isRaw(e)) continue;
      for (const a of ['placeholder', 'aria-label', 'data-label']) {
        for (const w of words(e.getAttribute(a) || '')) if (enWords.has(w)) left.push(w + ' in @' + a + ' "' + e.getAttribute(a) + '"');
      }
    }
    if (!/[\u4e00-\u9fff]/.test(document.body.innerText)) left.push('no Chinese text at all');
    return left;
  });
}

test('both dictionaries have the same keys; in Chinese no English remains on any tab; back to English', { timeout: 90000 }, async () => {
  const keys = await page.evaluate(async () => {
    const { DICTS } = await import('./dashboard-i18n.js');
    return Object.fromEntries(Object.entries(DICTS).map(([l, d]) => [l, Object.keys(d).sort()]));
  });
  assert.deepEqual(Object.keys(keys).sort(), ['en', 'zh-CN']);
  assert.deepEqual(keys['zh-CN'], keys.en);

  await tab(page, 'keys');
  await page.selectOption('#lang', 'zh-CN');
  try {
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.textContent('#tabbtn-keys'), '密钥');
    for (const name of ['keys', 'settings', 'logs', 'usage']) {
      await tab(page, name);
      if (name === 'logs') {
        await page.locator('#logs-table tbody tr').first().waitFor();
        await page.locator('#logs-table tbody tr button').first().click();
        await page.locator('#logs-detail').waitFor({ state: 'visible' });
      }
      if (name === 'usage') await page.locator('#chart-status rect.bar').first().waitFor();
      await page.waitForTimeout(300);
      assert.deepEqual(await englishLeft(page), [], `English left on the ${name} tab`);
      await shot(page, `${name}-zh`);
    }
    // Numbers and times in the reader's locale: the log's time is formatted by Intl for zh-CN.
    await tab(page, 'logs');
    const time = await page.locator('#logs-table tbody tr td.when').first().textContent();
    const expected = await page.evaluate(() => new Intl.DateTimeFormat('zh-CN', { hour: 'numeric' }).formatToParts(new Date()).some((p) => p.type === 'dayPeriod'));
    if (expected) assert.match(time, /[上下]午/);

    // The choice is remembered across a reload (and the token, for this tab).
    await page.reload();
    await page.locator('#console').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#tabbtn-keys'), '密钥');
    assert.equal(await page.evaluate(() => localStorage.getItem('gemini-balance.lang')), 'zh-CN');

  } finally {
    // Back to English, also when an assertion above failed (the later tests read English).
    await page.selectOption('#lang', 'en');
  }
  assert.equal(await page.textContent('#tabbtn-keys'), 'Keys');
  await tab(page, 'keys');
  await keyRow(page, ENV_GOOD).waitFor();
  assert.equal(await keyRow(page, ENV_GOOD).locator('.state').first().textContent(), 'active');
  assert.ok(!/[\u4e00-\u9fff]/.test(await page.locator('#console').innerText()), 'Chinese left after switching back');
});

test('the keys table pages through thousands of keys and keeps its place across refreshes', { timeout: 120000 }, async () => {
  // 2,000 keys added through the API, then the page is on page 3 with a filter typed in.
  const many = Array.from({ length: 2000 }, (_, i) => gkey('ConsoleBulk' + i, String(i).padStart(4, '0')));
  const r = await admin('POST', '/admin/keys', { keys: many });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.added, 2000);
  try {
    await pageThrough();
  } finally {
    // The bulk keys go again, also when an assertion failed.
    const ids = (await admin('GET', '/admin/keys')).json.keys
      .filter((k) => k.source === 'added' && /^AIza…\d{4}$/.test(k.masked)).map((k) => k.id);
    const del = await admin('POST', '/admin/keys/delete', { ids });
    assert.equal(del.json.deleted, 2000);
  }
});

async function pageThrough() {
  await tab(page, 'keys');
  await until('2004 keys', async () => (await page.locator('#kt-all').textContent()).replace(/\D/g, '') === '2004', 12000);
  assert.equal(await page.locator('#keys-table tbody tr').count(), 50);
  await page.click('#keys-next');
  await page.click('#keys-next');
  assert.match(await page.locator('#keys-page').textContent(), /^Page 3 of 41/);
  const first = await page.locator('#keys-table tbody tr').first().getAttribute('data-id');
  await page.locator('#keys-table tbody tr input.pick').nth(2).check();
  await page.locator('#keys-table tbody tr input.pick').nth(2).focus();
  await page.waitForTimeout(6000); // at least one live refresh
  assert.match(await page.locator('#keys-page').textContent(), /^Page 3 of 41/);
  assert.equal(await page.locator('#keys-table tbody tr').first().getAttribute('data-id'), first);
  assert.equal(await page.locator('#keys-selected').textContent(), '1 selected');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.classList.contains('pick')), true);
  // Search narrows it down.
  await page.fill('#keys-search', mask(ENV_GOOD));
  await until('one match', async () => (await page.locator('#keys-table tbody tr').count()) === 1);
  await page.fill('#keys-search', '');
  await page.click('#keys-pick-none');
}

test('under /hf on a phone-sized screen', { timeout: 60000 }, async () => {
  const { context, page: p } = await open(`${base}/hf/dashboard`, { width: 390, height: 844 });
  await signIn(p);
  await keyRow(p, ENV_GOOD).waitFor();
  const paths = requests.map((u) => new URL(u).pathname);
  assert.ok(paths.includes('/hf/admin/keys'), 'reads /hf/admin/keys');
  assert.ok(paths.includes('/hf/dashboard-keys.js'));
  const width = await p.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `page is ${width}px wide`);
  await shot(p, 'phone-keys');
  for (const name of ['settings', 'logs', 'usage']) {
    await tab(p, name);
    await p.waitForTimeout(500);
    const w = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 390, `${name}: page is ${w}px wide`);
  }
  await shot(p, 'phone-usage');
  // `/dashboard/` lands on the console too.
  const res = await p.goto(`${base}/dashboard/`);
  assert.equal(new URL(res.url()).pathname, '/dashboard');
  await p.locator('#console').waitFor({ state: 'visible' });
  await context.close();
});

test('delete all disabled keys; delete error log entries by filter', { timeout: 90000 }, async () => {
  // A disabled key again: the bad key pasted back, then traffic reaches it.
  const added = await admin('POST', '/admin/keys', { keys: [PASTE_BAD] });
  assert.equal(added.status, 200);
  const disabled = async () => (await admin('GET', '/admin/keys')).json.keys.filter((k) => k.state === 'disabled').length;
  for (let i = 0; i < 12 && (await disabled()) === 0; i++) await chat('gemini-2.5-flash');
  assert.ok((await disabled()) > 0, 'a key was disabled by traffic');
  await tab(page, 'keys');
  await page.selectOption('#keys-state', 'all');
  // Sorting by a column, with the keyboard only: focus its button, Enter.
  const th = page.locator('#keys-table th[data-sort="requests"]');
  await th.locator('button').focus();
  await page.keyboard.press('Enter');
  await until('sorted by requests', async () => /ascending|descending/.test(await th.getAttribute('aria-sort')));
  const first = await th.getAttribute('aria-sort');
  const counts = async () => (await page.locator('#keys-table tbody td.requests').allTextContents()).map((t) => Number((t.match(/\d[\d,]*/) || ['0'])[0].replace(/,/g, '')));
  const c = await counts();
  const sorted = [...c].sort((a, b) => (first === 'ascending' ? a - b : b - a));
  assert.deepEqual(c, sorted, `rows ordered by requests (${first})`);
  await page.keyboard.press('Enter');
  await until('the order reversed', async () => (await th.getAttribute('aria-sort')) !== first);
  await until('the disabled key in the table', async () => (await keyRow(page, PASTE_BAD).getAttribute('data-state')) === 'disabled');
  // Asks first, then deletes every disabled key (and only those).
  const before = (await admin('GET', '/admin/keys')).json.keys.length;
  await page.click('#delete-disabled');
  await page.click('#delete-disabled');
  await until('no disabled key left', async () => (await disabled()) === 0);
  assert.equal((await admin('GET', '/admin/keys')).json.keys.length, before - 1);

  // The error log: the 429 entries deleted by a filter, the others kept.
  assert.ok((await admin('GET', '/admin/logs?status=429')).json.entries.length > 0);
  const others = (await admin('GET', '/admin/logs?limit=500')).json.entries.filter((e) => e.status !== 429).length;
  assert.ok(others > 0, 'entries other than 429s exist');
  await tab(page, 'logs');
  await page.fill('#logs-status', '429');
  await page.fill('#logs-key', '');
  await page.click('#logs-apply');
  const rows = page.locator('#logs-table tbody tr');
  await until('429 rows', async () => (await rows.count()) > 0);
  await page.click('#logs-delete');
  await page.click('#logs-delete');
  await until('the 429 rows gone', async () => (await rows.count()) === 0);
  assert.equal((await admin('GET', '/admin/logs?status=429')).json.entries.length, 0);
  const left = (await admin('GET', '/admin/logs?limit=500')).json.entries;
  assert.equal(left.length, others, 'only the filtered entries were deleted');
  await page.click('#logs-clear');
});

test('no full key or token in the page, its responses (but the export) or the console; same origin only', { timeout: 30000 }, async () => {
  // Sign out forgets the token.
  await page.click('#signout');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.equal(await page.evaluate(() => document.cookie), '');
  const html = await page.content();
  await ctx.close();
  for (const k of FULL_KEYS) {
    assert.ok(!html.includes(k), 'full key in the page');
    for (const b of bodies) assert.ok(!b.text.includes(k), `full key in the response of ${b.url}`);
    for (const c of consoleText) assert.ok(!c.includes(k), 'full key in the console');
  }
  assert.ok(bodies.some((b) => new URL(b.url).pathname === '/admin/keys'), 'responses were recorded');
  assert.ok(!html.includes(TOKEN), 'token in the page');
  for (const u of requests) {
    if (u.startsWith('data:') || u.startsWith('blob:')) continue;
    assert.equal(new URL(u).origin, base, `request to another origin: ${u}`);
    assert.ok(!u.includes(TOKEN), 'token in a URL');
    for (const k of FULL_KEYS) assert.ok(!u.includes(k), 'full key in a URL');
  }
  assert.deepEqual(problems.filter((p) => !/status of (400|401)/.test(p)), []);
  const log = readFileSync(logPath, 'utf8');
  assert.ok(!log.includes(TOKEN), 'token in the gateway log');
  for (const k of FULL_KEYS) assert.ok(!log.includes(k), 'full key in the gateway log');
});
