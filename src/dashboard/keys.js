// gemini-balance console, the Keys tab: the key table (masked keys only) with
// state filter, search, sorting and paging for thousands of keys; the paste
// box (POST admin/keys); bulk verify / reset / delete with progress; "delete
// all disabled"; export as a file download. Rows are reused by key id, so a
// live refresh keeps the selection, the page, the sort and the focus.
import { t } from './dashboard-i18n.js';
import {
  $, el, raw, num, when, countdown, api, withQuery, toast, confirmButton, progress, longText, Unauthorized,
} from './dashboard-ui.js';

const STATES = ['active', 'cooling', 'resting', 'disabled'];
const CHUNK = 100; // ids per bulk call

let keys = [];
let fetchedAt = 0;
const view = { state: 'all', q: '', sort: 'state', dir: 1, page: 0, size: 50 };
const selected = new Set();
const rows = new Map();
let failed = null; // the error handler of the console
let busy = false;
let added = null; // the last paste's answer (or error), redrawn on a language switch

// ---- reading the answer ------------------------------------------------------

/** The `cooling` map as [model, seconds] pairs, whatever its JSON shape. */
function coolingOf(k) {
  const c = k.cooling;
  if (!c) return [];
  if (Array.isArray(c)) {
    return c.map((x) => (Array.isArray(x) ? [x[0], Number(x[1]) || 0] : [x.model, Number(x.seconds_left) || 0]));
  }
  return Object.entries(c).map(([m, s]) => [m, Number(s) || 0]);
}

/** Tokens per key id for today (UTC), from the usage report's day buckets. */
let tokensToday = new Map();

function readTokens(report) {
  const out = new Map();
  const day = Math.floor(Date.now() / 86400000) * 86400;
  for (const s of (report && report.series) || []) {
    for (const b of s.buckets || []) {
      if (Number(b.t) !== day) continue;
      const n = (Number(b.prompt_tokens) || 0) + (Number(b.output_tokens) || 0) + (Number(b.thought_tokens) || 0);
      out.set(s.key, (out.get(s.key) || 0) + n);
    }
  }
  return out;
}

function today(k) {
  const u = k.usage_today || {};
  let tokens = ['prompt_tokens', 'output_tokens', 'thought_tokens']
    .reduce((a, f) => (u[f] === undefined ? a : (a || 0) + (Number(u[f]) || 0)), null);
  if (tokens === null && tokensToday) tokens = tokensToday.get(k.id) || 0;
  return { requests: Number(u.requests) || 0, limited: Number(u.rate_limited) || 0, tokens };
}

/** [model, left, limit] per model with a known day limit, from the key's `quota`. */
function leftToday(k) {
  const q = k.quota || {};
  return Object.keys(q).sort()
    .filter((m) => q[m] && q[m].day && q[m].day.limit !== null && q[m].day.limit !== undefined)
    .map((m) => [m, Math.max(0, (Number(q[m].day.limit) || 0) - (Number(q[m].day.used) || 0)), Number(q[m].day.limit) || 0]);
}

function lastUsed(k) {
  const v = k.last_used;
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Date.parse(v) / 1000 || 0;
}

const SORTS = {
  key: (a, b) => String(a.masked).localeCompare(String(b.masked)),
  state: (a, b) => STATES.indexOf(a.state) - STATES.indexOf(b.state),
  requests: (a, b) => today(a).requests - today(b).requests,
  tokens: (a, b) => (today(a).tokens || 0) - (today(b).tokens || 0),
  limited: (a, b) => today(a).limited - today(b).limited,
  used: (a, b) => lastUsed(a) - lastUsed(b),
};

function matching() {
  const q = view.q.trim().toLowerCase();
  const out = keys.filter((k) => (view.state === 'all' || k.state === view.state)
    && (!q || String(k.masked).toLowerCase().includes(q) || String(k.id).toLowerCase().includes(q)
      || String(k.reason || k.last_error || '').toLowerCase().includes(q)));
  const cmp = SORTS[view.sort] || SORTS.state;
  out.sort((a, b) => cmp(a, b) * view.dir || String(a.id).localeCompare(String(b.id)));
  return out;
}

// ---- rendering -----------------------------------------------------------------

function stateCell(k) {
  const wrap = el('div', { class: 'state-wrap' });
  const badge = el('span', { class: 'state ' + k.state, text: t('state.' + k.state) });
  wrap.append(badge);
  const cool = coolingOf(k);
  if (k.state === 'cooling' && cool.length) {
    const longest = Math.max(...cool.map((c) => c[1]));
    badge.append(' ', el('span', { class: 'countdown', 'data-deadline': String(fetchedAt + longest * 1000) }));
    for (const [model, secs] of cool) {
      const line = el('span', { class: 'detail' }, raw('span', model || t('keys.allModels')), ' · ');
      line.append(el('span', { class: 'countdown', 'data-deadline': String(fetchedAt + secs * 1000) }));
      wrap.append(line);
    }
  }
  return wrap;
}

function newRow(k) {
  const box = el('input', { type: 'checkbox', class: 'pick' });
  box.addEventListener('change', () => {
    if (box.checked) selected.add(k.id); else selected.delete(k.id);
    renderSelection();
  });
  const r = {
    tr: el('tr', { 'data-id': k.id }),
    box,
    pick: el('td', { class: 'pick-cell' }, el('label', { class: 'pickwrap' }, box)),
    key: el('td', { class: 'key' }),
    state: el('td', { class: 'state-cell' }),
    why: el('td', { class: 'msg' }),
    req: el('td', { class: 'num requests' }),
    tok: el('td', { class: 'num tokens' }),
    lim: el('td', { class: 'num limited' }),
    used: el('td', { class: 'when used' }),
    sig: '',
  };
  r.tr.append(r.pick, r.key, r.state, r.why, r.req, r.tok, r.lim, r.used);
  return r;
}

function fillRow(r, k) {
  r.tr.dataset.state = k.state;
  r.box.checked = selected.has(k.id);
  r.box.setAttribute('aria-label', t('keys.selectOne', { key: k.masked }));
  const sig = JSON.stringify([k.masked, k.source, k.state, k.cooling, k.reason, k.last_error, fetchedAt, t('state.active')]);
  if (sig !== r.sig) {
    r.sig = sig;
    r.key.replaceChildren(raw('span', k.masked, 'mask'),
      el('span', { class: 'detail', text: t('source.' + (k.source === 'added' ? 'added' : 'env')) }));
    r.state.replaceChildren(stateCell(k));
    const why = k.state === 'disabled' ? (k.reason || k.last_error) : k.last_error;
    r.why.replaceChildren(why ? longText(why) : el('span', { class: 'muted', text: '—' }));
    if (k.state === 'disabled' && k.reason) r.why.classList.add('bad'); else r.why.classList.remove('bad');
  }
  const u = today(k);
  r.req.textContent = num(u.requests);
  for (const [model, left, limit] of leftToday(k)) {
    r.req.append(el('span', { class: 'detail', text: t('keys.leftToday', { model, left: num(left), limit: num(limit) }) }));
  }
  r.tok.textContent = u.tokens === null ? '—' : num(u.tokens);
  r.lim.textContent = num(u.limited);
  r.used.textContent = lastUsed(k) ? when(lastUsed(k)) : t('common.never');
  for (const [cell, label] of [[r.key, 'keys.col.key'], [r.state, 'keys.col.state'], [r.why, 'keys.col.reason'],
    [r.req, 'keys.col.requests'], [r.tok, 'keys.col.tokens'], [r.lim, 'keys.col.limited'], [r.used, 'keys.col.used']]) {
    cell.dataset.label = t(label);
  }
}

function renderTiles() {
  const counts = { all: keys.length, active: 0, cooling: 0, resting: 0, disabled: 0 };
  for (const k of keys) if (counts[k.state] !== undefined) counts[k.state] += 1;
  for (const s of ['all', ...STATES]) {
    $('kt-' + s).textContent = num(counts[s]);
    $('kt-btn-' + s).setAttribute('aria-pressed', String(view.state === s));
  }
  const totals = new Map();
  for (const k of keys) for (const [m, left] of leftToday(k)) totals.set(m, (totals.get(m) || 0) + left);
  $('quota-left').textContent = [...totals].map(([model, left]) => t('keys.leftTotal', { model, left: num(left) })).join(' · ');
  for (const opt of $('keys-state').options) {
    opt.textContent = t(opt.value === 'all' ? 'keys.filter.all' : 'state.' + opt.value) + ' (' + num(counts[opt.value]) + ')';
  }
}

function renderAdded() {
  const box = $('paste-result');
  box.classList.toggle('error', !!(added && added.error));
  if (added && added.error) box.replaceChildren(raw('span', added.error));
  else if (added && added.vars) {
    const v = added.vars;
    box.textContent = t(added.key, { added: num(v.added), duplicates: num(v.duplicates), rejected: num(v.rejected) });
  } else box.textContent = added ? t(added.key) : '';
}

/** Redraws the table from the last answer (also on a language switch). */
export function render() {
  renderTiles();
  renderAdded();
  const list = matching();
  const pages = Math.max(1, Math.ceil(list.length / view.size));
  if (view.page >= pages) view.page = pages - 1;
  const slice = list.slice(view.page * view.size, (view.page + 1) * view.size);
  const body = $('keys-table').tBodies[0];
  const live = new Set(keys.map((k) => k.id));
  for (const id of [...selected]) if (!live.has(id)) selected.delete(id);
  const shown = new Set();
  let prev = null;
  for (const k of slice) {
    shown.add(k.id);
    let r = rows.get(k.id);
    if (!r) { r = newRow(k); rows.set(k.id, r); }
    fillRow(r, k);
    // Move only rows out of place, so a focused checkbox keeps its focus.
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== r.tr) body.insertBefore(r.tr, want);
    prev = r.tr;
  }
  for (const [id, r] of rows) if (!shown.has(id)) { r.tr.remove(); rows.delete(id); }
  $('keys-empty').hidden = slice.length > 0;
  $('keys-empty').textContent = keys.length ? t('keys.noMatch') : t('keys.none');
  $('keys-page').textContent = t('common.page', { page: num(view.page + 1), pages: num(pages), total: num(list.length) });
  $('keys-prev').disabled = view.page === 0;
  $('keys-next').disabled = view.page >= pages - 1;
  for (const th of $('keys-table').tHead.querySelectorAll('th[data-sort]')) {
    const on = th.dataset.sort === view.sort;
    th.setAttribute('aria-sort', on ? (view.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  renderSelection(list);
  tick();
}

function renderSelection(list) {
  const n = selected.size;
  $('keys-selected').textContent = t('keys.selected', { n: num(n) });
  for (const id of ['bulk-verify', 'bulk-reset', 'bulk-delete']) $(id).disabled = n === 0 || busy;
  const onPage = [...rows.values()].map((r) => r.box);
  const all = onPage.length > 0 && onPage.every((b) => b.checked);
  $('keys-pick-page').checked = all;
  $('keys-pick-page').indeterminate = !all && onPage.some((b) => b.checked);
  const matched = (list || matching()).length;
  $('keys-pick-all').textContent = t('keys.selectAll', { n: num(matched) });
  $('keys-pick-all').disabled = matched === 0;
}

/** Once a second: the countdowns. */
export function tick() {
  const now = Date.now();
  for (const c of $('tab-keys').querySelectorAll('.countdown[data-deadline]')) {
    c.textContent = countdown(Number(c.dataset.deadline) - now);
  }
}

// ---- data and actions ------------------------------------------------------------

/** Reads `admin/keys` and redraws. */
export async function refresh() {
  const [data, usage] = await Promise.all([
    api('GET', 'admin/keys'),
    // Tokens are counted by the usage report, per key and UTC day.
    api('GET', withQuery('admin/usage', { window: '7d', by: 'key' })).catch((e) => {
      if (e instanceof Unauthorized) throw e;
      return null;
    }),
  ]);
  keys = Array.isArray(data && data.keys) ? data.keys : [];
  tokensToday = usage ? readTokens(usage) : null;
  fetchedAt = Date.now();
  render();
  return keys;
}

/** The keys as last read (for the usage tab's "most 429s today"). */
export function current() { return keys; }

async function bulk(ids, labelKey, run) {
  busy = true;
  renderSelection();
  const bar = $('keys-progress');
  let done = 0;
  let failedCount = 0;
  const results = [];
  try {
    progress(bar, 0, ids.length, labelKey);
    for (let i = 0; i < ids.length; i += CHUNK) {
      const part = ids.slice(i, i + CHUNK);
      try {
        results.push(await run(part));
      } catch (e) {
        if (failed(e)) return null;
        failedCount += part.length;
        toast(e.message, true);
      }
      done += part.length;
      progress(bar, done, ids.length, labelKey);
    }
  } finally {
    busy = false;
    setTimeout(() => progress(bar, null), 1500);
  }
  return { results, failed: failedCount };
}

/** Runs `one(id)` for every id, a few at a time; a refused token stops it. */
async function eachId(ids, labelKey, one) {
  busy = true;
  renderSelection();
  const bar = $('keys-progress');
  let done = 0;
  let next = 0;
  const results = [];
  let stop = false;
  progress(bar, 0, ids.length, labelKey);
  const worker = async () => {
    while (!stop && next < ids.length) {
      const id = ids[next++];
      try {
        results.push(await one(id));
      } catch (e) {
        if (failed(e)) { stop = true; return; }
        results.push({ error: e.message });
      }
      done += 1;
      progress(bar, done, ids.length, labelKey);
    }
  };
  try {
    await Promise.all([worker(), worker(), worker(), worker()]);
  } finally {
    busy = false;
    setTimeout(() => progress(bar, null), 1500);
  }
  return stop ? null : results;
}

async function verifySelected() {
  const results = await eachId([...selected], 'keys.progress.verify',
    (id) => api('POST', 'status/keys/' + encodeURIComponent(id) + '/verify'));
  if (!results) return;
  const good = results.filter((r) => r && r.status === 'GOOD').length;
  toast(t('keys.verified', { good: num(good), bad: num(results.length - good) }));
  await refresh().catch(failed);
}

async function resetSelected() {
  const results = await eachId([...selected], 'keys.progress.reset',
    (id) => api('POST', 'status/keys/' + encodeURIComponent(id) + '/reset'));
  if (!results) return;
  const errors = results.filter((r) => r && r.error);
  if (errors.length) toast(errors[0].error, true);
  else toast(t('keys.resetDone', { n: num(results.length) }));
  await refresh().catch(failed);
}

async function deleteIds(ids) {
  let removed = 0;
  const out = await bulk(ids, 'keys.progress.delete', async (part) => {
    const r = await api('POST', 'admin/keys/delete', { ids: part });
    removed += Number(r && (r.deleted ?? r.removed)) || 0;
  });
  if (!out) return;
  for (const id of ids) selected.delete(id);
  toast(t('keys.deleted', { n: num(removed) }));
  await refresh().catch(failed);
}

async function deleteDisabled() {
  try {
    const r = await api('POST', 'admin/keys/delete', { state: 'disabled' });
    toast(t('keys.deleted', { n: num(Number(r && (r.deleted ?? r.removed)) || 0) }));
  } catch (e) {
    if (!failed(e)) toast(e.message, true);
  }
  await refresh().catch(failed);
}

async function addKeys(ev) {
  ev.preventDefault();
  const text = $('paste-text').value;
  if (!text.trim()) return;
  const button = $('paste-add');
  button.disabled = true;
  added = { key: $('paste-verify').checked ? 'keys.adding.verify' : 'keys.adding' };
  renderAdded();
  try {
    const r = await api('POST', 'admin/keys', { text, verify: $('paste-verify').checked });
    // The pasted keys leave the page as soon as the gateway has them.
    $('paste-text').value = '';
    added = { key: 'keys.addResult', vars: r };
    renderAdded();
    await refresh();
  } catch (e) {
    if (failed(e)) return;
    added = { error: e.message };
    renderAdded();
  } finally {
    button.disabled = false;
  }
}

async function exportKeys() {
  const state = $('export-state').value;
  try {
    const text = await api('GET', withQuery('admin/keys/export', { state }), undefined, true);
    const blob = new Blob([text], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: 'gemini-keys-' + state + '.txt' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    if (!failed(e)) toast(e.message, true);
  }
}

/** Wires the tab's controls; `onError(e)` returns true when it signed out. */
export function init(onError) {
  failed = onError;
  $('paste-form').addEventListener('submit', addKeys);
  $('keys-state').addEventListener('change', () => { view.state = $('keys-state').value; view.page = 0; render(); });
  for (const s of ['all', ...STATES]) {
    $('kt-btn-' + s).addEventListener('click', () => {
      view.state = s; $('keys-state').value = s; view.page = 0; render();
    });
  }
  $('keys-search').addEventListener('input', () => { view.q = $('keys-search').value; view.page = 0; render(); });
  $('keys-size').addEventListener('change', () => { view.size = Number($('keys-size').value) || 50; view.page = 0; render(); });
  $('keys-prev').addEventListener('click', () => { view.page = Math.max(0, view.page - 1); render(); });
  $('keys-next').addEventListener('click', () => { view.page += 1; render(); });
  for (const th of $('keys-table').tHead.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      if (view.sort === th.dataset.sort) view.dir = -view.dir;
      else { view.sort = th.dataset.sort; view.dir = th.dataset.sort === 'key' || th.dataset.sort === 'state' ? 1 : -1; }
      render();
    });
  }
  $('keys-pick-page').addEventListener('change', () => {
    const on = $('keys-pick-page').checked;
    for (const [id, r] of rows) { r.box.checked = on; if (on) selected.add(id); else selected.delete(id); }
    renderSelection();
  });
  $('keys-pick-all').addEventListener('click', () => {
    for (const k of matching()) selected.add(k.id);
    render();
  });
  $('keys-pick-none').addEventListener('click', () => { selected.clear(); render(); });
  $('bulk-verify').addEventListener('click', verifySelected);
  $('bulk-reset').addEventListener('click', resetSelected);
  confirmButton($('bulk-delete'), 'keys.bulk.delete',
    () => (selected.size ? t('keys.confirmDelete', { n: num(selected.size) }) : null),
    () => deleteIds([...selected]));
  confirmButton($('delete-disabled'), 'keys.deleteDisabled', () => {
    const n = keys.filter((k) => k.state === 'disabled').length;
    return n ? t('keys.confirmDelete', { n: num(n) }) : null;
  }, deleteDisabled);
  $('export').addEventListener('click', exportKeys);
}
