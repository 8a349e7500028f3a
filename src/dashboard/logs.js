// gemini-balance console, the Error log tab: GET admin/logs filtered by
// status, key, model and time, paged newest first by cursor; a detail view of
// one entry (GET admin/logs/{id}, with the request body when recorded);
// DELETE admin/logs with the same filters. Live refresh only on the first
// page, so a reader paging back keeps their place.
import { t } from './dashboard-i18n.js';
import { $, el, raw, num, when, api, withQuery, toast, confirmButton, longText } from './dashboard-ui.js';

let entries = [];
let nextCursor = null;
const cursors = []; // the cursors of the pages before this one
let cursor = '';
let filters = {};
let failed = null;
let openId = null;

/** A datetime-local value as unix seconds ('' when empty or bad). */
function unix(v) {
  if (!v) return '';
  const ms = new Date(v).getTime();
  return Number.isNaN(ms) ? '' : Math.floor(ms / 1000);
}

function readFilters() {
  return {
    status: $('logs-status').value.trim(),
    key: $('logs-key').value.trim(),
    model: $('logs-model').value.trim(),
    since: unix($('logs-since').value),
    until: unix($('logs-until').value),
  };
}

function statusBadge(e) {
  const s = Number(e.status) || 0;
  return el('span', { class: 'code c' + Math.floor(s / 100), text: String(s) });
}

function row(e) {
  const open = el('button', { type: 'button', class: 'small ghost', text: t('logs.details') });
  open.setAttribute('aria-label', t('logs.detailsOf', { time: when(e.time) }));
  open.addEventListener('click', () => detail(e.id, open));
  const status = el('td', { class: 'num status', 'data-label': t('logs.col.status') }, statusBadge(e));
  if (e.google_status) status.append(raw('span', e.google_status, 'detail'));
  return el('tr', { 'data-id': e.id },
    el('td', { class: 'when', 'data-label': t('logs.col.time'), text: when(e.time) }),
    el('td', { 'data-label': t('logs.col.route') }, raw('span', e.route || '—')),
    el('td', { 'data-label': t('logs.col.model') }, raw('span', e.model || '—')),
    el('td', { class: 'key', 'data-label': t('logs.col.key') }, raw('span', e.key || '—')),
    status,
    el('td', { class: 'msg', 'data-label': t('logs.col.message') }, longText(e.message || '')),
    el('td', { class: 'act' }, open));
}

/** Redraws the table from the last answer (also on a language switch). */
export function render() {
  const body = $('logs-table').tBodies[0];
  // Keep the focused row's button focused across a redraw.
  const focused = document.activeElement && body.contains(document.activeElement)
    ? document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.id : null;
  body.replaceChildren(...entries.map(row));
  if (focused) {
    const again = body.querySelector('tr[data-id="' + CSS.escape(focused) + '"] button');
    if (again) again.focus();
  }
  $('logs-empty').hidden = entries.length > 0;
  $('logs-table').hidden = entries.length === 0;
  $('logs-newer').disabled = cursors.length === 0;
  $('logs-older').disabled = !nextCursor;
  $('logs-page').textContent = t('logs.page', { page: num(cursors.length + 1), n: num(entries.length) });
  if (openId && lastDetail) showDetail(lastDetail);
}

/** Reads a page of `admin/logs`; live refresh only redraws the first page. */
export async function refresh(live) {
  if (live && cursors.length > 0) return;
  const data = await api('GET', withQuery('admin/logs', { ...filters, limit: $('logs-limit').value, cursor }));
  entries = Array.isArray(data && data.entries) ? data.entries : [];
  nextCursor = (data && data.next_cursor) || null;
  render();
}

let lastDetail = null;

function showDetail(e) {
  lastDetail = e;
  const dl = el('dl', { class: 'facts' });
  const add = (key, value, isRaw) => {
    if (value === undefined || value === null || value === '') return;
    dl.append(el('dt', { text: t(key) }), isRaw ? raw('dd', String(value)) : el('dd', { text: String(value) }));
  };
  add('logs.col.time', when(e.time));
  add('logs.col.route', e.route, true);
  add('logs.col.model', e.model, true);
  add('logs.col.key', e.key, true);
  add('logs.keyId', e.key_id, true);
  add('logs.col.status', e.status, true);
  add('logs.googleStatus', e.google_status, true);
  add('logs.attempt', e.attempt !== undefined ? num(e.attempt) : '');
  add('logs.latency', e.latency_ms !== undefined ? t('logs.ms', { n: num(e.latency_ms) }) : '');
  add('logs.id', e.id, true);
  const kids = [el('h3', { text: t('logs.detailTitle') }), dl,
    el('h4', { text: t('logs.col.message') }), raw('pre', e.message || '', 'message')];
  if (e.body !== undefined && e.body !== null) {
    kids.push(el('h4', { text: t('logs.body') }), raw('pre', e.body, 'body'));
  } else {
    kids.push(el('p', { class: 'muted', text: t('logs.noBody') }));
  }
  const close = el('button', { type: 'button', class: 'small', id: 'logs-detail-close', text: t('common.close') });
  close.addEventListener('click', () => closeDetail());
  kids.push(close);
  $('logs-detail').replaceChildren(...kids);
  $('logs-detail').hidden = false;
}

let returnFocus = null;
function closeDetail() {
  openId = null;
  lastDetail = null;
  $('logs-detail').hidden = true;
  $('logs-detail').replaceChildren();
  if (returnFocus && returnFocus.isConnected) returnFocus.focus();
}

async function detail(id, button) {
  try {
    const e = await api('GET', 'admin/logs/' + encodeURIComponent(id));
    openId = id;
    returnFocus = button;
    showDetail(e && e.entry ? e.entry : e);
    $('logs-detail-close').focus();
    $('logs-detail').scrollIntoView({ block: 'nearest' });
  } catch (e) {
    if (!failed(e)) toast(e.message, true);
  }
}

async function apply(ev) {
  if (ev) ev.preventDefault();
  filters = readFilters();
  cursors.length = 0;
  cursor = '';
  try { await refresh(false); } catch (e) { if (!failed(e)) toast(e.message, true); }
}

async function deleteMatching() {
  try {
    const r = await api('DELETE', withQuery('admin/logs', filters));
    toast(t('logs.deletedN', { n: num(Number(r && r.deleted) || 0) }));
    closeDetail();
    cursors.length = 0;
    cursor = '';
    await refresh(false);
  } catch (e) {
    if (!failed(e)) toast(e.message, true);
  }
}

/** Wires the tab's controls. */
export function init(onError) {
  failed = onError;
  $('logs-filter').addEventListener('submit', apply);
  $('logs-clear').addEventListener('click', () => {
    for (const id of ['logs-status', 'logs-key', 'logs-model', 'logs-since', 'logs-until']) $(id).value = '';
    apply();
  });
  $('logs-limit').addEventListener('change', () => apply());
  $('logs-older').addEventListener('click', async () => {
    if (!nextCursor) return;
    cursors.push(cursor);
    cursor = nextCursor;
    try { await refresh(false); } catch (e) { if (!failed(e)) toast(e.message, true); }
  });
  $('logs-newer').addEventListener('click', async () => {
    if (!cursors.length) return;
    cursor = cursors.pop();
    try { await refresh(false); } catch (e) { if (!failed(e)) toast(e.message, true); }
  });
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && openId) closeDetail(); });
  confirmButton($('logs-delete'), 'logs.delete',
    () => t(Object.values(filters).some((v) => v !== '') ? 'logs.confirmDeleteFiltered' : 'logs.confirmDeleteAll'),
    deleteMatching);
}
