// honker on PostgreSQL against pg-boss 10 and graphile-worker 0.17, all in
// Node on the same server, in one run (make bench-pg):
//
//   enqueue   jobs/s with 1, 4 and 16 producers, one job per call
//   work      jobs/s claimed and acked by workers of concurrency 1, 4 and
//             16, no-op handlers, from a queue loaded beforehand
//   wake      latency from the producer's call to the idle worker's handler
//             starting, p50 and p99 (each system with its own defaults for
//             waking: honker and graphile-worker LISTEN/NOTIFY; pg-boss
//             polls, at its minimum interval of 0.5 s)
//
//   node bench/postgres/bench.mjs postgresql://... [jobs]
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { makeWorkerUtils, run as graphileRun } from 'graphile-worker';

const require = createRequire(new URL('../../node/package.json', import.meta.url));
const honker = require('./dist/index.js');

const URL_ = process.argv[2];
const JOBS = Number(process.argv[3] ?? 2000);
const WAKES = 100;
const COUNTS = [1, 4, 16];
if (!URL_) throw new Error('usage: node bench/postgres/bench.mjs postgresql://... [jobs]');

async function sql(text) {
  const c = new pg.Client({ connectionString: URL_ });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** Runs `n` calls of `one(i)` spread over `producers` concurrent loops; jobs/s. */
async function spread(producers, n, one) {
  const per = Math.ceil(n / producers.length);
  const t = performance.now();
  await Promise.all(
    producers.map(async (p, k) => {
      for (let i = k * per; i < Math.min(n, (k + 1) * per); i++) await one(p, i);
    }),
  );
  return n / ((performance.now() - t) / 1000);
}

/** Most a claim+ack figure waits (pg-boss claims 2 jobs/s per worker at
 * concurrency 1): the rate is then of the jobs done in that time. */
const CAP_MS = 15000;

/** `finished` resolves once `tick()` was called `n` times, or after CAP_MS;
 * `rate(t)` is jobs/s since `t` (performance.now()). */
function countdown(n) {
  let done;
  let left = n;
  const finished = Promise.race([
    new Promise((r) => (done = r)),
    new Promise((r) => setTimeout(r, CAP_MS).unref()),
  ]);
  return {
    finished,
    tick: () => --left === 0 && done(),
    rate: (t) => (n - left) / ((performance.now() - t) / 1000),
  };
}

// ---- honker -----------------------------------------------------------------

const honkerSystem = {
  name: 'honker',
  schema: 'bench_honker',
  target() {
    return `${URL_}?schema=${this.schema}`;
  },
  async fresh() {
    await sql(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    honker.open(this.target()).close();
  },
  async enqueue(n) {
    const dbs = Array.from({ length: n }, () => honker.open(this.target()));
    const producers = dbs.map((db) => db.queue('q').task('noop', async () => null));
    const rate = await spread(producers, JOBS, (task, i) => task.enqueue(i));
    dbs.forEach((db) => db.close());
    return rate;
  },
  async work(n) {
    const db = honker.open(this.target());
    const { finished, tick, rate: rateSince } = countdown(JOBS);
    db.queue('w').task('noop', async () => void tick(), { storeResult: false });
    const payloads = Array.from({ length: JOBS }, (_, i) => ({ task: 'noop', args: [i] }));
    await db.queue('w').enqueueMany(payloads);
    const stop = new AbortController();
    const t = performance.now();
    const running = db.worker({ queues: ['w'], concurrency: n, signal: stop.signal }).run();
    await finished;
    const rate = rateSince(t);
    stop.abort();
    await running;
    db.close();
    return rate;
  },
  async wake() {
    const db = honker.open(this.target());
    const producer = honker.open(this.target());
    let resolve;
    db.queue('wake').task('ping', async () => resolve(performance.now()), { storeResult: false });
    const stop = new AbortController();
    const running = db.worker({ queues: ['wake'], concurrency: 1, signal: stop.signal }).run();
    const ping = producer.queue('wake').task('ping', async () => null);
    const out = [];
    await new Promise((r) => setTimeout(r, 200)); // the worker is waiting
    for (let i = 0; i < WAKES; i++) {
      const got = new Promise((r) => (resolve = r));
      const t = performance.now();
      await ping.enqueue(i);
      out.push((await got) - t);
    }
    stop.abort();
    await running;
    db.close();
    producer.close();
    return out;
  },
};

// ---- graphile-worker ------------------------------------------------------------

const graphile = {
  name: 'graphile-worker 0.17',
  async fresh() {
    await sql('DROP SCHEMA IF EXISTS graphile_worker CASCADE');
    const utils = await makeWorkerUtils({ connectionString: URL_ });
    await utils.migrate();
    await utils.release();
  },
  async enqueue(n) {
    const all = await Promise.all(
      Array.from({ length: n }, () => makeWorkerUtils({ connectionString: URL_, maxPoolSize: 1 })),
    );
    const rate = await spread(all, JOBS, (u, i) => u.addJob('noop', { i }));
    await Promise.all(all.map((u) => u.release()));
    await sql('DELETE FROM graphile_worker._private_jobs');
    return rate;
  },
  async work(n) {
    await sql(
      `SELECT graphile_worker.add_job('noop', json_build_object('i', g)) FROM generate_series(1, ${JOBS}) g`,
    );
    const { finished, tick, rate: rateSince } = countdown(JOBS);
    const t = performance.now();
    const runner = await graphileRun({
      connectionString: URL_,
      concurrency: n,
      noHandleSignals: true,
      pollInterval: 1000,
      taskList: { noop: async () => void tick() },
      logger: quiet,
    });
    await finished;
    const rate = rateSince(t);
    await runner.stop();
    return rate;
  },
  async wake() {
    let resolve;
    const runner = await graphileRun({
      connectionString: URL_,
      concurrency: 1,
      noHandleSignals: true,
      pollInterval: 2000,
      taskList: { ping: async () => resolve(performance.now()) },
      logger: quiet,
    });
    const utils = await makeWorkerUtils({ connectionString: URL_ });
    await new Promise((r) => setTimeout(r, 200));
    const out = [];
    for (let i = 0; i < WAKES; i++) {
      const got = new Promise((r) => (resolve = r));
      const t = performance.now();
      await utils.addJob('ping', { i });
      out.push((await got) - t);
    }
    await utils.release();
    await runner.stop();
    return out;
  },
};

// graphile-worker logs every job; keep the output to the figures.
const { Logger } = await import('graphile-worker');
const quiet = new Logger(() => () => {});

// ---- pg-boss ---------------------------------------------------------------------

const pgboss = {
  name: 'pg-boss 10',
  schema: 'bench_pgboss',
  async boss() {
    const b = new PgBoss({ connectionString: URL_, schema: this.schema, max: 20, supervise: false, schedule: false });
    b.on('error', () => {});
    await b.start();
    return b;
  },
  async fresh() {
    await sql(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    const b = await this.boss();
    await b.createQueue('q');
    await b.createQueue('w');
    await b.createQueue('wake');
    await b.stop({ graceful: false, wait: true });
  },
  async enqueue(n) {
    const b = await this.boss();
    const rate = await spread(Array(n).fill(b), JOBS, (boss, i) => boss.send('q', { i }));
    await b.stop({ graceful: false, wait: true });
    return rate;
  },
  async work(n) {
    const b = await this.boss();
    await b.insert(Array.from({ length: JOBS }, (_, i) => ({ name: 'w', data: { i } })));
    const { finished, tick, rate: rateSince } = countdown(JOBS);
    const t = performance.now();
    for (let k = 0; k < n; k++) {
      await b.work('w', { batchSize: 1, pollingIntervalSeconds: 0.5 }, async () => void tick());
    }
    await finished;
    const rate = rateSince(t);
    await b.stop({ graceful: false, wait: true });
    return rate;
  },
  async wake() {
    const b = await this.boss();
    let resolve;
    await b.work('wake', { batchSize: 1, pollingIntervalSeconds: 0.5 }, async () => resolve(performance.now()));
    await new Promise((r) => setTimeout(r, 200));
    const out = [];
    for (let i = 0; i < WAKES / 5; i++) {
      // Fewer: each waits for a poll.
      const got = new Promise((r) => (resolve = r));
      const t = performance.now();
      await b.send('wake', { i });
      out.push((await got) - t);
    }
    await b.stop({ graceful: false, wait: true });
    return out;
  },
};

const results = [];
for (const s of [honkerSystem, graphile, pgboss]) {
  await s.fresh();
  const row = { system: s.name };
  for (const n of COUNTS) row[`enqueue ${n}`] = await s.enqueue(n);
  for (const n of COUNTS) row[`work ${n}`] = await s.work(n);
  const wakes = await s.wake();
  row['wake p50 ms'] = pct(wakes, 50);
  row['wake p99 ms'] = pct(wakes, 99);
  results.push(row);
  console.error(`done: ${s.name}`);
}
const cols = Object.keys(results[0]);
console.log(`${JOBS} jobs per figure; jobs/s unless marked ms`);
console.log(`| ${cols.join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of results) {
  console.log(
    `| ${cols.map((c) => (typeof r[c] === 'number' ? (c.endsWith('ms') ? r[c].toFixed(2) : Math.round(r[c])) : r[c])).join(' | ')} |`,
  );
}
