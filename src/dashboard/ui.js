// gemini-balance console: small shared helpers — DOM building (textContent
// only, never HTML from data), the admin API client (Bearer token from
// sessionStorage, relative URLs so /hf/dashboard calls /hf/admin/...), toasts,
// two-step confirm buttons and locale-aware formatting through Intl.
import { t, locale } from './dashboard-i18n.js';

export const TOKEN_KEY = 'gemini-balance.admin-token';
const SVG_NS = 'http://www.w3.org/2000/svg';

export const $ = (id) => document.getElementById(id);

/** An element with props (`text`, `class`, attributes) and children. */
export function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) e.append(kid);
  return e;
}

/** An SVG element with attributes. */
export function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

/** Data shown as is (masks, model names, Google's messages): never translated. */
export function raw(tag, text, cls) {
  return el(tag, { class: cls, 'data-raw': '', text: text });
}

// ---- formatting (the reader's locale) --------------------------------------

let nfCache = null;
let nfLocale = '';
export function num(n) {
  const loc = locale();
  if (!nfCache || nfLocale !== loc) { nfCache = new Intl.NumberFormat(loc); nfLocale = loc; }
  return nfCache.format(Number(n) || 0);
}

/** Unix seconds (or ms, or an ISO string) to a Date. */
export function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return new Date(v > 1e12 ? v : v * 1000);
  const n = Number(v);
  if (Number.isFinite(n)) return toDate(n);
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A time: just the clock for today, date and clock otherwise. */
export function when(v) {
  const d = toDate(v);
  if (!d) return t('common.never');
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString(locale())
    : d.toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'medium' });
}

/** A bucket label on a chart axis. */
export function axisTime(unix, bucketSeconds) {
  const d = toDate(unix);
  if (!d) return '';
  if (bucketSeconds >= 86400) return d.toLocaleDateString(locale(), { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit' });
}

/** A countdown m:ss or h:mm:ss. */
export function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
}

// ---- the admin API -----------------------------------------------------------

/** No or a refused token. */
export class Unauthorized extends Error {}
/** An answer with an error status; `message` is the server's. */
export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

let token = '';
try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { token = ''; }

export function hasToken() { return token !== ''; }
export function setToken(v) {
  token = v;
  try {
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* private mode: kept in memory only */ }
}

/** Calls `path` (relative) and returns the parsed JSON (or text with `asText`). */
export async function api(method, path, body, asText) {
  const headers = { Accept: asText ? 'text/plain' : 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (_) {
    throw new ApiError(t('err.network'), 0);
  }
  // 401: no or an unknown token; 403: a client token that is not the admin's.
  if (res.status === 401) throw new Unauthorized(t('login.refused'));
  if (res.status === 403) throw new Unauthorized(t('login.notAdmin'));
  if (asText && res.ok) return res.text();
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const msg = data && data.error && data.error.message;
    throw new ApiError(msg || t('err.http', { status: res.status }), res.status);
  }
  return data;
}

/** Builds `path?query` from the non-empty values of `params`. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? path + '?' + s : path;
}

// ---- toasts and confirmation ---------------------------------------------------

let toastTimer = 0;
/** A short message at the bottom of the screen (already translated). */
export function toast(msg, bad) {
  const box = $('toast');
  box.textContent = msg;
  box.classList.toggle('bad', !!bad);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

/**
 * Makes `button` ask before acting: the first press arms it (its text says
 * what will happen), a second press within 5 s runs `action`.
 */
export function confirmButton(button, labelKey, confirmText, action) {
  let armed = 0;
  const disarm = () => {
    armed = 0;
    button.classList.remove('armed');
    button.textContent = t(labelKey);
  };
  button.addEventListener('click', async () => {
    if (!armed) {
      const text = confirmText();
      if (text === null) return;
      button.textContent = text;
      button.classList.add('armed');
      armed = setTimeout(disarm, 5000);
      return;
    }
    clearTimeout(armed);
    disarm();
    await action();
  });
  button.addEventListener('blur', () => { if (armed) { clearTimeout(armed); disarm(); } });
}

/** Sets a visible progress line (`null` hides it). */
export function progress(node, done, total, labelKey) {
  if (done === null) { node.hidden = true; node.replaceChildren(); return; }
  node.hidden = false;
  const bar = el('progress', { max: String(total), value: String(done) });
  node.replaceChildren(el('span', { text: t(labelKey, { done: num(done), total: num(total) }) }), bar);
}

/** Long text: clamped to a few lines, click or Enter shows all. */
export function longText(text) {
  const span = el('span', { class: 'clamp', tabindex: '0', role: 'button', 'aria-expanded': 'false', 'data-raw': '', title: text, text: text });
  const toggle = () => span.setAttribute('aria-expanded', String(span.classList.toggle('open')));
  span.addEventListener('click', toggle);
  span.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); }
  });
  return span;
}
