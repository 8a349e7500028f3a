// gemini-balance console, the Usage tab: GET admin/usage over 1 h / 24 h /
// 7 d / 30 d by model or by key, drawn as inline SVG bar charts (requests by
// status class, prompt/output/thought tokens, requests per model or key),
// the totals, a table per model or key, and the keys with the most 429s
// today (from GET admin/keys). No chart library: bars are SVG rects.
import { t } from './dashboard-i18n.js';
import { $, el, svg, raw, num, axisTime, api, withQuery } from './dashboard-ui.js';

const MAX_BARS = 120;
const COLOURS = 7; // m0..m6, m7 is "other"
const WINDOW_SECONDS = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
const TOTALS = [
  ['client_requests', 'usage.clientRequests'], ['requests', 'usage.attempts'], ['successes', 'usage.successes'],
  ['failures', 'usage.failures'], ['rate_limited', 'usage.limited'], ['prompt_tokens', 'usage.prompt'],
  ['output_tokens', 'usage.output'], ['thought_tokens', 'usage.thought'],
];

let report = null;
let keyList = [];
const view = { window: '1h', by: 'model' };

const n = (v) => Number(v) || 0;

/** Bucket start times covering the window, gaps included, merged to at most MAX_BARS bars. */
function timeline(r) {
  const bs = n(r.bucket_seconds) || 60;
  const span = WINDOW_SECONDS[r.window] || 3600;
  const end = Math.floor(Date.now() / 1000 / bs) * bs;
  let start = end - span + bs;
  for (const s of r.series || []) for (const b of s.buckets || []) start = Math.min(start, n(b.t));
  const count = Math.floor((end - start) / bs) + 1;
  const group = Math.max(1, Math.ceil(count / MAX_BARS));
  const bars = [];
  for (let i = 0; i < count; i += group) bars.push(start + i * bs);
  return { bars, bs, width: bs * group, start };
}

/** A series' values per bar for `field` (a function of a bucket). */
function values(tl, buckets, field) {
  const out = new Array(tl.bars.length).fill(0);
  for (const b of buckets || []) {
    const i = Math.floor((n(b.t) - tl.start) / tl.width);
    if (i >= 0 && i < out.length) out[i] += field(b);
  }
  return out;
}

function niceMax(v) {
  if (v <= 5) return Math.max(1, Math.ceil(v));
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

/** A stacked bar chart into `box` with its legend; series: [{name, cls, values, isRaw}]. */
function drawChart(box, legend, tl, series, labelKey) {
  const count = tl.bars.length;
  const totals = tl.bars.map((_, i) => series.reduce((a, s) => a + s.values[i], 0));
  const peak = Math.max(0, ...totals);
  const max = niceMax(peak);
  const W = 600;
  const H = 100;
  const slot = count ? W / count : W;
  const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': t(labelKey) });
  for (const f of [0, 0.5, 1]) {
    const y = H - f * (H - 2) - 0.5;
    s.append(svg('line', { class: 'grid', x1: 0, x2: W, y1: y, y2: y }));
  }
  tl.bars.forEach((start, i) => {
    if (!totals[i]) return;
    const g = svg('g', {});
    const tip = [axisTime(start, tl.bs) + ': ' + num(totals[i])];
    let y = H;
    for (const se of series) {
      const v = se.values[i];
      if (!v) continue;
      tip.push(se.name + ': ' + num(v));
      const h = Math.max(1.5, (v / max) * (H - 2));
      y -= h;
      g.append(svg('rect', {
        class: 'bar ' + se.cls, x: i * slot + slot * 0.1, y, width: Math.max(0.8, slot * 0.8), height: h,
        'data-t': start, 'data-value': v,
      }));
    }
    const title = svg('title', {});
    title.textContent = tip.join('\n');
    g.prepend(title);
    s.append(g);
  });
  const kids = [s, el('span', { class: 'ymax', text: num(max) })];
  if (peak === 0) kids.push(el('div', { class: 'empty', text: t('usage.noData') }));
  if (count) {
    kids.push(el('div', { class: 'axis' }, el('span', { text: axisTime(tl.bars[0], tl.bs) }),
      el('span', { text: axisTime(tl.bars[Math.floor(count / 2)], tl.bs) }), el('span', { text: axisTime(tl.bars[count - 1], tl.bs) })));
  }
  box.replaceChildren(...kids);
  legend.replaceChildren(...series.map((se) => {
    const total = se.values.reduce((a, b) => a + b, 0);
    return el('span', { class: 'item' }, el('span', { class: 'sw ' + se.cls }),
      se.isRaw ? raw('span', se.name) : el('span', { text: se.name }), ' ', el('b', { text: num(total) }));
  }));
}

/** The name of a series: a model, or a key shown masked. */
function seriesName(s) {
  if (view.by === 'key' || (s.key !== undefined && s.model === undefined)) {
    const k = keyList.find((x) => x.id === s.key);
    return k ? k.masked : String(s.key || '—');
  }
  return String(s.model || '—');
}

function renderTotals(totals) {
  $('usage-totals').replaceChildren(...TOTALS.map(([f, key]) => el('div', { class: 'tile', 'data-field': f },
    el('span', { class: 'label', text: t(key) }), el('span', { class: 'value', text: num(totals[f]) }))));
}

function renderTable(list) {
  const body = $('usage-table').tBodies[0];
  $('usage-col-name').textContent = t(view.by === 'key' ? 'usage.col.key' : 'usage.col.model');
  body.replaceChildren(...list.map((s) => {
    const tt = s.totals || {};
    return el('tr', null,
      el('td', { class: view.by === 'key' ? 'key' : '', 'data-label': t(view.by === 'key' ? 'usage.col.key' : 'usage.col.model') }, raw('span', seriesName(s))),
      ...['requests', 'successes', 'failures', 'rate_limited', 'prompt_tokens', 'output_tokens', 'thought_tokens'].map((f) =>
        el('td', { class: 'num', 'data-label': t('usage.col.' + f) , text: num(tt[f]) })));
  }));
  $('usage-table-empty').hidden = list.length > 0;
}

function renderTop429() {
  const top = keyList
    .map((k) => ({ k, n: n((k.usage_today || {}).rate_limited) }))
    .filter((x) => x.n > 0)
    .sort((a, b) => b.n - a.n)
    .slice(0, 10);
  $('usage-top429').replaceChildren(...top.map((x) => el('li', null, raw('span', x.k.masked, 'mask'), ' ',
    el('b', { text: num(x.n) }))));
  $('usage-top429-empty').hidden = top.length > 0;
}

/** Redraws the tab from the last answer (also on a language switch). */
export function render() {
  for (const b of document.querySelectorAll('#usage-window button')) b.setAttribute('aria-pressed', String(b.dataset.window === view.window));
  renderTop429();
  if (!report) return;
  const tl = timeline(report);
  const list = Array.isArray(report.series) ? report.series.slice() : [];
  const all = list.flatMap((s) => s.buckets || []);
  const success = values(tl, all, (b) => n(b.successes));
  const limited = values(tl, all, (b) => n(b.rate_limited));
  const other = values(tl, all, (b) => Math.max(0, n(b.failures) - n(b.rate_limited)));
  drawChart($('chart-status'), $('legend-status'), tl, [
    { name: t('usage.class.ok'), cls: 's2xx', values: success },
    { name: t('usage.class.429'), cls: 's4xx', values: limited },
    { name: t('usage.class.failed'), cls: 's5xx', values: other },
  ], 'usage.chart.status');
  drawChart($('chart-tokens'), $('legend-tokens'), tl, [
    { name: t('usage.prompt'), cls: 'm0', values: values(tl, all, (b) => n(b.prompt_tokens)) },
    { name: t('usage.output'), cls: 'm1', values: values(tl, all, (b) => n(b.output_tokens)) },
    { name: t('usage.thought'), cls: 'm3', values: values(tl, all, (b) => n(b.thought_tokens)) },
  ], 'usage.chart.tokens');
  list.sort((a, b) => n((b.totals || {}).requests) - n((a.totals || {}).requests));
  const top = list.slice(0, list.length > COLOURS + 1 ? COLOURS : COLOURS + 1);
  const series = top.map((s, i) => ({ name: seriesName(s), cls: 'm' + i, isRaw: true, values: values(tl, s.buckets, (b) => n(b.requests)) }));
  if (list.length > top.length) {
    const rest = list.slice(top.length).flatMap((s) => s.buckets || []);
    series.push({ name: t('usage.other'), cls: 'm7', values: values(tl, rest, (b) => n(b.requests)) });
  }
  $('usage-by-title').textContent = t(view.by === 'key' ? 'usage.chart.byKey' : 'usage.chart.byModel');
  drawChart($('chart-by'), $('legend-by'), tl, series, view.by === 'key' ? 'usage.chart.byKey' : 'usage.chart.byModel');
  renderTotals(report.totals || {});
  renderTable(list);
}

/** Reads `admin/usage` (and `admin/keys` for masks and 429s today) and redraws. */
export async function refresh() {
  const [r, k] = await Promise.all([
    api('GET', withQuery('admin/usage', { window: view.window, by: view.by })),
    api('GET', 'admin/keys'),
  ]);
  report = r;
  keyList = Array.isArray(k && k.keys) ? k.keys : [];
  render();
}

/** Wires the tab's controls; `reload()` refreshes with error handling. */
export function init(reload) {
  for (const b of document.querySelectorAll('#usage-window button')) {
    b.addEventListener('click', () => { view.window = b.dataset.window; render(); reload(); });
  }
  $('usage-by').addEventListener('change', () => { view.by = $('usage-by').value; reload(); });
}
