// gemini-balance console (the page at /dashboard): sign-in with the admin
// token (sessionStorage, sent as a Bearer header), the four tabs (Keys,
// Settings, Error log, Usage), the language switch, and the live refresh of
// the open tab at most every 5 s. Every URL is relative ('admin/keys',
// 'status/keys/'), so the same page works at /dashboard and /hf/dashboard.
// Everything is built with DOM calls and textContent: no HTML from data.
import { t, lang, setLang, LANGS, applyStatic } from './dashboard-i18n.js';
import { $, raw, hasToken, setToken, Unauthorized, toast } from './dashboard-ui.js';
import * as keys from './dashboard-keys.js';
import * as settings from './dashboard-settings.js';
import * as logs from './dashboard-logs.js';
import * as usage from './dashboard-usage.js';

const REFRESH_MS = 5000;
const TABS = { keys, settings, logs, usage };
let active = 'keys';
let authed = false;
let busy = false;
let lastOk = 0;
let lastError = '';

// ---- sign-in ---------------------------------------------------------------

function showLogin(messageKey) {
  authed = false;
  $('console').hidden = true;
  $('signout').hidden = true;
  $('updated').textContent = '';
  banner('');
  $('login').hidden = false;
  $('login-error').textContent = messageKey || '';
  $('token').focus();
}

function signOut(message) {
  setToken('');
  showLogin(message);
}

/** The console's error handler: signs out on a refused token (returns true). */
function failed(e) {
  if (e instanceof Unauthorized) {
    signOut(e.message);
    return true;
  }
  return false;
}

function banner(msg) {
  lastError = msg;
  $('banner').hidden = !msg;
  // The gateway's own words stay as they are (marked as data, not translated).
  const [before, after] = t('common.unreachable', { why: '\u0000' }).split('\u0000');
  if (msg) $('banner').replaceChildren(before, raw('span', msg), after || '');
  else $('banner').replaceChildren();
}

async function refresh(live) {
  if (busy) return;
  busy = true;
  try {
    await TABS[active].refresh(live);
    lastOk = Date.now();
    if (!authed) {
      authed = true;
      $('login').hidden = true;
      $('console').hidden = false;
      $('signout').hidden = false;
    }
    banner('');
    tick();
  } catch (e) {
    if (failed(e)) return;
    if (authed) banner(e.message);
    else showLogin(t('common.unreachable', { why: e.message }));
  } finally {
    busy = false;
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('token');
  const v = input.value.trim();
  input.value = '';
  if (!v) return;
  setToken(v);
  $('login-error').textContent = '';
  refresh(false);
});

$('signout').addEventListener('click', () => signOut(''));

// ---- tabs ------------------------------------------------------------------

function select(name, focus) {
  if (!TABS[name]) name = 'keys';
  active = name;
  for (const b of document.querySelectorAll('#tabs [role=tab]')) {
    const on = b.dataset.tab === name;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    if (on && focus) b.focus();
    $('tab-' + b.dataset.tab).hidden = !on;
  }
  if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
  if (authed) refresh(false);
}

const tabButtons = () => [...document.querySelectorAll('#tabs [role=tab]')];
for (const b of tabButtons()) {
  b.addEventListener('click', () => select(b.dataset.tab, false));
  b.addEventListener('keydown', (ev) => {
    const all = tabButtons();
    const i = all.indexOf(b);
    let next = -1;
    if (ev.key === 'ArrowRight') next = (i + 1) % all.length;
    else if (ev.key === 'ArrowLeft') next = (i - 1 + all.length) % all.length;
    else if (ev.key === 'Home') next = 0;
    else if (ev.key === 'End') next = all.length - 1;
    if (next < 0) return;
    ev.preventDefault();
    select(all[next].dataset.tab, true);
  });
}

// ---- language --------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang();
  applyStatic(document);
  $('lang').value = lang();
  for (const tab of Object.values(TABS)) tab.render();
  if (lastError) banner(lastError);
  showStore();
  tick();
}

for (const l of LANGS) {
  const opt = document.createElement('option');
  opt.value = l.code;
  opt.textContent = l.name;
  $('lang').append(opt);
}
$('lang').addEventListener('change', () => {
  setLang($('lang').value);
  applyLanguage();
  toast(t('common.languageSet'));
});

// ---- once a second: countdowns and the "updated" line ----------------------

function tick() {
  keys.tick();
  if (authed && lastOk) {
    $('updated').textContent = t('common.updated', { time: new Date(lastOk).toLocaleTimeString(document.documentElement.lang) });
  }
}

let storeMode = '';
function showStore() {
  $('store').textContent = storeMode ? t('store.' + storeMode) : '';
  $('store').dataset.store = storeMode;
}

async function version() {
  try {
    const h = await fetch('health', { cache: 'no-store', credentials: 'omit' }).then((r) => r.json());
    $('version').textContent = h && h.version ? 'v' + h.version : '';
    storeMode = (h && h.store) || '';
    showStore();
  } catch (_) { /* the header just lacks the version */ }
}

keys.init(failed);
settings.init(failed);
logs.init(failed);
usage.init(() => refresh(false));
applyLanguage();
version();
select((location.hash || '#keys').slice(1), false);
setInterval(tick, 1000);
setInterval(() => { if (authed && !document.hidden) refresh(true); }, REFRESH_MS);
document.addEventListener('visibilitychange', () => { if (authed && !document.hidden) refresh(true); });
if (hasToken()) refresh(false);
else showLogin('');
