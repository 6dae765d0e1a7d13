// The honker dashboard: plain JavaScript, no build step. It reads the JSON
// API of `honker serve` and redraws when the server says the file changed
// (server-sent events at /api/live, woken by commits).
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const state = { tab: 'queues', actions: false, queues: [], selected: null, before: null };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) e.append(c instanceof Node ? c : document.createTextNode(c ?? ''));
  return e;
}

const time = (ms) => (ms == null ? '–' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
function ago(ms) {
  if (ms == null) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const firstLine = (s) => (s ? String(s).split('\n')[0] : '');

async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

async function act(path, what) {
  const r = await fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'X-Honker-Action': '1' } });
  const body = await r.json();
  toast(r.ok ? what : `failed: ${body.message}`);
  await refresh();
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 2500);
}

function fill(table, rows, empty) {
  const body = $(`${table} tbody`);
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: 9 }, empty))]));
}

const stateBadge = (s) => el('span', { class: `state ${s}` }, s);

function controls(q) {
  const parts = [];
  if (q.paused) parts.push('paused');
  if (q.max_in_flight != null) parts.push(`≤ ${q.max_in_flight} in flight`);
  if (q.rate_limit) parts.push(`${q.rate_limit.limit} / ${q.rate_limit.per_s}s`);
  const keep = q.retention || {};
  if (keep.completed) parts.push(`keeps completed${keep.completed.max_count ? ` ≤ ${keep.completed.max_count}` : ''}${keep.completed.max_age_s ? ` ${ago(keep.completed.max_age_s * 1000)}` : ''}`);
  if (q.events) parts.push('events');
  return parts.join(', ') || '–';
}

async function drawQueues() {
  const o = await get('/api/overview');
  state.actions = o.actions;
  state.queues = o.queues;
  $('#path').textContent = o.path;
  const mode = $('#mode');
  mode.textContent = o.actions ? 'actions allowed' : 'read-only';
  mode.className = o.actions ? 'badge actions' : 'badge';
  $('#enqueued').textContent = `${o.jobs_enqueued} jobs enqueued in this file, ever.`;
  fill(
    '#queues-table',
    o.queues.map((q) =>
      el(
        'tr',
        { 'data-queue': q.name },
        el('td', {}, el('b', {}, q.name)),
        el('td', { class: 'num', 'data-col': 'ready' }, q.ready),
        el('td', { class: 'num', 'data-col': 'scheduled' }, q.scheduled),
        el('td', { class: 'num', 'data-col': 'processing' }, q.processing),
        el('td', { class: 'num', 'data-col': 'dead' }, q.dead),
        el('td', { class: 'num', 'data-col': 'completed' }, q.completed),
        el('td', { class: 'num' }, ago(q.head_age_ms)),
        el('td', {}, controls(q)),
        el(
          'td',
          {},
          state.actions
            ? el(
                'button',
                { class: 'act', onclick: () => act(`/api/queues/${encodeURIComponent(q.name)}/${q.paused ? 'resume' : 'pause'}`, `${q.paused ? 'resumed' : 'paused'} ${q.name}`) },
                q.paused ? 'resume' : 'pause',
              )
            : '',
        ),
      ),
    ),
    'No queues yet.',
  );
  const select = $('#job-filter select[name=queue]');
  const current = select.value;
  select.replaceChildren(el('option', { value: '' }, 'any'), ...o.queues.map((q) => el('option', { value: q.name }, q.name)));
  select.value = current;
  await drawChart();
}

async function drawChart() {
  const points = await get('/api/series');
  const svg = $('#chart');
  const W = 800, H = 200, L = 40, B = 18;
  const parts = [];
  const ns = 'http://www.w3.org/2000/svg';
  const line = (cls, xs) => {
    const p = document.createElementNS(ns, 'polyline');
    p.setAttribute('class', cls);
    p.setAttribute('points', xs.join(' '));
    return p;
  };
  const text = (x, y, s, anchor = 'end') => {
    const t = document.createElementNS(ns, 'text');
    t.setAttribute('x', x);
    t.setAttribute('y', y);
    t.setAttribute('class', 'axis');
    t.setAttribute('text-anchor', anchor);
    t.textContent = s;
    return t;
  };
  $('#chart-note').textContent = points.length ? `(last ${ago(points[points.length - 1].at_ms - points[0].at_ms)})` : '';
  if (points.length >= 2) {
    const t0 = points[0].at_ms, t1 = points[points.length - 1].at_ms || t0 + 1;
    const top = Math.max(1, ...points.map((p) => Math.max(p.finished_per_s, p.ready, p.processing)));
    const x = (t) => L + ((W - L - 4) * (t - t0)) / Math.max(1, t1 - t0);
    const y = (v) => H - B - ((H - B - 6) * v) / top;
    for (const f of [0, 0.5, 1]) {
      const g = document.createElementNS(ns, 'line');
      g.setAttribute('class', 'grid');
      g.setAttribute('x1', L);
      g.setAttribute('x2', W);
      g.setAttribute('y1', y(top * f));
      g.setAttribute('y2', y(top * f));
      parts.push(g, text(L - 4, y(top * f) + 3, Math.round(top * f)));
    }
    parts.push(text(L, H - 4, new Date(t0).toLocaleTimeString(), 'start'), text(W - 4, H - 4, new Date(t1).toLocaleTimeString()));
    for (const key of ['ready', 'processing', 'finished_per_s']) {
      parts.push(line(key === 'finished_per_s' ? 'finished' : key, points.map((p) => `${x(p.at_ms).toFixed(1)},${y(p[key]).toFixed(1)}`)));
    }
  } else {
    parts.push(text(W / 2, H / 2, 'collecting…', 'middle'));
  }
  svg.replaceChildren(...parts);
}

function jobDetail(j) {
  const aside = $('#job-detail');
  aside.hidden = false;
  const rows = [
    ['state', stateBadge(j.state)],
    ['queue', j.queue],
    ['task', j.task ?? '–'],
    ['attempts', `${j.attempts} of ${j.max_attempts}`],
    ['priority', j.priority],
    ['worker', j.worker_id ?? '–'],
    ['key', j.key ?? '–'],
    ['created', time(j.created_at_ms)],
    ['run at', time(j.run_at_ms)],
    ['started', time(j.started_at_ms)],
    ['completed', time(j.completed_at_ms)],
    ['died', j.died_at_ms ? `${time(j.died_at_ms)} (${j.dead_reason})` : '–'],
  ];
  const buttons = [];
  if (state.actions && j.state === 'dead') {
    buttons.push(el('button', { class: 'act', 'data-action': 'requeue', onclick: () => act(`/api/jobs/${j.id}/requeue`, `requeued job ${j.id}`) }, 'requeue'));
    buttons.push(' ', el('button', { class: 'act', 'data-action': 'discard', onclick: () => { if (confirm(`Delete dead job ${j.id} for good?`)) act(`/api/jobs/${j.id}/discard`, `discarded job ${j.id}`); } }, 'discard'));
  }
  if (state.actions && ['ready', 'scheduled', 'processing'].includes(j.state)) {
    buttons.push(el('button', { class: 'act', 'data-action': 'cancel', onclick: () => act(`/api/jobs/${j.id}/cancel`, `cancelled job ${j.id}`) }, 'cancel'));
  }
  const parts = [
    el('h2', {}, `job ${j.id}`),
    el('dl', {}, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('div', { class: 'muted' }, 'payload'),
    el('pre', { 'data-field': 'payload' }, JSON.stringify(j.payload, null, 2)),
    j.result !== null && j.result !== undefined ? [el('div', { class: 'muted' }, 'result'), el('pre', { 'data-field': 'result' }, JSON.stringify(j.result, null, 2))] : [],
    j.last_error ? [el('div', { class: 'muted' }, 'last error'), el('pre', { class: 'error', 'data-field': 'error' }, j.last_error)] : [],
    buttons,
  ];
  aside.replaceChildren(...parts.flat(Infinity));
}

function jobRow(j, withActions) {
  const row = el(
    'tr',
    { class: `clickable${state.selected === j.id ? ' selected' : ''}`, 'data-job-id': j.id, onclick: () => select(j.id) },
    el('td', { class: 'num' }, j.id),
    el('td', {}, j.queue),
    withActions ? el('td', {}, j.task ?? '–') : el('td', {}, stateBadge(j.state)),
    withActions ? el('td', {}, j.dead_reason) : el('td', {}, j.task ?? '–'),
    el('td', { class: 'num' }, `${j.attempts}/${j.max_attempts}`),
    el('td', {}, time(withActions ? j.died_at_ms : j.created_at_ms)),
    el('td', { class: 'error' }, firstLine(j.last_error)),
    el(
      'td',
      {},
      withActions && state.actions
        ? [
            el('button', { class: 'act', 'data-action': 'requeue', onclick: (e) => { e.stopPropagation(); act(`/api/jobs/${j.id}/requeue`, `requeued job ${j.id}`); } }, 'requeue'),
            ' ',
            el('button', { class: 'act', 'data-action': 'discard', onclick: (e) => { e.stopPropagation(); if (confirm(`Delete dead job ${j.id} for good?`)) act(`/api/jobs/${j.id}/discard`, `discarded job ${j.id}`); } }, 'discard'),
          ]
        : '',
    ),
  );
  return row;
}

async function select(id) {
  state.selected = id;
  for (const r of document.querySelectorAll('tr[data-job-id]')) r.classList.toggle('selected', Number(r.dataset.jobId) === id);
  try {
    jobDetail(await get(`/api/job/${id}`));
  } catch (e) {
    $('#job-detail').replaceChildren(el('p', { class: 'muted' }, `job ${id}: ${e.message}`));
  }
}

/** The jobs page's query: the filter's fields, a page of 50, after `before`. */
function jobsQuery(before) {
  const f = new FormData($('#job-filter'));
  const q = new URLSearchParams({ limit: '50' });
  for (const k of ['queue', 'state', 'task']) if (f.get(k)) q.set(k, f.get(k));
  if (before != null) q.set('before', String(before));
  return `/api/jobs?${q}`;
}

async function drawJobs() {
  // Only the latest look draws: an older one answering late (a live redraw
  // started before the filter changed) is dropped.
  const seq = (state.jobsSeq = (state.jobsSeq || 0) + 1);
  const jobs = await get(jobsQuery(null));
  if (seq !== state.jobsSeq) return;
  fill('#jobs-table', jobs.map((j) => jobRow(j, false)), 'No jobs match.');
  state.before = jobs.length === 50 ? jobs[jobs.length - 1].id : null;
  $('#jobs-more').hidden = state.before == null;
  if (state.selected != null) await select(state.selected);
}

async function moreJobs() {
  const jobs = await get(jobsQuery(state.before));
  $('#jobs-table tbody').append(...jobs.map((j) => jobRow(j, false)));
  state.before = jobs.length === 50 ? jobs[jobs.length - 1].id : null;
  $('#jobs-more').hidden = state.before == null;
}

async function drawDead() {
  const jobs = await get('/api/jobs?state=dead&limit=200');
  fill('#dead-table', jobs.map((j) => jobRow(j, true)), 'No dead jobs.');
}

async function drawSchedules() {
  const list = await get('/api/schedules');
  fill(
    '#schedules-table',
    list.map((s) =>
      el('tr', {}, el('td', {}, el('b', {}, s.name)), el('td', {}, s.queue), el('td', {}, el('code', {}, s.cron)), el('td', {}, time(s.next_fire_at_ms)), el('td', {}, time(s.last_fire_at_ms)), el('td', {}, s.paused ? 'paused' : 'running'), el('td', { class: 'error' }, firstLine(s.last_error))),
    ),
    'No schedules.',
  );
}

async function drawStreams() {
  const list = await get('/api/streams');
  const rows = [];
  for (const s of list) {
    const consumers = Object.entries(s.consumers);
    if (!consumers.length) rows.push(el('tr', {}, el('td', {}, el('b', {}, s.name)), el('td', { class: 'num' }, s.last_offset), el('td', { class: 'muted' }, 'no consumer'), el('td', {}), el('td', {})));
    for (const [name, c] of consumers) {
      rows.push(el('tr', { 'data-consumer': `${s.name}/${name}` }, el('td', {}, el('b', {}, s.name)), el('td', { class: 'num' }, s.last_offset), el('td', {}, name), el('td', { class: 'num' }, c.offset), el('td', { class: 'num', 'data-col': 'lag' }, c.lag)));
    }
  }
  fill('#streams-table', rows, 'No streams.');
}

async function drawLocks() {
  const list = await get('/api/locks');
  fill('#locks-table', list.map((l) => el('tr', {}, el('td', {}, el('b', {}, l.name)), el('td', {}, l.owner), el('td', { class: 'num' }, l.token), el('td', {}, time(l.expires_at_ms)))), 'No locks held.');
}

const draw = { queues: drawQueues, jobs: drawJobs, dead: drawDead, schedules: drawSchedules, streams: drawStreams, locks: drawLocks };

async function refresh() {
  try {
    if (state.tab !== 'queues') await drawQueues();
    await draw[state.tab]();
    document.body.dataset.ready = '1';
  } catch (e) {
    toast(e.message);
  }
}

function show(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== tab;
  history.replaceState(null, '', `#${tab}`);
  refresh();
}

for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => show(b.dataset.tab));
$('#job-filter').addEventListener('change', () => { state.selected = null; $('#job-detail').hidden = true; drawJobs(); });
$('#job-filter').addEventListener('submit', (e) => e.preventDefault());
$('#jobs-more').addEventListener('click', moreJobs);

// Live: the server says when the file changed; redraw then, at most 4 times a second.
let pending = null;
const live = new EventSource('/api/live');
live.addEventListener('open', () => $('#live').className = 'live on');
live.addEventListener('error', () => $('#live').className = 'live off');
live.addEventListener('change', () => {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 250);
});

if (location.search.includes('token=')) history.replaceState(null, '', location.pathname + location.hash);
show((location.hash || '#queues').slice(1) in draw ? (location.hash || '#queues').slice(1) : 'queues');
