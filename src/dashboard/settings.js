// gemini-balance console, the Settings tab: every setting of GET admin/config
// grouped as in .env.example, with value, source and description; edit in
// place (PATCH admin/config, the start-up parser's error shown inline under
// the field), revert (DELETE admin/config/NAME), restart-only settings
// read-only with the reason, secrets masked and only replaceable. A live
// refresh never touches a field being edited.
import { t, lang, settingText } from './dashboard-i18n.js';
import { $, el, raw, api, toast, confirmButton } from './dashboard-ui.js';

const GROUPS = {
  'Keys and access': 'keys',
  State: 'state',
  Server: 'server',
  'Upstream calls and the key pool': 'upstream',
  Translation: 'translation',
  'Error log': 'errorLog',
  Logs: 'errorLog',
};

let settings = [];
let failed = null;
const rows = new Map(); // name -> row
const sections = new Map(); // group -> { sec, list }
let filter = '';

/** The value as the environment would spell it. */
function shown(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function groupTitle(g) {
  const k = GROUPS[g];
  return k ? el('span', { text: t('group.' + k) }) : raw('span', g);
}

function description(s) {
  if (lang() === 'en') return raw('span', s.description || '', 'desc');
  const zh = settingText(s.name);
  return zh ? el('span', { class: 'desc', text: zh }) : el('span', { class: 'desc muted', text: t('settings.noDescription') });
}

function reasonText(s) {
  if (s.name === 'API_KEYS') return t('settings.onKeysTab');
  const why = s.reason || s.restart_reason || s.restart || '';
  if (lang() === 'en') return t('settings.restart', { why: why || t('settings.restartGeneric') });
  const zh = settingText('reason:' + why);
  return t('settings.restart', { why: zh || t('settings.restartGeneric') });
}

function editable(s) { return s.live === true && s.name !== 'API_KEYS'; }

function newRow(s) {
  const id = 'set-' + s.name;
  const r = { name: s.name, tr: el('div', { class: 'setting', 'data-name': s.name }), editing: false, draftSecret: false };
  r.head = el('div', { class: 'set-head' });
  r.body = el('div', { class: 'set-body' });
  r.error = el('p', { class: 'error set-error', role: 'alert', 'data-raw': '', id: id + '-error' });
  r.tr.append(r.head, r.body, r.error);
  r.input = el('input', {
    id, class: 'set-input', type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
    'aria-describedby': id + '-error',
  });
  r.input.addEventListener('input', () => { r.editing = r.input.value !== shown(r.s.value); r.save.disabled = !r.editing; });
  r.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { cancel(r); }
  });
  r.form = el('form', { class: 'set-form' });
  r.form.addEventListener('submit', (ev) => { ev.preventDefault(); save(r); });
  r.save = el('button', { type: 'submit', class: 'small' });
  r.cancel = el('button', { type: 'button', class: 'small ghost' });
  r.cancel.addEventListener('click', () => cancel(r));
  r.replace = el('button', { type: 'button', class: 'small ghost' });
  r.replace.addEventListener('click', () => {
    r.draftSecret = true; r.editing = true; r.input.value = ''; fill(r); r.input.focus();
  });
  r.revert = el('button', { type: 'button', class: 'small ghost' });
  confirmButton(r.revert, 'settings.revert', () => t('settings.confirmRevert'), () => revert(r));
  r.form.append(r.input, r.save, r.cancel);
  return r;
}

function cancel(r) {
  r.editing = false;
  r.draftSecret = false;
  r.error.textContent = '';
  r.input.value = shown(r.s.value);
  fill(r);
}

async function save(r) {
  const value = r.input.value;
  r.save.disabled = true;
  r.error.textContent = '';
  try {
    await api('PATCH', 'admin/config', { [r.name]: value });
    r.editing = false;
    r.draftSecret = false;
    toast(t('settings.saved', { name: r.name }));
    await refresh();
  } catch (e) {
    if (failed(e)) return;
    r.error.textContent = e.message;
    r.save.disabled = false;
    r.input.setAttribute('aria-invalid', 'true');
    r.input.focus();
  }
}

async function revert(r) {
  r.error.textContent = '';
  try {
    await api('DELETE', 'admin/config/' + encodeURIComponent(r.name));
    r.editing = false;
    r.draftSecret = false;
    toast(t('settings.reverted', { name: r.name }));
    await refresh();
  } catch (e) {
    if (!failed(e)) r.error.textContent = e.message;
  }
}

/** Redraws one setting; a field being edited keeps its text. */
function fill(r) {
  const s = r.s;
  r.tr.dataset.source = s.source || 'default';
  r.head.replaceChildren(
    el('label', { for: 'set-' + s.name, class: 'set-name' }, raw('code', s.name)),
    el('span', { class: 'source ' + (s.source || 'default'), text: t('source.' + (s.source || 'default')) }),
    description(s),
  );
  const value = shown(s.value);
  if (!r.editing) {
    r.input.value = value;
    r.input.removeAttribute('aria-invalid');
  }
  r.save.textContent = t('settings.save');
  r.cancel.textContent = t('settings.cancel');
  r.replace.textContent = t('settings.replace');
  if (!r.revert.classList.contains('armed')) r.revert.textContent = t('settings.revert');
  r.input.setAttribute('aria-label', t('settings.valueOf', { name: s.name }));
  const kids = [];
  if (!editable(s)) {
    kids.push(value ? raw('code', value, 'value') : el('span', { class: 'value muted', text: t('settings.unset') }));
    kids.push(el('span', { class: 'detail', text: reasonText(s) }));
  } else if (s.secret && !r.draftSecret) {
    kids.push(value ? raw('code', value, 'value') : el('span', { class: 'value muted', text: t('settings.unset') }), r.replace);
  } else {
    r.input.type = s.secret ? 'password' : 'text';
    r.save.disabled = !r.editing;
    r.cancel.hidden = !r.editing;
    kids.push(r.form);
  }
  if (editable(s) && s.source === 'stored') kids.push(r.revert);
  // Re-appending the form would blur its input: keep it when it is already there.
  const same = r.body.childNodes.length === kids.length && kids.every((k, i) => r.body.childNodes[i] === k);
  if (!same) r.body.replaceChildren(...kids);
  r.tr.hidden = !!filter && !(s.name.toLowerCase().includes(filter)
    || r.head.textContent.toLowerCase().includes(filter));
}

/** Redraws the tab from the last answer (also on a language switch). */
export function render() {
  const box = $('settings-list');
  const seen = new Set();
  for (const s of settings) {
    seen.add(s.name);
    const g = s.group || '';
    let sec = sections.get(g);
    if (!sec) {
      sec = { sec: el('section', { class: 'card set-group' }), h: el('h2'), list: el('div', { class: 'set-list' }) };
      sec.sec.append(sec.h, sec.list);
      box.append(sec.sec);
      sections.set(g, sec);
    }
    sec.h.replaceChildren(groupTitle(g));
    let r = rows.get(s.name);
    if (!r) { r = newRow(s); rows.set(s.name, r); }
    r.s = s;
    if (r.tr.parentNode !== sec.list) sec.list.append(r.tr);
    fill(r);
  }
  for (const [name, r] of rows) if (!seen.has(name)) { r.tr.remove(); rows.delete(name); }
  for (const sec of sections.values()) {
    sec.sec.hidden = ![...sec.list.children].some((c) => !c.hidden);
  }
  $('settings-empty').hidden = settings.length > 0;
}

/** Reads `admin/config` and redraws. */
export async function refresh() {
  const data = await api('GET', 'admin/config');
  settings = Array.isArray(data && data.settings) ? data.settings : [];
  render();
}

/** Wires the tab's controls. */
export function init(onError) {
  failed = onError;
  $('settings-search').addEventListener('input', () => {
    filter = $('settings-search').value.trim().toLowerCase();
    render();
  });
}
