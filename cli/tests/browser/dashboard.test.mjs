// `honker serve` in a real headless browser (Debian's Chromium, driven by
// playwright-core): the page shows a file with known jobs, follows a commit
// from another process (server-sent events, woken by the watcher), and an
// operator requeues a dead job through it; the file is checked after.
//
//   HONKER_BIN     the honker binary (default: the workspace's debug build)
//   CHROMIUM       the browser (default: Debian's chromium, else a Chrome found)
//   HONKER_SCREENSHOTS=DIR   also save screenshots of the main views there
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');
const honker = require(path.join(root, 'node'));
const BIN = process.env.HONKER_BIN || path.join(root, 'target', 'x86_64-unknown-linux-gnu', 'debug', 'honker');
const CHROMIUM =
  process.env.CHROMIUM ||
  ['/usr/bin/chromium', '/usr/bin/google-chrome', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome'].find((p) =>
    fs.existsSync(p),
  ) ||
  '/usr/bin/chromium';
const SHOTS = process.env.HONKER_SCREENSHOTS;
const LONG = 30_000;

/** A file with known jobs in every state, a schedule, a stream and a lock. */
async function fixture() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-dash-'));
  const file = path.join(dir, 'app.db');
  const db = honker.open(file);
  const emails = db.queue('emails');
  await emails.setRetention({ completed: { maxCount: 100 } });
  await emails.setEvents(true);
  const send = emails.task('send', (to) => {
    if (to.startsWith('bad')) throw new Error(`smtp said no to ${to}`);
    return { sent: to };
  });
  for (const to of ['ada@example.com', 'grace@example.com', 'linus@example.com']) await send.enqueue(to);
  const dead = await send.enqueue('bad@example.com', { maxAttempts: 1 });
  const dead2 = await send.enqueue('bad2@example.com', { maxAttempts: 1 });
  assert.equal(await db.worker({ queues: ['emails'] }).drain(), 5);
  await send.enqueue('later@example.com');
  await send.enqueue('later2@example.com');
  const reports = db.queue('reports');
  await reports.enqueue({ report: 'daily' }, { delayS: 3600 });
  await reports.setMaxInFlight(2);
  await db.queue('imports').pause();
  await db.scheduler().add({ name: 'nightly-digest', queue: 'emails', schedule: '0 3 * * *', payload: { task: 'send', args: ['digest@example.com'] } });
  const orders = db.stream('orders');
  const offsets = [];
  for (let i = 0; i < 5; i++) offsets.push(await orders.publish({ order: i }));
  await orders.saveOffset('billing', offsets[1]); // two handled, three to go
  const lock = await db.tryLock('nightly-report', 'host-a', 600);
  assert.ok(lock);
  return { dir, file, db, dead: dead.id, dead2: dead2.id, lock };
}

/** Starts `honker serve FILE ...args`; resolves with the URL it printed. */
function serve(file, ...args) {
  const child = spawn(BIN, ['serve', file, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/\S+) /);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`honker serve exited with ${code}: ${out}`)));
  });
  return { child, url: within(url, 'the server to listen') };
}

function within(p, what, ms = LONG) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** For the screenshots: waves of work for `seconds`, so the chart has a shape. */
async function load(db, seconds) {
  const q = db.queue('thumbnails');
  const resize = q.task('resize', async (n) => {
    await new Promise((r) => setTimeout(r, 4 + (n % 7)));
    if (n % 97 === 0) throw new Error(`image ${n} is corrupt`);
    return { thumb: `thumbs/${n}.png` };
  });
  const ac = new AbortController();
  const running = db.worker({ queues: ['thumbnails'], concurrency: 4, signal: ac.signal }).run();
  const end = Date.now() + seconds * 1000;
  let n = 1;
  while (Date.now() < end) {
    const wave = 20 + Math.round(60 * Math.abs(Math.sin(n / 40)));
    for (let i = 0; i < wave; i++) await resize.enqueue(n++);
    await new Promise((r) => setTimeout(r, 400));
  }
  ac.abort();
  await running;
}

async function cell(page, queue, col) {
  return page.textContent(`#queues-table tr[data-queue="${queue}"] td[data-col="${col}"]`);
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

test('the dashboard shows the file, follows commits, and requeues a dead job', async (t) => {
  const f = await fixture();
  const server = serve(f.file, '--allow-actions');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(async () => {
    await browser.close();
    server.child.kill();
    f.db.close();
  });
  const url = await server.url;
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: LONG });

  // Queues: the counts of the file.
  assert.equal(await cell(page, 'emails', 'ready'), '2');
  assert.equal(await cell(page, 'emails', 'dead'), '2');
  assert.equal(await cell(page, 'emails', 'completed'), '3');
  assert.equal(await cell(page, 'reports', 'scheduled'), '1');
  assert.match(await page.textContent('#queues-table tr[data-queue="imports"]'), /paused/);
  assert.match(await page.textContent('#queues-table tr[data-queue="reports"]'), /≤ 2 in flight/);
  assert.match(await page.textContent('#mode'), /actions allowed/);

  // Live: a commit from another process redraws the page, no reload.
  await page.waitForSelector('#live.on', { timeout: LONG });
  await f.db.queue('emails').enqueue({ task: 'send', args: ['new@example.com'] });
  await page.waitForFunction(
    () => document.querySelector('#queues-table tr[data-queue="emails"] td[data-col="ready"]')?.textContent === '3',
    null,
    { timeout: LONG },
  );
  await page.waitForSelector('#chart polyline.finished', { state: 'attached', timeout: LONG });
  if (SHOTS) await load(f.db, 16);
  await shot(page, 'dashboard-queues');

  // Jobs: a completed job with its result; the dead one with its error.
  await page.click('#tabs button[data-tab="jobs"]');
  await page.selectOption('#job-filter select[name="state"]', 'completed');
  await page.waitForFunction(
    () => {
      const states = [...document.querySelectorAll('#jobs-table tr[data-job-id] .state')].map((e) => e.textContent);
      return states.length > 0 && states.every((s) => s === 'completed');
    },
    null,
    { timeout: LONG },
  );
  assert.equal(await page.locator('#jobs-table tr[data-job-id]').count(), 3);
  await page.click('#jobs-table tr[data-job-id]');
  await page.waitForSelector('#job-detail pre[data-field="result"]', { timeout: LONG });
  assert.match(await page.textContent('#job-detail pre[data-field="result"]'), /"sent": "\w+@example.com"/);
  await shot(page, 'dashboard-job');

  // Dead: requeue through the page, then check the file.
  await page.click('#tabs button[data-tab="dead"]');
  const row = `#dead-table tr[data-job-id="${f.dead}"]`;
  await page.waitForSelector(row, { timeout: LONG });
  assert.match(await page.textContent(row), /smtp said no to bad@example.com/);
  await shot(page, 'dashboard-dead');
  await page.click(`${row} button[data-action="requeue"]`);
  await page.waitForSelector(row, { state: 'detached', timeout: LONG });
  const job = await f.db.queue('emails').getJob(f.dead);
  assert.equal(job.state, 'ready', 'requeued in the file');
  assert.equal(job.attempts, 0);
  // Discard the other for good (the page asks first).
  page.once('dialog', (d) => d.accept());
  const row2 = `#dead-table tr[data-job-id="${f.dead2}"]`;
  await page.click(`${row2} button[data-action="discard"]`);
  await page.waitForSelector(row2, { state: 'detached', timeout: LONG });
  assert.equal(await f.db.queue('emails').getJob(f.dead2), null, 'gone from the file');

  // Schedules, streams (consumer lag) and locks.
  await page.click('#tabs button[data-tab="schedules"]');
  await page.waitForSelector('#schedules-table td:has-text("nightly-digest")', { timeout: LONG });
  assert.match(await page.textContent('#schedules-table'), /0 3 \* \* \*/);
  await page.click('#tabs button[data-tab="streams"]');
  await page.waitForSelector('#streams-table tr[data-consumer="orders/billing"]', { timeout: LONG });
  assert.equal(await page.textContent('#streams-table tr[data-consumer="orders/billing"] td[data-col="lag"]'), '3');
  await shot(page, 'dashboard-streams');
  await page.click('#tabs button[data-tab="locks"]');
  await page.waitForSelector('#locks-table td:has-text("nightly-report")', { timeout: LONG });
  assert.match(await page.textContent('#locks-table'), /host-a/);

  // Metrics, from the same server.
  const metrics = await (await fetch(new URL('/metrics', url))).text();
  assert.match(metrics, /honker_jobs\{queue="emails",state="ready"\} 4/);
  assert.match(metrics, /honker_stream_consumer_lag\{stream="orders",consumer="billing"\} 3/);
});

test('read-only unless allowed; a token guards it; other hosts are refused', async (t) => {
  const f = await fixture();
  const ro = serve(f.file);
  const guarded = serve(f.file, '--token', 's3cret');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(async () => {
    await browser.close();
    ro.child.kill();
    guarded.child.kill();
    f.db.close();
  });
  const url = await ro.url;
  const page = await browser.newPage();
  await page.goto(`${url}#dead`);
  await page.waitForSelector(`#dead-table tr[data-job-id="${f.dead}"]`, { timeout: LONG });
  assert.equal(await page.locator('#dead-table button[data-action="requeue"]').count(), 0, 'no action buttons');
  assert.match(await page.textContent('#mode'), /read-only/);
  const post = await fetch(new URL(`/api/jobs/${f.dead}/requeue`, url), { method: 'POST', headers: { 'X-Honker-Action': '1' } });
  assert.equal(post.status, 403);
  assert.equal((await f.db.queue('emails').getJob(f.dead)).state, 'dead');
  // (fetch() sets Host itself: a raw request names another.)
  const rebound = await new Promise((resolve, reject) => {
    const u = new URL('/api/overview', url);
    http.get({ host: u.hostname, port: u.port, path: u.pathname, headers: { Host: 'attacker.example' } }, (r) => {
      r.resume();
      resolve(r.statusCode);
    }).on('error', reject);
  });
  assert.equal(rebound, 403, 'a rebound host name is refused');

  const gurl = (await guarded.url).replace(/\?token=.*$/, '');
  assert.equal((await fetch(new URL('/api/overview', gurl))).status, 403, 'no token');
  assert.equal((await fetch(new URL('/api/overview', gurl), { headers: { Authorization: 'Bearer nope' } })).status, 403);
  assert.equal((await fetch(new URL('/api/overview', gurl), { headers: { Authorization: 'Bearer s3cret' } })).status, 200);
  const page2 = await browser.newPage();
  await page2.goto(`${gurl}?token=s3cret`);
  await page2.waitForSelector('body[data-ready="1"]', { timeout: LONG });
  assert.equal(await cell(page2, 'emails', 'dead'), '2', 'the page works on with the cookie the token set');
  assert.ok(!page2.url().includes('token='), 'the token leaves the address bar');
});
