// gemini-balance dashboard: reads `status` (relative, so it works under /hf too)
// with the admin token from sessionStorage, and redraws every few seconds.
// Everything is built with DOM calls and textContent: no HTML from data.
'use strict';
(function () {
  const TOKEN_KEY = 'gemini-balance.admin-token';
  const REFRESH_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const CLASSES = ['2xx', '3xx', '4xx', '5xx'];
  const MODEL_COLOURS = 7; // m0..m6; m7 is "other"
  const nf = new Intl.NumberFormat();
  const hm = { hour: '2-digit', minute: '2-digit' };

  const $ = (id) => document.getElementById(id);
  let token = '';
  try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { token = ''; }
  let authed = false;
  let busy = false;
  let again = false;
  let lastOk = 0;
  const rows = new Map();

  // ---- small helpers -------------------------------------------------------

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else e.setAttribute(k, v);
      }
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  const num = (n) => nf.format(Number(n) || 0);

  function clock(unix) {
    const d = new Date(unix * 1000);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return num(s) + ' s';
    if (s < 3600) return num(Math.floor(s / 60)) + ' min';
    if (s < 86400) return num(Math.floor(s / 3600)) + ' h ' + num(Math.floor((s % 3600) / 60)) + ' min';
    return num(Math.floor(s / 86400)) + ' d ' + num(Math.floor((s % 86400) / 3600)) + ' h';
  }

  function countdown(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  let toastTimer = 0;
  function toast(msg) {
    const t = $('toast');
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  function banner(msg) {
    const b = $('banner');
    b.hidden = !msg;
    b.textContent = msg || '';
  }

  class Unauthorized extends Error {}

  async function call(method, path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
    });
    // 401: no or an unknown token; 403: a client token that is not the admin token.
    if (res.status === 401 || res.status === 403) {
      throw new Unauthorized(res.status === 403
        ? 'That token is not the admin token (AUTH_TOKEN, or the first of ALLOWED_TOKENS).'
        : 'That token was not accepted.');
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) {
      const msg = body && body.error && body.error.message;
      throw new Error(msg || 'HTTP ' + res.status);
    }
    return body;
  }

  // ---- sign-in -------------------------------------------------------------

  function showLogin(message) {
    authed = false;
    $('board').hidden = true;
    $('verify').hidden = true;
    $('signout').hidden = true;
    $('updated').textContent = '';
    banner(null);
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function signOut(message) {
    token = '';
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* private mode */ }
    showLogin(message);
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('token');
    const t = input.value.trim();
    input.value = '';
    if (!t) return;
    token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (_) { /* kept in memory only */ }
    $('login-error').textContent = '';
    refresh();
  });

  $('signout').addEventListener('click', () => signOut(''));

  // ---- admin actions -------------------------------------------------------

  $('verify').addEventListener('click', async () => {
    const b = $('verify');
    b.disabled = true;
    b.textContent = 'Verifying…';
    try {
      const r = await call('POST', 'status/verify');
      toast('Verification finished: ' + num(r.good) + ' good, ' + num(r.bad) + ' bad.');
    } catch (e) {
      if (e instanceof Unauthorized) return signOut('The token is no longer accepted.');
      toast('Verification failed: ' + e.message);
    } finally {
      b.disabled = false;
      b.textContent = 'Re-verify all keys';
    }
    refresh();
  });

  async function resetKey(index, button) {
    button.disabled = true;
    try {
      const r = await call('POST', 'status/keys/' + encodeURIComponent(index) + '/reset');
      toast('Key ' + (r && r.reset ? r.reset : '#' + index) + ' reset.');
    } catch (e) {
      if (e instanceof Unauthorized) return signOut('The token is no longer accepted.');
      toast('Reset failed: ' + e.message);
    } finally {
      button.disabled = false;
    }
    refresh();
  }

  // ---- refresh -------------------------------------------------------------

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const data = await call('GET', 'status');
      authed = true;
      lastOk = Date.now();
      $('login').hidden = true;
      $('board').hidden = false;
      $('verify').hidden = false;
      $('signout').hidden = !token;
      banner(null);
      render(data);
    } catch (e) {
      if (e instanceof Unauthorized) {
        signOut(token ? e.message : '');
      } else if (authed) {
        banner('Cannot reach the gateway (' + e.message + '). Showing the last data; retrying…');
      } else {
        showLogin('Cannot reach the gateway: ' + e.message);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  function render(d) {
    $('version').textContent = d.version ? 'v' + d.version : '';
    const c = d.key_counts || {};
    $('t-total').textContent = num(c.total);
    $('t-active').textContent = num(c.active);
    $('t-cooling').textContent = num(c.cooling);
    $('t-resting').textContent = num(c.resting);
    $('t-disabled').textContent = num(c.disabled);
    const t = d.traffic || {};
    $('t-requests').textContent = num(t.total_requests);
    $('t-retries').textContent = num(t.retries);
    $('t-uptime').textContent = duration(d.uptime_seconds || 0);
    const minutes = Array.isArray(t.per_minute) ? t.per_minute : [];
    let hour = 0;
    for (const m of minutes) for (const k of CLASSES) hour += Number((m.classes || {})[k]) || 0;
    $('t-hour').textContent = num(hour);
    renderKeys(Array.isArray(d.keys) ? d.keys : []);
    renderCharts(minutes);
    renderErrors(Array.isArray(t.recent_errors) ? t.recent_errors : []);
    tick();
  }

  // Long text (Google's messages): two or three lines, click or Enter for all.
  function setLong(td, text) {
    let span = td.firstElementChild;
    if (!span) {
      span = el('span', { class: 'clamp', tabindex: '0', role: 'button', 'aria-expanded': 'false' });
      const toggle = () => span.setAttribute('aria-expanded', String(span.classList.toggle('open')));
      span.addEventListener('click', toggle);
      span.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); } });
      td.append(span);
    }
    if (span.textContent !== text) span.textContent = text;
    span.title = text;
    return td;
  }

  // ---- keys ----------------------------------------------------------------

  function stateCell(k) {
    const now = Date.now();
    const wrap = el('div', { class: 'state-wrap' });
    const badge = el('span', { class: 'state ' + k.state, text: k.state });
    wrap.append(badge);
    if (k.state === 'cooling' && Array.isArray(k.cooling) && k.cooling.length) {
      const longest = Math.max(...k.cooling.map((x) => Number(x.seconds_left) || 0));
      badge.append(' ', el('span', { class: 'countdown', 'data-deadline': String(now + longest * 1000) }));
      for (const x of k.cooling) {
        const line = el('span', { class: 'detail' }, (x.model || 'all models') + ' · ');
        line.append(el('span', { class: 'countdown', 'data-deadline': String(now + (Number(x.seconds_left) || 0) * 1000) }));
        wrap.append(line);
      }
    } else if (k.state === 'resting' && k.resting_seconds_left) {
      badge.append(' ', el('span', { class: 'countdown', 'data-deadline': String(now + k.resting_seconds_left * 1000) }));
      wrap.append(el('span', { class: 'detail', text: 'after ' + num(k.consecutive_failures) + ' failures in a row' }));
    } else if (k.state === 'disabled' && k.disabled_reason) {
      wrap.append(el('span', { class: 'detail bad', text: k.disabled_reason }));
    }
    return wrap;
  }

  function renderKeys(keys) {
    const body = $('keys').tBodies[0];
    $('no-keys').hidden = keys.length > 0;
    const seen = new Set();
    for (const k of keys) {
      const i = k.index;
      seen.add(i);
      let r = rows.get(i);
      if (!r) {
        const button = el('button', { type: 'button', class: 'small', text: 'Reset', 'aria-label': 'Reset key ' + k.key });
        button.addEventListener('click', () => resetKey(i, button));
        r = {
          tr: el('tr', { 'data-index': String(i) }),
          idx: el('td', { class: 'idx num', text: String(i) }),
          key: el('td', { class: 'key', 'data-label': 'Key' }),
          state: el('td', { class: 'state-cell', 'data-label': 'State' }),
          ok: el('td', { class: 'num successes', 'data-label': 'Successes' }),
          fail: el('td', { class: 'num failures', 'data-label': 'Failures' }),
          err: el('td', { class: 'msg', 'data-label': 'Last error' }),
          used: el('td', { class: 'when', 'data-label': 'Last used' }),
          act: el('td', { class: 'act' }, button),
          sig: '',
        };
        r.tr.append(r.idx, r.key, r.state, r.ok, r.fail, r.err, r.used, r.act);
        rows.set(i, r);
      }
      body.append(r.tr); // keeps order; moves rather than copies
      r.tr.dataset.state = k.state;
      r.key.textContent = k.key;
      const sig = JSON.stringify([k.state, k.disabled_reason, k.cooling, k.resting_seconds_left, k.consecutive_failures]);
      if (sig !== r.sig) {
        r.sig = sig;
        r.state.replaceChildren(stateCell(k));
      }
      r.ok.textContent = num(k.successes);
      r.fail.textContent = num(k.failures);
      setLong(r.err, k.last_error || '—');
      r.used.textContent = k.last_used ? clock(k.last_used) : 'never';
    }
    for (const [i, r] of rows) {
      if (!seen.has(i)) { r.tr.remove(); rows.delete(i); }
    }
  }

  // ---- charts --------------------------------------------------------------

  function niceMax(v) {
    if (v <= 5) return Math.max(1, Math.ceil(v));
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
    return 10 * p;
  }

  // series: [{ name, cls, values: number[] }], drawn bottom-up in order.
  function drawChart(box, legend, minutes, series, unit) {
    const n = minutes.length;
    const totals = minutes.map((_, i) => series.reduce((a, s) => a + s.values[i], 0));
    const peak = Math.max(0, ...totals);
    const max = niceMax(peak);
    const W = 600;
    const H = 100;
    const slot = n ? W / n : W;
    const s = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img',
      'aria-label': 'Requests per minute ' + unit + ', last hour',
    });
    for (const f of [0, 0.5, 1]) {
      const y = H - f * (H - 2) - 0.5;
      s.append(svg('line', { class: 'grid', x1: 0, x2: W, y1: y, y2: y }));
    }
    minutes.forEach((m, i) => {
      const g = svg('g', {});
      const tip = [new Date(m.minute * 1000).toLocaleTimeString(undefined, hm) + ': ' + num(totals[i]) + ' requests'];
      g.append(svg('rect', { class: 'hit', x: i * slot, y: 0, width: slot, height: H }));
      let y = H;
      for (const se of series) {
        const v = se.values[i];
        if (!v) continue;
        tip.push(se.name + ': ' + num(v));
        const h = Math.max(1.5, (v / max) * (H - 2));
        y -= h;
        g.append(svg('rect', {
          class: 'bar ' + se.cls, x: i * slot + slot * 0.12, y: y, width: slot * 0.76, height: h,
          'data-minute': m.minute, 'data-value': v,
        }));
      }
      const title = svg('title', {});
      title.textContent = tip.join('\n');
      g.prepend(title);
      s.append(g);
    });
    const kids = [s];
    kids.push(el('span', { class: 'ymax', text: num(max) + ' / min' }));
    if (peak === 0) kids.push(el('div', { class: 'empty', text: 'No requests in the last hour' }));
    if (n) {
      const at = (i) => new Date(minutes[i].minute * 1000).toLocaleTimeString(undefined, hm);
      kids.push(el('div', { class: 'axis' },
        el('span', { text: at(0) }), el('span', { text: at(Math.floor(n / 2)) }), el('span', { text: at(n - 1) })));
    }
    box.replaceChildren(...kids);
    legend.replaceChildren(...series.map((se) => {
      const total = se.values.reduce((a, b) => a + b, 0);
      return el('span', { class: 'item' }, el('span', { class: 'sw ' + se.cls }), se.name + ' ', el('b', { text: num(total) }));
    }));
  }

  function renderCharts(minutes) {
    const byStatus = CLASSES.map((c) => ({
      name: c, cls: 's' + c, values: minutes.map((m) => Number((m.classes || {})[c]) || 0),
    }));
    drawChart($('chart-status'), $('legend-status'), minutes, byStatus, 'by status');

    const totals = new Map();
    for (const m of minutes) {
      for (const [name, v] of Object.entries(m.models || {})) totals.set(name, (totals.get(name) || 0) + (Number(v) || 0));
    }
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const top = ranked.slice(0, ranked.length > MODEL_COLOURS + 1 ? MODEL_COLOURS : MODEL_COLOURS + 1).map((e) => e[0]);
    const series = top.map((name, i) => ({
      name, cls: 'm' + i, values: minutes.map((m) => Number((m.models || {})[name]) || 0),
    }));
    if (ranked.length > top.length) {
      const keep = new Set(top);
      series.push({
        name: 'other', cls: 'm7',
        values: minutes.map((m) => Object.entries(m.models || {})
          .filter(([k]) => !keep.has(k)).reduce((a, [, v]) => a + (Number(v) || 0), 0)),
      });
    }
    drawChart($('chart-model'), $('legend-model'), minutes, series, 'by model');
  }

  // ---- recent errors -------------------------------------------------------

  let errorsSig = '';
  function renderErrors(errors) {
    $('no-errors').hidden = errors.length > 0;
    $('errors').hidden = errors.length === 0;
    const sig = JSON.stringify(errors);
    if (sig === errorsSig) return;
    errorsSig = sig;
    const body = $('errors').tBodies[0];
    body.replaceChildren(...errors.map((e) => {
      const status = Number(e.status) || 0;
      const code = el('span', { class: 'code c' + Math.floor(status / 100), text: String(status) });
      return el('tr', null,
        el('td', { class: 'when', 'data-label': 'Time', text: e.time ? clock(e.time) : '—' }),
        el('td', { 'data-label': 'Model', text: e.model || '—' }),
        el('td', { class: 'key', 'data-label': 'Key', text: e.key || '—' }),
        el('td', { class: 'num', 'data-label': 'Status' }, code),
        setLong(el('td', { class: 'msg', 'data-label': 'Message' }), e.message || ''));
    }));
  }

  // ---- once a second: countdowns and the "updated" line --------------------

  function tick() {
    const now = Date.now();
    for (const c of document.querySelectorAll('.countdown[data-deadline]')) {
      c.textContent = countdown(Number(c.dataset.deadline) - now);
    }
    if (authed && lastOk) {
      const ago = Math.round((now - lastOk) / 1000);
      $('updated').textContent = 'Updated ' + new Date(lastOk).toLocaleTimeString() + (ago >= 10 ? ' (' + duration(ago) + ' ago)' : '');
    }
  }

  setInterval(tick, 1000);
  setInterval(() => { if (authed && !document.hidden) refresh(); }, REFRESH_MS);
  document.addEventListener('visibilitychange', () => { if (authed && !document.hidden) refresh(); });
  refresh();
})();
