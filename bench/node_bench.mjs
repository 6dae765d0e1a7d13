// honker's Node package beside better-sqlite3 doing single-row insert
// transactions on the same kind of file (WAL, synchronous=NORMAL), in the
// same run, in alternating rounds; medians.
//
// Run: make bench-node (builds the addon in release mode first).
// `--quick` for a smaller, noisier run.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(new URL('../node/', import.meta.url));
const Sqlite = require('better-sqlite3');
const honker = require('./dist/index.js');

const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 3 : 7;
const N = QUICK ? 300 : 2000;

function baseline(file) {
  const c = new Sqlite(file);
  c.pragma('journal_mode = WAL');
  c.pragma('synchronous = NORMAL');
  // The same minimal job table as the Rust and Python baselines.
  c.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL,
    run_at INTEGER NOT NULL, worker TEXT, created_at INTEGER NOT NULL)`);
  c.exec("CREATE INDEX jobs_ready ON jobs (queue, run_at, id) WHERE worker IS NULL");
  const ins = c.prepare('INSERT INTO jobs (queue, payload, run_at, created_at) VALUES (?, ?, ?, ?)');
  const insert = c.transaction((i) => {
    const now = Date.now();
    ins.run('bench', JSON.stringify({ n: i }), now, now);
  });
  const claim = c.prepare(`UPDATE jobs SET worker = 'w' WHERE id = (SELECT id FROM jobs WHERE queue = 'bench'
    AND worker IS NULL ORDER BY run_at, id LIMIT 1) RETURNING id, payload`);
  const del = c.prepare("DELETE FROM jobs WHERE id = ? AND worker = 'w'");
  // The bare floor of a claim and an ack: two transactions, none of
  // honker's leases, attempts, priorities, delays or dead letters.
  const claimTx = c.transaction(() => claim.get());
  const ackTx = c.transaction((id) => del.run(id).changes);
  return {
    c,
    insert: (i) => insert.immediate(i),
    claimAck: () => {
      const row = claimTx.immediate();
      JSON.parse(row.payload);
      if (ackTx.immediate(row.id) !== 1) throw new Error('baseline ack failed');
    },
  };
}

async function rate(n, f) {
  const t = performance.now();
  await f();
  return n / ((performance.now() - t) / 1000);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-node-bench-'));
  const raw = baseline(path.join(dir, 'raw.db'));
  const db = honker.open(path.join(dir, 'honker.db'));
  const q = db.queue('bench');
  const rows = Object.fromEntries(
    ['raw', 'rawClaimAck', 'enqueueSync', 'enqueue', 'enqueueMany', 'claimAckSync', 'claimAck', 'batch128', 'loop', 'worker'].map((k) => [k, []]),
  );
  let counter = 0;
  // The worker runtime's round: no-op async tasks, concurrency 1, from the
  // first claim to the last job run (its handler stops the worker).
  const tq = db.queue('tasks');
  let done = 0;
  let stopWorker = () => {};
  tq.task('noop', async () => {
    if (++done === N) stopWorker();
  });

  const rounds = {
    raw: () => { for (let i = 0; i < N; i++) raw.insert(counter++); },
    rawClaimAck: () => { for (let i = 0; i < N; i++) raw.claimAck(); },
    enqueueSync: () => { for (let i = 0; i < N; i++) q.enqueueSync({ n: i }); },
    enqueue: async () => { for (let i = 0; i < N; i++) await q.enqueue({ n: i }); },
    enqueueMany: async () => {
      for (let b = 0; b < (N / 100) * 10; b++) await q.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ n: b * 100 + i })));
    },
    claimAckSync: () => {
      for (let i = 0; i < N; i++) {
        const job = q.claimOneSync('w');
        if (!job || !job.ackSync()) throw new Error('claim+ack failed');
      }
    },
    claimAck: async () => {
      for (let i = 0; i < N; i++) {
        const job = await q.claimOne('w');
        if (!job || !(await job.ack())) throw new Error('claim+ack failed');
      }
    },
    batch128: async () => {
      let done = 0;
      while (done < N * 10) {
        const jobs = await q.claimBatch('w', 128);
        if (!jobs.length || (await q.ackBatch(jobs)) !== jobs.length) throw new Error('batch failed');
        done += jobs.length;
      }
    },
    worker: async () => {
      done = 0;
      const ac = new AbortController();
      stopWorker = () => ac.abort();
      await db.worker({ queues: ['tasks'], concurrency: 1, signal: ac.signal }).run();
      if (done !== N) throw new Error(`the worker ran ${done} of ${N} jobs`);
    },
    loop: async () => {
      let n = 0;
      for await (const job of q.claim('w', { timeoutS: 5 })) {
        if (!(await job.ack())) throw new Error('ack failed');
        if (++n === N) break;
      }
      if (n !== N) throw new Error(`the claim loop got ${n} of ${N} jobs`);
    },
  };

  for (let r = 0; r < ROUNDS; r++) {
    rows.raw.push(await rate(N, rounds.raw));
    rows.enqueueSync.push(await rate(N, rounds.enqueueSync));
    rows.raw.push(await rate(N, rounds.raw));
    rows.enqueue.push(await rate(N, rounds.enqueue));
    rows.raw.push(await rate(N, rounds.raw));
    rows.enqueueMany.push(await rate((N / 100) * 1000, rounds.enqueueMany));
    rows.claimAckSync.push(await rate(N, rounds.claimAckSync));
    rows.rawClaimAck.push(await rate(N, rounds.rawClaimAck));
    rows.claimAck.push(await rate(N, rounds.claimAck));
    rows.batch128.push(await rate(N * 10, rounds.batch128));
    q.enqueueManySync(Array.from({ length: N }, (_, i) => ({ n: i }))); // untimed: the loop's jobs
    rows.loop.push(await rate(N, rounds.loop));
    tq.enqueueManySync(Array.from({ length: N }, (_, i) => ({ task: 'noop', args: [i] }))); // untimed
    rows.worker.push(await rate(N, rounds.worker));
    // Drain what is left so every round starts from the same depth.
    while (q.claimBatchSync('w', 1000).length) { /* drain */ }
    while (raw.c.prepare("SELECT 1 FROM jobs WHERE worker IS NULL LIMIT 1").get()) raw.claimAck();
  }

  const base = median(rows.raw);
  const sqliteVersion = raw.c.prepare('SELECT sqlite_version() AS v').get().v;
  console.log(`honker Node bench (node ${process.version}, better-sqlite3 with SQLite ${sqliteVersion}), ${ROUNDS} rounds of ${N}, medians`);
  console.log();
  console.log('| operation | ops/s | / better-sqlite3 single-row insert txn |');
  console.log('| --- | ---: | ---: |');
  console.log(`| better-sqlite3: INSERT, 1 per transaction | ${base.toFixed(0)} | 1.00 |`);
  const labels = {
    rawClaimAck: 'better-sqlite3: claim (UPDATE … RETURNING) + ack (DELETE), the bare floor',
    enqueueSync: 'enqueueSync, 1 per transaction',
    enqueue: 'await enqueue, 1 per transaction',
    enqueueMany: 'await enqueueMany, 100 per transaction',
    claimAckSync: 'claimOneSync + ackSync',
    claimAck: 'await claimOne + await ack',
    batch128: 'await claimBatch(128) + await ackBatch',
    loop: 'for await claim loop + await ack, end to end',
    worker: 'worker runtime: no-op async tasks, concurrency 1',
  };
  for (const [k, label] of Object.entries(labels)) {
    const r = median(rows[k]);
    console.log(`| ${label} | ${r.toFixed(0)} | ${(r / base).toFixed(2)} |`);
  }
  console.log();
  const es = median(rows.enqueueSync) / base;
  const ea = median(rows.enqueue) / base;
  console.log(`enqueueSync / better-sqlite3 insert: ${es.toFixed(2)} (goal: at least 0.8); async enqueue: ${ea.toFixed(2)} (goal: at least 0.5)`);
  const w = median(rows.worker) / base;
  console.log(`worker (no-op async tasks, concurrency 1) / better-sqlite3 insert: ${w.toFixed(2)} (goal: at least 0.5)`);
  db.close();
  raw.c.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

await main();
